"""``secreason eval``'s preflight: every problem found before a single token is generated.

An evaluation that stops after hours because the sixth benchmark's file is missing, or
that asks a 1,024-position model for 2,048 new tokens, wastes the most expensive thing
a user has. So before generating, the eval command loads every benchmark's data,
checks the model (folder, context length) and the backend (installed, server reachable,
model served), and refuses with the complete list of problems. What it can fix
without asking, it fixes and says in one line: ``max_tokens`` is clamped to the context
minus the longest prompt, and greedy benchmarks run one trial (``RunSettings.greedy_once``).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secreason.cli._errors import explain, model_problem
from secreason.evals.base import Benchmark
from secreason.evals.runner import Runner, prompt_size

#: config.json keys that hold a model's context length, most specific first
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length")
BUILD_HINT = {
    "cwe-prediction": "build it first: secreason build-benchmark cwe-prediction FEEDS "
    "--since YYYY-MM-DD --out cwe-prediction.tsv, then --data cwe-prediction=that file",
}


@dataclass
class Preflight:
    """What the preflight found: problems (refuse), notes (said once) and facts."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    #: benchmark -> why it cannot run: no data, or prompts beyond the context (the full
    #: message is in ``problems``)
    unavailable: dict[str, str] = field(default_factory=dict)
    context: int | None = None
    server: dict[str, Any] | None = None


def check_data(runner: Runner, benches: Sequence[Benchmark], report: Preflight) -> None:
    """Load every benchmark now; a failure names the benchmark and its source."""
    from secreason.evals.registry import published_files

    owners = published_files()
    for bench in benches:
        source = runner.settings.source(bench) or bench.default_source or "its default"
        swapped = _swapped_file(bench, runner.settings.source(bench), owners)
        if swapped:
            report.problems.append(f"{bench.name} (data: {source}): {swapped}")
            report.unavailable[bench.name] = "another benchmark's file"
            continue
        try:
            samples = runner.load(bench)
        except Exception as error:  # each problem is reported, not raised
            message = explain(error)[0].splitlines()[0]
            hint = "" if "build-benchmark" in message else BUILD_HINT.get(bench.name, "")
            problem = f"{bench.name} (data: {source}): {message}" + (f"; {hint}" if hint else "")
            report.problems.append(problem)
            report.unavailable[bench.name] = "no data"
            continue
        if not samples:
            problem = f"{bench.name} (data: {source}): no rows"
            report.problems.append(problem)
            report.unavailable[bench.name] = "no rows"
        report.rows[bench.name] = len(samples)


def _swapped_file(bench: Benchmark, source: str | None, owners: dict[str, list[str]]) -> str:
    """Why ``source`` is another benchmark's published file ('' when it is not): the
    same file type would load, and score against the wrong answers."""
    from secreason.evals.registry import published_file

    path = Path(source).expanduser() if source else None
    if path is None or not path.is_file():
        return ""
    own = published_file(bench)
    others = [o for o in owners.get(path.name, []) if o != bench.name]
    if not others or path.name == own:
        return ""
    return (
        f"{path} is {' and '.join(others)}'s file; {bench.name} reads {own or 'another file'} "
        f"(evaluate {others[0]} instead, or point --data at {bench.name}'s file)"
    )


def skip_unavailable(benches: list[Benchmark], report: Preflight) -> list[Benchmark]:
    """``--skip-unavailable``: drop the benchmarks that cannot run, and say which and why."""
    if not report.unavailable:
        return benches
    report.problems = [p for p in report.problems if not _about(p, report.unavailable)]
    reasons = ", ".join(f"{name} ({why})" for name, why in report.unavailable.items())
    report.notes.append(f"skipped (--skip-unavailable): {reasons}")
    return [b for b in benches if b.name not in report.unavailable]


def _about(problem: str, names: dict[str, str]) -> bool:
    return any(problem.startswith((f"{name} ", f"{name}:")) for name in names)


def other_problems(report: Preflight) -> list[str]:
    """Problems that are not about one benchmark's data (model, backend, extras)."""
    return [p for p in report.problems if not _about(p, report.unavailable)]


def _config_file(model: str) -> Path | None:
    """config.json of a local folder, or of a hub model already in the local HF cache."""
    path = Path(model).expanduser() / "config.json"
    if path.is_file():
        return path
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model, "config.json")
    except Exception:  # not a repo id, or no cache: the context is then unknown
        return None
    return Path(found) if isinstance(found, str) else None


def context_length(model: str) -> int | None:
    """The model's context in tokens, from its config.json (None when unknown)."""
    path = _config_file(model)
    if path is None:
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return None
    for section in (config, config.get("text_config") or {}):
        for key in _CONTEXT_KEYS:
            if isinstance(section.get(key), int) and section[key] > 0:
                return int(section[key])
    return None


def clamp_max_tokens(
    runner: Runner,
    benches: Sequence[Benchmark],
    model: str,
    report: Preflight,
    *,
    served: bool = False,
    tokenizer: str | None = None,
) -> None:
    """Cap each benchmark's max_tokens at context - longest prompt (rendered, tokenized).

    The context is the model's config.json, or for a served model (``served``) the
    ``max_model_len`` its server reported (read by :func:`check_backend`). Prompts are
    counted with ``tokenizer``, else the model's own when ``model`` is a local folder or
    a cached hub id; a served model with neither only has max_tokens >= context refused."""
    context = report.context if served else context_length(model)
    report.context = context
    if context is None:
        return
    source = tokenizer or model
    if served and tokenizer is None and _config_file(model) is None:
        _refuse_whole_context(runner, benches, context, report)
        return
    from transformers import AutoTokenizer

    try:
        counter = AutoTokenizer.from_pretrained(source)
    except Exception as error:  # the run loads it again and reports then
        if tokenizer is not None:
            report.problems.append(f"--tokenizer {tokenizer}: cannot load it ({error})")
        elif served:
            _refuse_whole_context(runner, benches, context, report)
        else:
            report.notes.append(f"max_tokens not checked against the context ({error})")
        return
    changed = _clamp_to_room(runner, benches, counter, context, report)
    if changed:
        where = "served model's" if served else "model's"
        report.notes.append(
            f"max_tokens clamped to the {where} {context}-token context minus the longest "
            f"prompt: {', '.join(changed)}" + _server_prompt_caveat(report)
        )


