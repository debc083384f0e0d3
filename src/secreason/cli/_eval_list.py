"""``secreason eval --list``: what can be evaluated, by which name, from which file.

Without ``--data`` it lists the names (benchmarks, suites, aliases) and each
benchmark's published file; with ``--data`` it also resolves that source the way a run
would, so a user sees which file each benchmark would read and how many rows it holds
(or why it cannot be read) before starting anything.
"""

from __future__ import annotations

from typing import Any

import typer


def print_listing(data: str | dict[str, str] | None, limit: int | None = None) -> None:
    from secreason.cli._errors import explain
    from secreason.evals.registry import ALIASES, SUITES, benchmark_names, get_benchmark
    from secreason.evals.runner import Runner, RunSettings

    missing = _missing_paths(data)
    if missing:
        from secreason.cli._errors import fail

        fail(
            f"--data {missing[0]}: no such file or folder; give a benchmark file, its folder "
            "or a folder holding every benchmark's folder"
        )
    settings = RunSettings(data=data, limit=limit)
    runner = Runner("unused", settings)
    lines: list[str] = ["benchmarks:"]
    benches: dict[str, Any] = {name: get_benchmark(name) for name in benchmark_names()}
    files = {n: getattr(b, "file", "") or b.default_source or "-" for n, b in benches.items()}
    width = max(map(len, files.values()))  # rows and sources start in one column
    for name, bench in benches.items():
        suites = ",".join(s for s, members in SUITES.items() if name in members) or "-"
        line = f"  {name:<20} suites={suites:<24} file={files[name]}"
        if data is not None:
            line = f"  {name:<20} suites={suites:<24} file={files[name]:<{width}}"
            source = settings.source(bench)
            try:
                rows = len(runner.load(bench))
                line += f"  rows={rows} ({_where(bench, source)})"
            except Exception as error:  # listed, not raised: --list reports every entry
                line += f"  unavailable: {explain(error)[0].splitlines()[0]}"
        lines.append(line)
    lines.append("suites:")
    lines += [f"  {name:<20} {' '.join(members)}" for name, members in SUITES.items()]
    lines.append("aliases:")
    lines += [f"  {alias:<20} = {target}" for alias, target in ALIASES.items()]
    typer.echo("\n".join(lines))


def _where(bench: Any, source: str | None) -> str:
    """The file a local source resolves to, else the source itself."""
    from secreason.evals.sources import local_file

    names = getattr(bench, "file", "") or bench.default_source
    try:
        path = local_file(source, names) if source and names else None
    except (OSError, ValueError):
        path = None
    return str(path) if path is not None else str(source or bench.default_source)


def _missing_paths(data: str | dict[str, str] | None) -> list[str]:
    """The ``--data`` values that look like local paths but do not exist (hub ids pass)."""
    from pathlib import Path

    values = list(data.values()) if isinstance(data, dict) else [data] if data else []
    missing = []
    for value in values:
        path = Path(value).expanduser()
        if path.exists():
            continue
        first = path.parts[0] if path.parts else ""
        local_looking = (
            value.startswith((".", "/", "~"))
            or value.count("/") > 1
            or path.suffix in (".json", ".jsonl", ".tsv", ".csv", ".parquet", ".gz")
            or (first != value and Path(first).is_dir())
        )
        if local_looking:
            missing.append(value)
    return missing
