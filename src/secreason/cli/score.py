"""``secreason score``: score a JSONL file of completions with one task, offline.

Each input line is a JSON object with ``completion`` (the model's raw text) and
``reference`` (the gold answer as a string; a list is joined with ", "); any other
field is passed through. Each output line carries those fields plus ``answer``,
``score``, ``status``, ``details`` and ``format`` (the reasoning contract's verdict).
The completion itself is not echoed back.

A malformed line does not stop the run: its output line holds ``line`` and ``error``
instead, the error is repeated on stderr with the line number, the other lines are
scored, and the exit code is 1. The aggregate (the task's own metrics, plus how many
lines failed and how many passed the format checks) goes to stderr as JSON, or to
``--summary FILE``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any

import typer

from secreason.cli._errors import fail as _fail


def register(app: typer.Typer) -> None:
    app.command("score")(score)


def _parse_option(raw: str) -> tuple[str, Any]:
    key, sep, value = raw.partition("=")
    if not sep or not key.strip():
        _fail(f"{raw!r}: expected KEY=VALUE, e.g. hierarchy=true")
    try:
        parsed: Any = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip(), parsed


def _map_file_problem(path: Path) -> str | None:
    """Why a JSON name-map file cannot be read as text (missing, a folder, not UTF-8)."""
    from secreason.evals.sources import utf8_problem

    if path.is_dir():
        return f"{path}: a folder, not a file; give a JSON file mapping a name to a list of names"
    if not path.is_file():
        return f"{path}: no such file; give a JSON file mapping a name to a list of names"
    try:
        path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return utf8_problem(path)
    return None


def _reference(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    raise ValueError(f"'reference' must be a string (or a list of strings), got {value!r}")


def _records(stream: IO[str]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(stream, start=1):
        if line.strip():
            yield number, line


def score(
    task: Annotated[str, typer.Argument(help="Task name: mcq, cwe, cvss, ate, taa or rms.")],
    predictions: Annotated[
        Path, typer.Argument(help="JSONL file with 'completion' and 'reference' ('-' = stdin).")
    ],
    protocol: Annotated[
        str, typer.Option(help="strict (Answer: line) or official (the benchmark's rule).")
    ] = "strict",
    prefilled: Annotated[
        bool, typer.Option(help="The prompt ended with <think>: completions start inside it.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Write the scored lines here instead of stdout.")
    ] = None,
    summary: Annotated[
        Path | None, typer.Option(help="Write the aggregate JSON here instead of stderr.")
    ] = None,
    aliases: Annotated[
        Path | None, typer.Option(help="taa: alias map (JSON): name -> list of aliases.")
    ] = None,
    related: Annotated[
        Path | None, typer.Option(help="taa: related-groups map (JSON): name -> list of groups.")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Task option KEY=VALUE, e.g. hierarchy=true. Repeatable."),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="Deprecated alias of --set.", hidden=True),
    ] = None,
) -> None:
    """Score completions with a task; one JSON line out per line in."""
    from secreason.tasks import PROTOCOLS, get_task, task_names

    if protocol not in PROTOCOLS:
        _fail(f"{protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    if task not in task_names():
        _fail(f"unknown task {task!r}; known: {', '.join(task_names())}")
    if option:
        typer.echo("warning: -o/--option is deprecated; use --set KEY=VALUE", err=True)
    options = dict(_parse_option(raw) for raw in [*(option or []), *(set_ or [])])
    if aliases is not None or related is not None:
        if task != "taa":
            _fail("--aliases/--related apply to the taa task only")
        options.update(aliases=aliases, related=related)
        for flag, path in (("--aliases", aliases), ("--related", related)):
            problem = _map_file_problem(path) if path is not None else None
            if problem:
                _fail(f"{flag} {problem}")
    try:
        scorer = get_task(task, **options)
    except (TypeError, ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: task {task!r}: {exc}", err=True)
        raise typer.Exit(2) from None

    if str(predictions) != "-" and not predictions.is_file():
        what = "is a folder, not a JSONL file" if predictions.is_dir() else "does not exist"
        typer.echo(f"error: {predictions} {what}", err=True)
        raise typer.Exit(2)
    # utf-8-sig: a byte-order mark (Windows editors) is not part of the first line
    source = sys.stdin if str(predictions) == "-" else predictions.open(encoding="utf-8-sig")
    sink = out.open("w", encoding="utf-8") if out else sys.stdout
    scores = []
    errors = 0
    format_ok = 0
    try:
        for number, line in _records(source):
            try:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"not valid JSON ({exc})") from None
                if not isinstance(record, dict):
                    raise ValueError("the line is not a JSON object")
                if not isinstance(record.get("completion"), str):
                    raise ValueError("missing 'completion' (a string)")
                if "reference" not in record:
                    raise ValueError("missing 'reference'")
                judgement = scorer.judge(
                    record.pop("completion"),
                    _reference(record["reference"]),
                    protocol=protocol,
                    prefilled=prefilled,
                )
            except (ValueError, TypeError) as exc:
                errors += 1
                message = f"{predictions}: line {number}: {exc}"
                typer.echo(f"error: {message}", err=True)
                sink.write(json.dumps({"line": number, "error": str(exc)}) + "\n")
                continue
            scores.append(judgement.score)
            format_ok += judgement.format.ok
            sink.write(json.dumps({**record, **judgement.as_dict()}, ensure_ascii=False) + "\n")
    finally:
        if source is not sys.stdin:
            source.close()
        if sink is not sys.stdout:
            sink.close()

    if not scores and not errors:
        typer.echo(f"error: {predictions}: no lines to score (the input is empty)", err=True)
        raise typer.Exit(2)
    aggregate: dict[str, Any] = {"task": task, "protocol": protocol}
    aggregate.update(scorer.aggregate(scores))
    aggregate["errors"] = errors
    aggregate["format_ok_rate"] = format_ok / len(scores) if scores else 0.0
    # NaN (e.g. a MAD with no valid vector) is not JSON: write null.
    aggregate = {k: None if v != v else v for k, v in aggregate.items()}
    text = json.dumps(aggregate, indent=2)
    if summary is not None:
        summary.write_text(text + "\n", encoding="utf-8")
    else:
        typer.echo(text, err=True)
    if errors:
        typer.echo(f"error: {errors} line(s) could not be scored", err=True)
        raise typer.Exit(1)
