"""One ``secreason eval`` invocation as data, checked flag by flag before any loading.

Why a module of its own: the command takes some fifty options, and which combinations
make sense (``--predictions`` with one benchmark, ``--mc-mode`` only with backends that
return log-probabilities, a judge for judged benchmarks, ...) is a set of rules worth
reading in one place. :class:`EvalRequest` holds the options under their parameter
names; :func:`plan` refuses a bad combination with one ``error:`` line and otherwise
returns the run settings and the benchmark objects; :func:`model_backend` and
:func:`judge_factory` build the backends lazily, only when something must generate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from secreason.cli._errors import fail as _fail
from secreason.cli._eval_args import parse_data, parse_options, resolve_benchmarks
from secreason.evals.base import Benchmark
from secreason.evals.run_settings import RunSettings


@dataclass
class EvalRequest:
    """The eval command's options, named and typed as its parameters (typer's ``None``
    defaults included; see ``secreason eval --help``)."""

    benchmarks: list[str]
    list_: bool
    model: str
    backend: str
    base_url: str
    tokenizer: str
    api_key: str
    revision: str
    trials: int
    seed: int
    limit: int
    protocol: str
    data: list[str]
    temperature: float
    top_p: float
    max_tokens: int
    prefilled: str
    reask: int
    batch_size: int
    concurrency: int
    request_timeout: float
    max_retries: int
    device: str
    dtype: str
    think_ids: str
    set_: list[str]
    option: list[str]
    server_system_prompt: str
    judge_model: str
    judge_backend: str
    judge_base_url: str
    predictions: Path
    lm_eval_tasks: str
    lm_eval_include: Path
    alpaca_eval: Path
    alpaca_reference: Path
    alpaca_judge: str
    alpaca_judge_base_url: str
    alpaca_verdict: str
    alpaca_length_controlled: bool
    rescore: bool
    skip_unavailable: bool
    shuffle_options: int
    fewshot: int
    mc_mode: str
    dedup: bool
    out: Path

    @property
    def generating(self) -> bool:
        """True when the run makes generations (not --predictions, not --rescore)."""
        return self.predictions is None and not self.rescore


def _think_ids(value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    try:
        open_id, close_id = (int(x) for x in value.split(","))
    except ValueError:
        _fail(f"--think-ids {value!r}: expected two integers, e.g. 128267,128268")
    return open_id, close_id


def _check_flags(req: EvalRequest) -> None:
    if req.protocol not in ("official", "strict", "both"):
        _fail(f"--protocol {req.protocol!r}: choose official, strict or both")
    if req.server_system_prompt not in (None, "replace", "extend", "client", "off"):
        _fail(
            f"--server-system-prompt {req.server_system_prompt!r}: replace, extend, client or off"
        )
    if req.prefilled not in ("auto", "yes", "no"):
        _fail(f"--prefilled {req.prefilled!r}: choose auto, yes or no")
    if req.backend not in ("transformers", "vllm", "openai"):
        _fail(f"--backend {req.backend!r}: choose transformers, vllm or openai")
    if req.predictions is None and not req.model and not req.rescore:
        _fail("--model is required (or --predictions FILE to score generations)")
    if req.backend == "openai" and not req.base_url and req.generating:
        _fail("--backend openai needs --base-url (e.g. http://localhost:8000/v1)")


def _settings(req: EvalRequest) -> RunSettings:
    protocols = ("official", "strict") if req.protocol == "both" else (req.protocol,)
    return RunSettings(
        model=req.model or "",
        revision=req.revision,
        backend=req.backend,
        trials=req.trials,
        seed=req.seed,
        limit=req.limit,
        protocols=protocols,  # type: ignore[arg-type]
        data=parse_data(req.data),
        temperature=req.temperature,
        top_p=req.top_p,
        max_tokens=req.max_tokens,
        prefilled=req.prefilled,  # type: ignore[arg-type]
        reask=req.reask,
        rescore=req.rescore,
        greedy_once=True,
        dedup=req.dedup,
    )


def _robustness(req: EvalRequest, benches: list[Benchmark]) -> None:
    """``--shuffle-options`` / ``--fewshot`` onto the benchmarks that take them."""
    for flag, key, value, default in (
        ("--shuffle-options", "shuffle", req.shuffle_options, 1),
        ("--fewshot", "fewshot", req.fewshot, 0),
    ):
        if value == default:
            continue
        if value < default:
            _fail(f"{flag} {value}: must be at least {default}")
        takers = [b for b in benches if hasattr(b, key)]
        if not takers:
            _fail(f"{flag}: none of these benchmarks takes it (the multiple-choice ones do)")
        for bench in takers:
            setattr(bench, key, value)


def _check_mc_mode(req: EvalRequest, benches: list[Benchmark]) -> None:
    if req.mc_mode not in ("generate", "loglik", "think-then-loglik"):
        _fail(f"--mc-mode {req.mc_mode!r}: choose generate, loglik or think-then-loglik")
    if req.mc_mode == "generate":
        return
    if req.backend not in ("transformers", "openai") or not req.generating:
        _fail(
            f"--mc-mode {req.mc_mode} reads log-probabilities from a local model "
            "(--backend transformers) or from a server that returns top_logprobs "
            "(--backend openai; for vLLM, run 'vllm serve' and point --base-url at "
            "it), without --predictions or --rescore"
        )
    open_ended = [b.name for b in benches if b.task.name not in ("mcq",)]
    if open_ended:
        _fail(f"--mc-mode {req.mc_mode} is for multiple choice; not: {', '.join(open_ended)}")


def plan(req: EvalRequest) -> tuple[RunSettings, list[Benchmark], Any]:
    """The run settings, the benchmarks and the AlpacaEval inputs (None without
    ``--alpaca-eval``), or one ``error:`` line and exit 2."""
    from secreason.cli._eval_general import alpaca_inputs

    if not req.benchmarks:
        _fail("name the benchmarks to run (see secreason eval --list), or 'none'")
    if req.option:
        typer.echo("warning: -o/--option is deprecated; use --set KEY=VALUE", err=True)
    _check_flags(req)
    _think_ids(req.think_ids)
    settings = _settings(req)
    alpaca = (
        alpaca_inputs(
            req.alpaca_eval,
            req.alpaca_reference,
            judge_model=req.alpaca_judge,
            judge_base_url=req.alpaca_judge_base_url,
            verdict=req.alpaca_verdict,
            limit=req.limit,
        )
        if req.alpaca_eval is not None
        else None
    )
    names = [b for b in req.benchmarks if b != "none"]
    options = parse_options([*req.option, *req.set_])
    benches = resolve_benchmarks(names, options) if names else []
    judged = [b.name for b in benches if b.needs_judge]
    if judged and not req.judge_model:
        _fail(
            f"{', '.join(judged)} is scored by a judge model: add --judge-model M "
            "(a folder or hub id, or a served name with --judge-base-url URL)"
        )
    if req.predictions is not None and len(benches) != 1:
        _fail("--predictions scores one benchmark at a time")
    _robustness(req, benches)
    _check_mc_mode(req, benches)
    return settings, benches, alpaca


def model_backend(req: EvalRequest) -> Callable[[], Any]:
    """A factory of the model's backend (called only when a generation is missing)."""
    ids = _think_ids(req.think_ids)

    def make() -> Any:
        from secreason.backends.registry import make_backend

        if req.backend == "openai":
            return make_backend(
                "openai",
                req.model,
                base_url=req.base_url,
                api_key=req.api_key,
                concurrency=req.concurrency,
                timeout=req.request_timeout,
                max_retries=req.max_retries,
                prefilled=req.prefilled == "yes",
            )
        return make_backend(
            req.backend,
            req.model,
            revision=req.revision,
            device=req.device,
            dtype=req.dtype,
            batch_size=req.batch_size,
            think_ids=ids,
        )

    return make


def judge_factory(req: EvalRequest) -> Callable[[], Any] | None:
    """A factory of the judge's backend, when the run has a judge model."""
    if not req.judge_model:
        return None

    def make() -> Any:
        from secreason.backends.registry import make_backend

        kind = req.judge_backend or ("openai" if req.judge_base_url else "transformers")
        if kind == "openai":
            return make_backend(
                "openai", req.judge_model, base_url=req.judge_base_url, api_key=req.api_key
            )
        return make_backend(kind, req.judge_model, device=req.device, dtype=req.dtype)

    return make
