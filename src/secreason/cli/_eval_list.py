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

    settings = RunSettings(data=data, limit=limit)
    runner = Runner("unused", settings)
    lines: list[str] = ["benchmarks:"]
    for name in benchmark_names():
        bench: Any = get_benchmark(name)
        suites = ",".join(s for s, members in SUITES.items() if name in members) or "-"
        file = getattr(bench, "file", "") or bench.default_source or "-"
        line = f"  {name:<20} suites={suites:<24} file={file}"
        if data is not None:
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
