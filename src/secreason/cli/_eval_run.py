"""``secreason eval`` after its options are checked: preflight, run, report.

Why a module of its own: this is the order a run happens in, and each step is a
promise to the user. Every benchmark's data, the model and the server are checked
before anything is generated (all problems listed at once, exit 2); ``run.json``
records what was asked; generations resume from ``OUT/cache``; a backend that gives up
leaves what it made and says how to resume; the report is written in every format and
``--predictions`` prints its scores as JSON.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from secreason.cli._errors import explain
from secreason.cli._errors import fail as _fail
from secreason.cli._eval_request import EvalRequest, judge_factory, model_backend, plan
from secreason.evals.base import Benchmark
from secreason.evals.run_settings import RunSettings
from secreason.evals.runner import BenchmarkResult, MissingGenerations, Runner


def _preflight(
    req: EvalRequest, runner: Runner, benches: list[Benchmark], alpaca: Any
) -> tuple[list[Benchmark], Any]:
    """Check everything before generating; exit 2 listing every problem."""
    from secreason.cli import _eval_preflight as pre

    if req.predictions is not None and not req.predictions.is_file():
        _fail(f"--predictions {req.predictions}: no such file")
    check = pre.Preflight()
    generating = req.generating
    pre.check_data(runner, benches, check)
    pre.check_extras(bool(req.lm_eval_tasks) and generating, alpaca is not None, check)
    if generating:
        pre.check_backend(req.backend, req.model, check, base_url=req.base_url, api_key=req.api_key)
        judge_local = (req.judge_backend or "transformers") != "openai" and not req.judge_base_url
        if req.judge_model and judge_local:
            check.problems.extend(filter(None, [pre.model_problem(req.judge_model)]))
    if generating and not pre.other_problems(check):
        loaded = [b for b in benches if b.name not in check.unavailable]
        served = req.backend == "openai"
        tokenizer = req.tokenizer if served else None
        pre.clamp_max_tokens(runner, loaded, req.model, check, served=served, tokenizer=tokenizer)
    if req.skip_unavailable:
        benches = pre.skip_unavailable(benches, check)
        if not benches and not (req.lm_eval_tasks or alpaca):
            check.problems.append("no benchmark can run; nothing to do")
    pre.greedy_note(runner, benches, check)
    if check.problems:
        typer.echo(
            f"error: {len(check.problems)} problem(s) found before generating anything:",
            err=True,
        )
        for problem in check.problems:
            typer.echo(f"  - {problem}", err=True)
        runnable = [b.name for b in benches if b.name not in check.unavailable]
        if (
            check.unavailable
            and runnable
            and not (req.skip_unavailable or pre.other_problems(check))
        ):
            typer.echo(
                f"hint: --skip-unavailable runs the other {len(runnable)} "
                f"({', '.join(runnable)}) and records what it skipped",
                err=True,
            )
        raise typer.Exit(2)
    for note in check.notes:
        typer.echo(f"note: {note}", err=True)
    return benches, check


def _server_info(req: EvalRequest, server: dict[str, Any] | None) -> dict[str, Any] | None:
    """What run.json records about the server, with a warning about system prompts."""
    if req.backend != "openai" or not req.generating:
        return server
    server = dict(server or {"url": req.base_url})
    if req.server_system_prompt:
        server["system_prompt"] = {"mode": req.server_system_prompt, "source": "flag"}
    if server.get("system_prompt") is None and str(server.get("owned_by", "")).startswith(
        "secreason"
    ):
        typer.echo(
            "warning: a secreason server replaces the benchmarks' system prompts "
            "unless it runs with system_prompt.mode: off (--no-system-prompt); say "
            "which with --server-system-prompt",
            err=True,
        )
    return server


def _execute(
    req: EvalRequest,
    runner: Runner,
    settings: RunSettings,
    benches: list[Benchmark],
    alpaca: Any,
) -> list[BenchmarkResult]:
    from secreason.cli._eval_general import run_alpaca, run_general

    results: list[BenchmarkResult] = []
    if req.predictions is not None:
        from secreason.evals.runner import score_predictions

        try:
            results.append(score_predictions(runner, benches[0], req.predictions))
        except ValueError as error:
            _fail(explain(error)[0])
        return results
    for bench in benches:
        if req.mc_mode != "generate":
            from secreason.evals.loglik import loglik_run

            think = req.mc_mode == "think-then-loglik"
            results.append(loglik_run(runner, bench, think=think))
        else:
            results.append(runner.run(bench))
    if req.lm_eval_tasks:
        results.append(
            run_general(
                runner, settings, req.lm_eval_tasks, req.out, req.lm_eval_include, req.batch_size
            )
        )
    if alpaca is not None:
        results.append(
            run_alpaca(
                runner,
                settings,
                *alpaca,
                req.out,
                judge_model=req.alpaca_judge,
                judge_base_url=req.alpaca_judge_base_url,
                verdict=req.alpaca_verdict,
                length_controlled=req.alpaca_length_controlled,
            )
        )
    return results


def run(req: EvalRequest) -> None:
    """The whole command after option parsing (``--list`` aside)."""
    settings, benches, alpaca = plan(req)
    runner = Runner(
        req.out,
        settings,
        model_backend(req) if req.generating else None,
        judge=judge_factory(req),
        judge_id=req.judge_model or "",
    )
    benches, check = _preflight(req, runner, benches, alpaca)
    run_info = {
        **settings.as_dict(),
        "benchmarks": [b.name for b in benches],
        "rows": check.rows,
        "skipped": sorted(check.unavailable) if req.skip_unavailable else [],
        "model_context": check.context,
        "server": _server_info(req, check.server),
        "judge_model": req.judge_model,
        "predictions": str(req.predictions) if req.predictions else None,
        "command": " ".join(sys.argv),
    }
    out = req.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps(run_info, indent=2) + "\n")
    try:
        results = _execute(req, runner, settings, benches, alpaca)
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
    if req.predictions is not None:
        report = build_report(results, run_info)
        scores = {
            b["name"]: {p: {k: v["mean"] for k, v in m.items()} for p, m in b["protocols"].items()}
            for b in report["benchmarks"]
        }
        sys.stdout.write(json.dumps(scores, indent=2) + "\n")
    else:
        sys.stdout.write(markdown(json.loads(paths["json"].read_text())))
    typer.echo(f"report: {paths['md']} (+ .json .csv .png) in {out}", err=True)
