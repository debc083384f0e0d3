"""The report's de-duplicated section: full set and de-duplicated set side by side.

Why a section of its own: the full set stays the headline (it is what the published
numbers were computed on), and a reader comparing the two needs them in adjacent
columns with what was removed and why (``evals.dedup``) on the same line.
"""

from __future__ import annotations

from typing import Any

from secreason.evals.dedup import PREFIX


def _mean(stat: dict[str, Any] | None) -> float | None:
    return None if not stat else stat.get("mean")


def _cell(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _count(value: float | None) -> str:
    return "-" if value is None else str(int(round(value)))


def dedup_lines(report: dict[str, Any]) -> list[str]:
    """Markdown lines for every benchmark scored with ``--dedup`` (none: no lines)."""
    rows = []
    for bench in report.get("benchmarks", []):
        headline = bench["headline"]
        for protocol, metrics in bench.get("protocols", {}).items():
            if PREFIX + "n" not in metrics:
                continue
            rows.append(
                f"| {bench['name']} | {headline} | {protocol} "
                f"| {_cell(_mean(metrics.get(headline)))} "
                f"| {_cell(_mean(metrics.get(PREFIX + headline)))} "
                f"| {_count(_mean(metrics.get('n')))} "
                f"| {_count(_mean(metrics.get(PREFIX + 'n')))} "
                f"| {_count(_mean(metrics.get(PREFIX + 'duplicates')))} "
                f"| {_count(_mean(metrics.get(PREFIX + 'conflicting_groups')))} "
                f"({_count(_mean(metrics.get(PREFIX + 'conflicting_rows')))} rows) |"
            )
    if not rows:
        return []
    return [
        "",
        "## De-duplicated set",
        "",
        "Duplicates share the normalised prompt; the first row of each is kept; groups "
        "whose golds disagree are left out. The full set is the published one.",
        "",
        "| benchmark | metric | protocol | full | de-duplicated | n full | n dedup "
        "| duplicates | conflicting groups |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]
