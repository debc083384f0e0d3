"""Commands that hand secreason's work to other tools: ``data export`` (verl, OpenRLHF
data), ``reward-server`` (OpenRLHF remote rewards), ``export`` (vLLM, Ollama, GGUF
deployment files) and ``card`` (the model card)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import typer

from secreason.cli._errors import fail, jsonl_problem, port_problem


def _json_file(path: Path) -> Any:
    """A JSON file's content; a broken one is a ValueError naming ``FILE:LINE``."""
    from secreason.evals.sources import utf8_problem

    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise ValueError(utf8_problem(path)) from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{error.lineno}: not JSON ({error.msg})") from None


def _check_reports(runs: list[Path]) -> None:
    """Each ``--eval`` run's report.json is readable JSON holding an object (else fail)."""
    for run in runs:
        path = run / "report.json" if run.is_dir() else run
        if not path.is_file():
            continue  # load_reports says how to make one
        try:
            report = _json_file(path)
        except ValueError as err:
            fail(str(err))
        if not isinstance(report, dict):
            fail(f"{path}: not a `secreason eval` report (expected a JSON object)")


# What Ollama accepts as a model name (namespace/name:tag); the name also lands in the
# card's copy-paste commands and launch.sh, so nothing a shell would read is allowed.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}(?:/[A-Za-z0-9._-]{1,128})?(?::[\w.-]{1,64})?")


def _name_problem(name: str, flag: str) -> str | None:
    if _NAME.fullmatch(name):
        return None
    return (
        f"{flag} {name!r}: use letters, digits, '.', '_' and '-' (optionally org/name:tag); "
        "the name goes into shell commands and the Ollama model name"
    )


def _out_problem(out: Path, subfolders: list[str]) -> str | None:
    """Why ``--out`` (and the folders written inside it) cannot be a folder, said before
    anything is written."""
    if out.exists() and not out.is_dir():
        return f"--out {out}: a file, not a folder; give a folder to write into"
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            return f"--out {out}: {parent} is a file, not a folder; choose another --out"
    for sub in subfolders:
        if (out / sub).exists() and not (out / sub).is_dir():
            return f"--out {out}: {out / sub} is a file where a folder goes; move it away"
    return None


