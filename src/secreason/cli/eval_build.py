"""``secreason build-benchmark``: make a benchmark file that ``secreason eval`` then loads.

Some benchmarks are not downloaded but built, so that they postdate a model's training
data: CWE prediction reads the NVD CVE JSON 2.0 feeds or GitHub advisory dumps a user
downloads and keeps the CVEs published in a date window. The builder's report (what
was kept, what was dropped and why) goes to stdout as JSON, since a benchmark whose
filters are not visible cannot be trusted.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

import typer

build_app = typer.Typer(
    no_args_is_help=True,
    help="Build fresh benchmark files from data you downloaded (then: secreason eval).",
)


def _date(value: str | None, flag: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        typer.echo(f"error: {flag} {value!r}: expected a date YYYY-MM-DD", err=True)
        raise typer.Exit(2) from None


def _undecodable(inputs: list[Path]) -> str:
    """``FILE:LINE: not UTF-8`` for the first plain input file that is not UTF-8 text."""
    from secreason.evals.sources import utf8_problem

    files = [f for p in inputs for f in ([p] if p.is_file() else sorted(p.rglob("*.json")))]
    for path in files:
        try:
            path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            return utf8_problem(path)
    return "an input file is not UTF-8 text; save it as UTF-8"


def _out_problem(out: Path) -> str | None:
    """Why ``--out`` cannot be written (a folder, or under a file), known before reading."""
    if out.is_dir():
        return f"--out {out}: a folder; give the TSV file to write (e.g. {out}/cwe-prediction.tsv)"
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            return f"--out {out}: {parent} is a file, not a folder; choose another --out path"
    return None


@build_app.command("cwe-prediction")
def cwe_prediction(
    inputs: list[Path] = typer.Argument(
        ...,
        help="NVD CVE JSON 2.0 feeds (nvdcve-2.0-*.json[.gz]), GitHub advisory (OSV) JSON "
        "files, or folders searched for *.json / *.json.gz.",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="The TSV to write (cwe-prediction.tsv)."),
    since: str = typer.Option(
        ...,
        "--since",
        help="Keep CVEs published on or after this date (after the model's training cut-off).",
    ),
    until: str = typer.Option(None, "--until", help="... and on or before this date."),
    limit: int = typer.Option(None, "--limit", min=1, help="Keep at most N, sampled by --seed."),
    seed: int = typer.Option(0, "--seed", help="Seed of the --limit sample."),
) -> None:
    """CWE prediction: CVE descriptions with exactly one concrete CWE, in a date window."""
    from secreason.evals.cwe_prediction import build

    start = _date(since, "--since")
    end = _date(until, "--until")
    assert start is not None
    if end is not None and end < start:
        typer.echo(f"error: --until {until} is before --since {since}", err=True)
        raise typer.Exit(2)
    problem = _out_problem(out)
    if problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    try:
        report = build(inputs, out, since=start, until=end, limit=limit, seed=seed)
    except UnicodeDecodeError:
        typer.echo(f"error: {_undecodable(inputs)}", err=True)
        raise typer.Exit(2) from None
    except (FileNotFoundError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    if report.read == 0:
        names = " ".join(str(p) for p in inputs)
        typer.echo(
            f"error: no record read from {names}; give NVD CVE JSON 2.0 feeds or GitHub "
            "advisory (OSV) .json files, or folders holding them",
            err=True,
        )
        raise typer.Exit(2)
    sys.stdout.write(json.dumps({**report.as_dict(), "out": str(out)}, indent=2) + "\n")
    typer.echo(
        f"kept {report.kept} of {report.read} records -> {out}\n"
        f"evaluate: secreason eval cwe-prediction --data {out} --model M --out runs/cwe",
        err=True,
    )
    if report.kept == 0:
        typer.echo("warning: no record passed the filters; check --since/--until", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(build_app, name="build-benchmark")
