"""``secreason eval``: run benchmarks against a model, or score predictions made elsewhere.

Every run is resumable: generations go to ``OUT/cache`` as they are made, so the same
command after a crash or kill picks up where it stopped, and ``--rescore`` (or a
different ``--protocol``) scores again from the cache without loading a model.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import typer

from secreason.cli._errors import explain
from secreason.cli._errors import fail as _fail


def load_plugin(spec: str) -> Any:
    """``module:Attr`` or ``path/to/file.py:Attr`` -> a Benchmark (class or instance)."""
    target, _, attr = spec.rpartition(":")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            _fail(f"{spec}: no such file {path}")
        module_spec = importlib.util.spec_from_file_location(f"secreason_plugin_{path.stem}", path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as error:
            _fail(f"{spec}: cannot import {target} ({error}); is it on PYTHONPATH?")
    try:
        obj = getattr(module, attr)
    except AttributeError:
        _fail(f"{spec}: {target} defines no {attr!r}")
    return obj() if isinstance(obj, type) else obj


def resolve_benchmarks(names: list[str], options: dict[str, Any]) -> list[Any]:
    """Benchmark names, suite names and ``module:Attr`` plugins, in order, deduplicated."""
    from secreason.evals.base import Benchmark
    from secreason.evals.registry import expand, get_benchmark

    out: list[Benchmark] = []
    for name in names:
        if ":" in name:
            bench = load_plugin(name)
            if not isinstance(bench, Benchmark):
                _fail(f"{name} is not a secreason Benchmark")
            out.append(bench)
            continue
        try:
            members = expand([name])
        except KeyError as error:
            _fail(str(error.args[0]))
        for member in members:
            try:
                out.append(get_benchmark(member, **options))
            except (TypeError, ValueError) as error:
                _fail(str(error))
    return out


def _parse_options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            _fail(f"--option {pair!r}: expected KEY=VALUE (e.g. size=500)")
        try:
            options[key.replace("-", "_")] = json.loads(raw)
        except ValueError:
            options[key.replace("-", "_")] = raw
    return options


def _parse_data(values: list[str]) -> str | dict[str, str] | None:
    """``--data`` values: one plain source for all, or ``NAME=SOURCE`` pairs."""
    if not values:
        return None
    mapping: dict[str, str] = {}
    for value in values:
        name, sep, source = value.partition("=")
        # A hub id or path holds no '=' before a '/', so 'ctibench=path' is a mapping.
        if sep and name and "/" not in name:
            mapping[name] = source
        else:
            mapping["*"] = value
    if list(mapping) == ["*"]:
        return mapping["*"]
    return mapping


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_command(
        benchmarks: list[str] = typer.Argument(
            None,
            help="Benchmarks or suites (ctibench, cyber, safety, paper), module:Attr, or "
            "'none' (with --lm-eval or --alpaca-eval only). See --list.",
            show_default=False,
        ),
        list_: bool = typer.Option(
            False, "--list", help="List benchmarks, suites and (with --data) their files."
        ),
        model: str = typer.Option(None, "--model", "-m", help="Model dir, hub id or served name."),
        backend: str = typer.Option("transformers", "--backend", help="transformers|vllm|openai"),
        base_url: str = typer.Option(None, "--base-url", help="OpenAI-compatible server URL."),
        api_key: str = typer.Option(
            None,
            "--api-key",
            help="API key (default: $OPENAI_API_KEY).",
            envvar="SECREASON_API_KEY",
        ),
        revision: str = typer.Option(None, "--revision", help="Model revision (hub)."),
        trials: int = typer.Option(
            1,
            "--trials",
            min=1,
            help="Repeats with seeds S, S+1, ... (greedy benchmarks run once: same output).",
        ),
        seed: int = typer.Option(None, "--seed", help="Trial-0 seed (default: the protocol's)."),
        limit: int = typer.Option(None, "--limit", min=1, help="First K rows of each benchmark."),
        protocol: str = typer.Option("both", "--protocol", help="official|strict|both"),
        data: list[str] = typer.Option(
            [],
            "--data",
            help="Hub dataset id, file or folder; NAME=SOURCE for one benchmark or family "
            "(ctibench=../shared/benchmarks/ctibench). Repeatable.",
        ),
        temperature: float = typer.Option(
            None, "--temperature", help="Default: each benchmark's protocol (mostly 0, greedy)."
        ),
        top_p: float = typer.Option(None, "--top-p", help="Default: each benchmark's protocol."),
        max_tokens: int = typer.Option(
            None,
            "--max-tokens",
            help="Default: each benchmark's protocol; always clamped to the model's context "
            "minus the longest prompt.",
        ),
        prefilled: str = typer.Option(
            "auto", "--prefilled", help="Prompt ends inside <think>: auto|yes|no."
        ),
        reask: int = typer.Option(None, "--reask", help="Official re-asks on a bad format."),
        batch_size: int = typer.Option(None, "--batch-size", help="transformers/vllm batch."),
        concurrency: int = typer.Option(16, "--concurrency", help="openai: requests in flight."),
        request_timeout: float = typer.Option(600.0, "--timeout", help="openai: seconds/request."),
        max_retries: int = typer.Option(
            5, "--max-retries", help="openai: retries (backoff) on 429/5xx/timeouts."
        ),
        device: str = typer.Option(None, "--device"),
        dtype: str = typer.Option(None, "--dtype"),
        think_ids: str = typer.Option(
            None, "--think-ids", help="OPEN,CLOSE token ids when the tags are special tokens."
        ),
        set_: list[str] = typer.Option(
            [], "--set", help="Benchmark option KEY=VALUE (e.g. judge_kind=guard). Repeatable."
        ),
        option: list[str] = typer.Option(
            [], "--option", "-o", help="Deprecated alias of --set.", hidden=True
        ),
        server_system_prompt: str = typer.Option(
            None,
            "--server-system-prompt",
            help="openai: the server's system-prompt policy (replace|extend|client|off), "
            "recorded in run.json and the report when the server does not report it.",
        ),
        judge_model: str = typer.Option(None, "--judge-model", help="Judge for HarmBench."),
        judge_backend: str = typer.Option(None, "--judge-backend"),
        judge_base_url: str = typer.Option(None, "--judge-base-url"),
        predictions: Path = typer.Option(
            None, "--predictions", help="Score this JSONL (id|index, completion); no model."
        ),
        lm_eval_tasks: str = typer.Option(
            None,
            "--lm-eval",
            help="General capability through lm-evaluation-harness, e.g. gsm8k,bbh,ifeval "
            "(needs the general extra); folded into the same report.",
        ),
        lm_eval_include: Path = typer.Option(
            None,
            "--lm-eval-include",
            help="Folder of extra lm-eval task YAML files (local data, e.g. HotpotQA).",
        ),
        alpaca_eval: Path = typer.Option(
            None,
            "--alpaca-eval",
            help="AlpacaEval 2.0 on these instructions (JSON/JSONL with 'instruction'); "
            "needs the general extra and --alpaca-judge.",
        ),
        alpaca_reference: Path = typer.Option(
            None,
            "--alpaca-reference",
            help="Reference outputs, same instructions in order (default: alpaca-eval's "
            "GPT-4-turbo outputs, from the hub).",
        ),
        alpaca_judge: str = typer.Option(
            None, "--alpaca-judge", help="AlpacaEval judge model (key: $OPENAI_API_KEY)."
        ),
        alpaca_judge_base_url: str = typer.Option(
            None, "--alpaca-judge-base-url", help="The judge's OpenAI-compatible server."
        ),
        alpaca_verdict: str = typer.Option(
            "logprobs",
            "--alpaca-verdict",
            help="logprobs (AlpacaEval 2.0's rule) or text (judges without log-probs).",
        ),
        alpaca_length_controlled: bool = typer.Option(
            True,
            "--alpaca-lc/--alpaca-raw",
            help="Length-controlled win rate (needs the hub's df_gamed.csv once) or raw.",
        ),
        rescore: bool = typer.Option(False, "--rescore", help="Score from the cache only."),
        skip_unavailable: bool = typer.Option(
            False,
            "--skip-unavailable",
            help="Run the benchmarks whose data is there and skip (and name) the others, "
            "instead of refusing.",
        ),
        shuffle_options: int = typer.Option(
            1,
            "--shuffle-options",
            help="Ask each multiple-choice item in K seeded option orders; adds "
            "consistency and accuracy by gold position.",
        ),
        fewshot: int = typer.Option(
            0,
            "--fewshot",
            help="N seeded solved items before each multiple-choice question (MMLU: its "
            "dev split; others: other rows of the same file).",
        ),
        mc_mode: str = typer.Option(
            "generate",
            "--mc-mode",
            help="generate; loglik: multiple choice from the option letters' "
            "log-probabilities after 'Answer:' (transformers backend, or an openai server "
            "that returns top_logprobs; nothing generated); "
            "think-then-loglik: generate the reasoning first, close it, then read them.",
        ),
        dedup: bool = typer.Option(
            False,
            "--dedup",
            help="Also score the de-duplicated set (same normalised prompt: first row kept; "
            "rows whose golds disagree left out), beside the full one.",
        ),
        out: Path = typer.Option(Path("runs/eval"), "--out", help="Output folder."),
    ) -> None:
        """Evaluate a model on benchmarks (resumable), or score a predictions file."""
        from secreason.cli import _eval_preflight as pre
        from secreason.cli._eval_general import alpaca_inputs, run_alpaca, run_general
        from secreason.evals.runner import MissingGenerations, Runner, RunSettings

        if list_:
            from secreason.cli._eval_list import print_listing

            print_listing(_parse_data(data), limit)
            return
        if not benchmarks:
            _fail("name the benchmarks to run (see secreason eval --list), or 'none'")
        if option:
            typer.echo("warning: -o/--option is deprecated; use --set KEY=VALUE", err=True)

        if protocol not in ("official", "strict", "both"):
            _fail(f"--protocol {protocol!r}: choose official, strict or both")
        if server_system_prompt not in (None, "replace", "extend", "client", "off"):
            _fail(
                f"--server-system-prompt {server_system_prompt!r}: replace, extend, client or off"
            )
        if prefilled not in ("auto", "yes", "no"):
            _fail(f"--prefilled {prefilled!r}: choose auto, yes or no")
        if backend not in ("transformers", "vllm", "openai"):
            _fail(f"--backend {backend!r}: choose transformers, vllm or openai")
        if predictions is None and not model and not rescore:
            _fail("--model is required (or --predictions FILE to score generations)")
        if backend == "openai" and not base_url and predictions is None and not rescore:
            _fail("--backend openai needs --base-url (e.g. http://localhost:8000/v1)")
        ids = None
        if think_ids:
            try:
                open_id, close_id = (int(x) for x in think_ids.split(","))
            except ValueError:
                _fail(f"--think-ids {think_ids!r}: expected two integers, e.g. 128267,128268")
            ids = (open_id, close_id)

        settings = RunSettings(
            model=model or "",
            revision=revision,
            backend=backend,
            trials=trials,
            seed=seed,
            limit=limit,
            protocols=("official", "strict") if protocol == "both" else (protocol,),  # type: ignore[arg-type]
            data=_parse_data(data),
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            prefilled=prefilled,  # type: ignore[arg-type]
            reask=reask,
            rescore=rescore,
            greedy_once=True,
            dedup=dedup,
        )
        alpaca = (
            alpaca_inputs(
                alpaca_eval,
                alpaca_reference,
                judge_model=alpaca_judge,
                judge_base_url=alpaca_judge_base_url,
                verdict=alpaca_verdict,
                limit=limit,
            )
            if alpaca_eval is not None
            else None
        )
        names = [b for b in benchmarks if b != "none"]
        benches = resolve_benchmarks(names, _parse_options([*option, *set_])) if names else []
        judged = [b.name for b in benches if b.needs_judge]
        if judged and not judge_model:
            _fail(
                f"{', '.join(judged)} is scored by a judge model: add --judge-model M "
                "(a folder or hub id, or a served name with --judge-base-url URL)"
            )
        if predictions is not None and len(benches) != 1:
            _fail("--predictions scores one benchmark at a time")
        for flag, key, value, default in (
            ("--shuffle-options", "shuffle", shuffle_options, 1),
            ("--fewshot", "fewshot", fewshot, 0),
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
        if mc_mode not in ("generate", "loglik", "think-then-loglik"):
            _fail(f"--mc-mode {mc_mode!r}: choose generate, loglik or think-then-loglik")
        if mc_mode != "generate":
            if backend not in ("transformers", "openai") or predictions is not None or rescore:
                _fail(
                    f"--mc-mode {mc_mode} reads log-probabilities from a local model "
                    "(--backend transformers) or from a server that returns top_logprobs "
                    "(--backend openai; for vLLM, run 'vllm serve' and point --base-url at "
                    "it), without --predictions or --rescore"
                )
            open_ended = [b.name for b in benches if b.task.name not in ("mcq",)]
            if open_ended:
                names = ", ".join(open_ended)
                _fail(f"--mc-mode {mc_mode} is for multiple choice; not: {names}")

        def model_backend() -> Any:
            from secreason.backends.registry import make_backend

            if backend == "openai":
                return make_backend(
                    "openai",
                    model,
                    base_url=base_url,
                    api_key=api_key,
                    concurrency=concurrency,
                    timeout=request_timeout,
                    max_retries=max_retries,
                    prefilled=prefilled == "yes",
                )
            return make_backend(
                backend,
                model,
                revision=revision,
                device=device,
                dtype=dtype,
                batch_size=batch_size,
                think_ids=ids,
            )

        def make_judge() -> Any:
            from secreason.backends.registry import make_backend

            kind = judge_backend or ("openai" if judge_base_url else "transformers")
            if kind == "openai":
                return make_backend("openai", judge_model, base_url=judge_base_url, api_key=api_key)
            return make_backend(kind, judge_model, device=device, dtype=dtype)

        runner = Runner(
            out,
            settings,
            None if (predictions is not None or rescore) else model_backend,
            judge=make_judge if judge_model else None,
            judge_id=judge_model or "",
        )
        if predictions is not None and not predictions.is_file():
            _fail(f"--predictions {predictions}: no such file")
        check = pre.Preflight()
        generating = predictions is None and not rescore
        pre.check_data(runner, benches, check)
        pre.check_extras(bool(lm_eval_tasks) and generating, alpaca is not None, check)
        if generating:
            pre.check_backend(backend, model, check, base_url=base_url, api_key=api_key)
            if judge_model and (judge_backend or "transformers") != "openai" and not judge_base_url:
                check.problems.extend(filter(None, [pre.model_problem(judge_model)]))
        if generating and not pre.other_problems(check) and backend != "openai":
            loaded = [b for b in benches if b.name not in check.unavailable]
            pre.clamp_max_tokens(runner, loaded, model, check)
        if skip_unavailable:
            benches = pre.skip_unavailable(benches, check)
            if not benches and not (lm_eval_tasks or alpaca):
                check.problems.append("no benchmark can run; nothing to do")
        pre.greedy_note(runner, benches, check)
        if check.problems:
            typer.echo(
                f"error: {len(check.problems)} problem(s) found before generating anything:",
                err=True,
            )
            for problem in check.problems:
                typer.echo(f"  - {problem}", err=True)
            raise typer.Exit(2)
        for note in check.notes:
            typer.echo(f"note: {note}", err=True)
        server = check.server
        if backend == "openai" and generating:
            server = dict(server or {"url": base_url})
            if server_system_prompt:
                server["system_prompt"] = {"mode": server_system_prompt, "source": "flag"}
            if server.get("system_prompt") is None and str(server.get("owned_by", "")).startswith(
                "secreason"
            ):
                typer.echo(
                    "warning: a secreason server replaces the benchmarks' system prompts "
                    "unless it runs with system_prompt.mode: off (--no-system-prompt); say "
                    "which with --server-system-prompt",
                    err=True,
                )
        run_info = {
            **settings.as_dict(),
            "benchmarks": [b.name for b in benches],
            "rows": check.rows,
            "skipped": sorted(check.unavailable) if skip_unavailable else [],
            "model_context": check.context,
            "server": server,
            "judge_model": judge_model,
            "predictions": str(predictions) if predictions else None,
            "command": " ".join(sys.argv),
        }
        out.mkdir(parents=True, exist_ok=True)
        (out / "run.json").write_text(json.dumps(run_info, indent=2) + "\n")
        results = []
        try:
            if predictions is not None:
                from secreason.evals.runner import score_predictions

                try:
                    results.append(score_predictions(runner, benches[0], predictions))
                except ValueError as error:
                    _fail(explain(error)[0])
            else:
                for bench in benches:
                    if mc_mode != "generate":
                        from secreason.evals.loglik import loglik_run

                        think = mc_mode == "think-then-loglik"
                        results.append(loglik_run(runner, bench, think=think))
                    else:
                        results.append(runner.run(bench))
                if lm_eval_tasks:
                    results.append(
                        run_general(
                            runner, settings, lm_eval_tasks, out, lm_eval_include, batch_size
                        )
                    )
                if alpaca is not None:
                    results.append(
                        run_alpaca(
                            runner,
                            settings,
                            *alpaca,
                            out,
                            judge_model=alpaca_judge,
                            judge_base_url=alpaca_judge_base_url,
                            verdict=alpaca_verdict,
                            length_controlled=alpaca_length_controlled,
                        )
                    )
        except typer.Exit:
            raise
        except (MissingGenerations, FileNotFoundError) as error:
            _fail(str(error))
        except RuntimeError as error:  # a backend gave up (server down, out of memory)
            typer.echo(
                f"error: {error}\nEverything generated so far is in {out / 'cache'}; "
                "rerun the same command to resume.",
                err=True,
            )
            raise typer.Exit(1) from None
        finally:
            runner.close()

        from secreason.evals.report import build_report, markdown, write_report

        paths = write_report(out, results, run_info)
        if predictions is not None:
            report = build_report(results, run_info)
            scores = {
                b["name"]: {
                    p: {k: v["mean"] for k, v in m.items()} for p, m in b["protocols"].items()
                }
                for b in report["benchmarks"]
            }
            sys.stdout.write(json.dumps(scores, indent=2) + "\n")
        else:
            sys.stdout.write(markdown(json.loads(paths["json"].read_text())))
        typer.echo(f"report: {paths['md']} (+ .json .csv .png) in {out}", err=True)