def register(app: typer.Typer) -> None:
    from secreason.cli.data import data_app

    @data_app.command("export")
    def data_export(
        source: Path = typer.Argument(
            ..., help="RL data: a run's rl/ folder (hf/ or *.jsonl) or one JSONL file."
        ),
        format_: str = typer.Option(..., "--format", help="verl (parquet) or openrlhf (JSONL)."),
        out: Path = typer.Option(..., "--out", help="Output folder (one file per split)."),
    ) -> None:
        """Write RL prompts in another trainer's layout, rewards routed by task."""
        from secreason.integrations.verl import export_verl, read_rl_rows

        if format_ not in ("verl", "openrlhf"):
            fail(f"--format {format_!r}: expected verl or openrlhf")
        problem = jsonl_problem(source) or _out_problem(out, [])
        if problem:
            fail(problem)
        try:
            splits = read_rl_rows(source)
            suffix = ".parquet" if format_ == "verl" else ".jsonl"
            stale = sorted(
                p.name
                for p in (out.glob(f"*{suffix}") if out.is_dir() else [])
                if p.stem not in splits
            )
            if stale:  # a trainer pointed at the folder would read them too
                typer.echo(
                    f"warning: {out} also holds {', '.join(stale)} from an earlier export; "
                    "they are not this export's splits",
                    err=True,
                )
            if format_ == "verl":
                paths = export_verl(splits, out)
            else:
                from secreason.integrations.openrlhf import export_openrlhf

                paths = export_openrlhf(splits, out)
        except (ValueError, FileNotFoundError, KeyError) as err:
            fail(str(err))
        typer.echo(json.dumps({"format": format_, "files": [str(p) for p in paths]}))

    @app.command("reward-server")
    def reward_server(
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
        port: int = typer.Option(5000, "--port", help="Port to listen on."),
        api_key: list[str] = typer.Option(
            None, "--api-key", help="Accepted API key (repeatable; also $SECREASON_API_KEYS)."
        ),
        max_body_bytes: int = typer.Option(
            64 * 1024 * 1024, "--max-body-bytes", help="Larger request bodies get 413."
        ),
        max_concurrent: int = typer.Option(
            16, "--max-concurrent", help="Requests scored at once; more get 429."
        ),
        max_batch: int = typer.Option(16384, "--max-batch", help="Most rows in one request."),
        format_penalty: float = typer.Option(
            1.0, "--format-penalty", help="Subtracted when the reasoning format checks fail."
        ),
        task: str = typer.Option(
            None, "--task", help="Task of every row when labels are bare references."
        ),
        body_timeout_s: float = typer.Option(
            30.0, "--body-timeout-s", help="A request's whole body must arrive within this."
        ),
        header_timeout_s: float = typer.Option(
            10.0, "--header-timeout-s", help="A connection's request headers, likewise."
        ),
        drain_timeout_s: float = typer.Option(
            30.0, "--drain-timeout-s", help="On SIGTERM, requests in flight get this long."
        ),
    ) -> None:
        """Serve the task rewards for OpenRLHF's remote reward mode (POST /get_reward)."""
        import math

        from secreason.integrations.inputs import check_penalty
        from secreason.integrations.reward_server import RewardServerSettings, run
        from secreason.tasks import task_names

        if task is not None and task not in task_names():
            fail(f"--task {task!r}: expected one of {', '.join(task_names())}")
        try:
            check_penalty(format_penalty, "--format-penalty")
        except ValueError as err:
            fail(str(err))
        counts = {"--max-body-bytes": max_body_bytes, "--max-concurrent": max_concurrent,
                  "--max-batch": max_batch}  # fmt: skip
        times = {"--body-timeout-s": body_timeout_s, "--header-timeout-s": header_timeout_s,
                 "--drain-timeout-s": drain_timeout_s}  # fmt: skip
        for flag, value in [*counts.items(), *times.items()]:
            if not (math.isfinite(value) and value > 0):
                fail(f"{flag} {value}: expected a number above 0")
        problem = port_problem(host, port)
        if problem:
            fail(problem)
        settings = RewardServerSettings.with_env_keys(
            host=host,
            port=port,
            api_keys=set(api_key or []),
            max_body_bytes=max_body_bytes,
            max_concurrent=max_concurrent,
            max_batch=max_batch,
            format_penalty=format_penalty,
            default_task=task,
            body_timeout_s=body_timeout_s,
            header_timeout_s=header_timeout_s,
            drain_timeout_s=drain_timeout_s,
        )
        if not settings.api_keys:
            typer.echo("warning: no API key set; the reward server is open", err=True)
        run(settings)

    @app.command("export")
    def export(
        model_dir: Path = typer.Argument(..., help="A trained model folder (e.g. rl/final)."),
        to: list[str] = typer.Option(
            ..., "--to", help="vllm, ollama or gguf (repeatable, or comma-separated)."
        ),
        out: Path = typer.Option(..., "--out", help="Output folder (one subfolder per target)."),
        name: str = typer.Option(None, "--name", help="Served / Ollama model name."),
        system_prompt: Path = typer.Option(
            None, "--system-prompt", help="File with the system prompt (default: secreason's)."
        ),
        eval_run: list[Path] = typer.Option(
            None, "--eval", help="`secreason eval` output folder for the model card (repeatable)."
        ),
        data_summary: Path = typer.Option(
            None, "--data-summary", help="summary.json of the data run, for the card."
        ),
    ) -> None:
        """Deployment files for vLLM, Ollama and llama.cpp (GGUF), plus a model card."""
        from secreason.export import export_model
        from secreason.export.template import TemplateError

        targets = [t.strip() for item in to for t in item.split(",") if t.strip()]
        problem = _out_problem(out, targets)
        if name is not None:
            problem = problem or _name_problem(name, "--name")
        elif not problem and _name_problem(folder := model_dir.resolve().name, ""):
            problem = f"the model folder's name {folder!r} is no model name; give --name"
        if problem:
            fail(problem)
        if data_summary is not None:
            if not data_summary.is_file():
                fail(f"--data-summary {data_summary}: no such file")
            try:
                _json_file(data_summary)
            except ValueError as err:
                fail(f"--data-summary: {err}")
        _check_reports(eval_run or [])
        prompt = system_prompt.read_text(encoding="utf-8").strip() if system_prompt else None
        try:
            summary = export_model(
                model_dir,
                targets,
                out,
                name=name,
                system_prompt=prompt,
                eval_runs=eval_run or [],
                data_summary=data_summary,
            )
        except (ValueError, FileNotFoundError, TemplateError, RuntimeError) as err:
            fail(str(err))
        for warning in summary["files"].get("gguf_warnings", []):
            typer.echo(f"warning: {warning}", err=True)
        typer.echo(json.dumps(summary, indent=2))

    @app.command("card")
    def card(
        model_dir: Path = typer.Argument(..., help="A trained model folder."),
        eval_run: list[Path] = typer.Option(
            None, "--eval", help="`secreason eval` output folder (repeatable)."
        ),
        data_summary: Path = typer.Option(None, "--data-summary", help="Data run summary.json."),
        out: Path = typer.Option(None, "--out", help="Card path (default MODEL_DIR/README.md)."),
        name: str = typer.Option(None, "--name", help="Model name in the card (default: folder)."),
    ) -> None:
        """(Re)write the Hugging Face model card, with model-index from eval reports."""
        from secreason.export.card import load_reports, render_card

        if not model_dir.is_dir():
            fail(f"{model_dir}: not a folder")
        problem = _name_problem(name, "--name") if name else None
        if problem:
            fail(problem)
        if out is not None and out.is_dir():
            fail(f"--out {out}: a folder; give the card's file path (e.g. {out}/README.md)")
        _check_reports(eval_run or [])
        try:
            reports = load_reports(eval_run or [])
            summary = _json_file(data_summary) if data_summary else None
        except (ValueError, FileNotFoundError) as err:
            fail(str(err))
        text = render_card(model_dir, name=name, reports=reports, data_summary=summary)
        path = out or model_dir / "README.md"
        path.write_text(text, encoding="utf-8")
        typer.echo(str(path))