def _clamp_to_room(
    runner: Runner, benches: Sequence[Benchmark], tokenizer: Any, context: int, report: Preflight
) -> list[str]:
    """Set each benchmark's cap; its longest prompt beyond the context is a problem."""
    settings = runner.settings
    changed = []
    for bench in benches:
        samples = runner._loaded.get(bench.name)
        if not samples:
            continue
        conversations = [bench.messages(s, p) for s in samples for p in settings.protocols]
        # Only the longest few by characters are rendered: token order follows closely.
        longest = sorted(conversations, key=prompt_size, reverse=True)[:8]
        tokens = 0
        for messages in longest:
            text = tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
            tokens = max(tokens, len(tokenizer(str(text), add_special_tokens=False)["input_ids"]))
        room = context - tokens
        wanted = settings.sampling(bench, 0).max_tokens
        if room < 1:
            report.problems.append(
                f"{bench.name}: its longest prompt is {tokens} tokens, the model holds "
                f"{context}: no room to answer (use a model with a longer context)"
            )
            report.unavailable[bench.name] = f"prompts up to {tokens} tokens > {context} context"
        elif wanted > room:
            settings.max_tokens_cap[bench.name] = room
            changed.append(f"{bench.name} {wanted}->{room}")
    return changed


def _refuse_whole_context(
    runner: Runner, benches: Sequence[Benchmark], context: int, report: Preflight
) -> None:
    """No tokenizer to count prompts: a max_tokens that fills the whole context (every
    request would be refused by the server) is a problem naming both ways out."""
    url = (report.server or {}).get("url")
    for bench in benches:
        wanted = runner.settings.sampling(bench, 0).max_tokens
        if wanted >= context:
            report.problems.append(
                f"{bench.name}: max_tokens {wanted} leaves no room for a prompt in the served "
                f"model's {context}-token context (max_model_len at {url}); pass --tokenizer "
                "(the model's folder or hub id) to clamp it to the context minus the longest "
                f"prompt, or --max-tokens below {context} minus the longest prompt"
            )


def _server_prompt_caveat(report: Preflight) -> str:
    """A server that puts its own system prompt in front has longer prompts than these."""
    policy = (report.server or {}).get("system_prompt")
    mode = policy.get("mode") if isinstance(policy, dict) else None
    if mode in ("replace", "extend"):
        return (
            f" (the server's own system prompt, mode {mode}, is not counted: its 400 "
            "says what fits)"
        )
    return ""


def greedy_note(runner: Runner, benches: Sequence[Benchmark], report: Preflight) -> None:
    if runner.settings.trials < 2:
        return
    once = [b.name for b in benches if runner.settings.trials_for(b) == 1]
    if once:
        report.notes.append(
            f"--trials {runner.settings.trials}: {', '.join(once)} decode greedily "
            "(temperature 0), which gives the same output every trial, so they run once; "
            "set --temperature > 0 for trials that differ"
        )


def check_backend(
    backend: str,
    model: str,
    report: Preflight,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = 10.0,
) -> None:
    """Is the backend installed, the model there, the server up and serving it?"""
    if backend in ("transformers", "vllm"):
        problem = model_problem(model)
        if problem:
            report.problems.append(problem)
        if backend == "vllm" and importlib.util.find_spec("vllm") is None:
            report.problems.append(
                "--backend vllm needs vLLM, which is not installed: pip install "
                "'secreason[vllm]' (GPU only), or use --backend transformers"
            )
        return
    import httpx

    url = (base_url or "").rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(url, headers=headers, timeout=timeout)
    except httpx.HTTPError as error:
        report.problems.append(
            f"--base-url {base_url}: cannot list the served models ({error}); start the "
            "server (e.g. secreason serve --model M) or fix --base-url"
        )
        return
    if response.status_code in (401, 403):
        report.problems.append(f"--base-url {base_url}: the server refused the API key")
        return
    try:  # a server without /models (or an odd one) is not checked further
        entries = (response.json().get("data") or []) if response.is_success else []
    except (ValueError, AttributeError):
        entries = []
    served = {str(e.get("id")): e for e in entries if isinstance(e, dict)}
    if served and model not in served:
        report.problems.append(
            f"--model {model}: not served at {base_url}; it serves {', '.join(served)}"
        )
        return
    entry = served.get(model, {})
    meta = entry.get("secreason") if isinstance(entry.get("secreason"), dict) else {}
    report.server = {"url": base_url, "owned_by": entry.get("owned_by")}
    if isinstance(meta, dict) and meta.get("system_prompt") is not None:
        report.server["system_prompt"] = meta["system_prompt"]
    if isinstance(entry.get("max_model_len"), int):
        report.context = int(entry["max_model_len"])


def check_extras(lm_eval: bool, alpaca: bool, report: Preflight) -> None:
    wanted_modules = ((lm_eval, "lm_eval", "--lm-eval"), (alpaca, "alpaca_eval", "--alpaca-eval"))
    for wanted, module, flag in wanted_modules:
        if wanted and importlib.util.find_spec(module) is None:
            report.problems.append(
                f"{flag} needs {module}, which is not installed: pip install 'secreason[general]'"
            )
