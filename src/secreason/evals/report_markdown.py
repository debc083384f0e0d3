"""The markdown report: one table a person reads first, then notes and published numbers.

Why a module of its own: what a reader sees decides what they conclude, so the rules
of presentation are kept together: official and strict side by side, each mean with
its 95 % interval, the invalid (per protocol), truncation and unclosed-reasoning rates
in every row, a subset caveat above the table, a note when an interval has no width
because every item scored the same, the de-duplicated set beside the full one
(``evals.report_dedup``) and the headline against the published numbers, with a mark
where a subset makes them incomparable. ``evals.report`` builds the data it renders.
"""

from __future__ import annotations

from typing import Any

from secreason.evals.report import LOWER_IS_BETTER, PROTOCOL_ORDER, RATES, published_models
from secreason.evals.report_dedup import dedup_lines


def fmt(stat: dict[str, Any] | None, trials: int = 1, digits: int = 3) -> str:
    """``0.600 [0.420, 0.780]``: the mean and its 95 % interval (``-`` when absent)."""
    if not stat or stat.get("mean") is None:
        return "-"
    text = f"{stat['mean']:.{digits}f}"
    ci = stat.get("ci")
    if ci:
        text += f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
    elif trials > 1 and stat.get("std") is not None:
        text += f" ± {stat['std']:.{digits}f}"
    return text


def shown_metrics(bench: dict[str, Any]) -> list[str]:
    """The headline, then any lower-is-better metric the benchmark also reports."""
    present = {m for p in bench["protocols"].values() for m in p}
    return [bench["headline"]] + [
        m for m in LOWER_IS_BETTER if m in present and m != bench["headline"]
    ]


def render(report: dict[str, Any]) -> str:
    """The whole report as markdown."""
    run = report.get("run", {})
    lines = [
        f"# Evaluation of {run.get('model') or 'predictions'}",
        "",
        f"backend `{run.get('backend', '-')}`, {report['created']}. Each cell is the mean "
        "over trials and its 95% interval (bootstrap over items, trials pooled). "
        "invalid = no valid answer extracted (wrong under strict); truncated = stopped by "
        "the token limit; unclosed = reasoning never closed. mad: lower is better.",
        "",
    ]
    server = run.get("server") or {}
    if server:  # through a server: its system-prompt policy decides what the model saw
        policy = (server.get("system_prompt") or {}).get("mode", "unknown")
        lines += [
            f"Served at {server.get('url', '-')}; server system-prompt policy: **{policy}** "
            "(benchmark prompts reach the model unchanged only under `off`).",
            "",
        ]
    caveats = [b["caveat"] for b in report["benchmarks"] if b.get("caveat")]
    if caveats:
        lines += ["> **Subset.** " + " ".join(f"{c}." for c in caveats), ""]
    lines += [
        "| benchmark | metric | official | strict | invalid (off / strict) "
        "| truncated | unclosed | n | trials |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for bench in report["benchmarks"]:
        protocols, trials = bench["protocols"], bench["trials"]
        first: dict[str, Any] = next(iter(protocols.values()), {})
        invalid = " / ".join(
            fmt(protocols.get(p, {}).get("invalid_rate"), trials) for p in PROTOCOL_ORDER
        )
        n = f"{bench['n_samples']}" + (" (subset)" if bench.get("subset") else "")
        for metric in shown_metrics(bench):
            cells = [fmt(protocols.get(p, {}).get(metric), trials) for p in PROTOCOL_ORDER]
            lines.append(
                f"| {bench['name']} | {metric} | {cells[0]} | {cells[1]} | {invalid} "
                f"| {fmt(first.get('truncated_rate'), trials)} "
                f"| {fmt(first.get('unclosed_rate'), trials)} | {n} | {trials} |"
            )
    lines += _flat_note(report)
    lines += dedup_lines(report)  # evals.report_dedup: full and de-duplicated side by side
    lines += _published(report)
    return "\n".join(lines) + "\n"


def _flat_note(report: dict[str, Any]) -> list[str]:
    """A note when a rate's interval has no width: every item scored the same."""
    sizes = []
    for bench in report["benchmarks"]:
        for stats in bench["protocols"].values():
            for metric in [*shown_metrics(bench), *RATES]:
                stat = stats.get(metric) or {}
                ci, mean = stat.get("ci"), stat.get("mean")
                if ci and ci[0] == ci[1] and mean in (0.0, 1.0) and stat.get("n_items"):
                    sizes.append(int(stat["n_items"]))
    if not sizes:
        return []
    n = min(sizes)
    bound = 1 - 0.025 ** (1 / n)
    return [
        "",
        "An interval such as [0.000, 0.000] means every item scored the same: the "
        "bootstrap cannot reach past the sample. With all of n items wrong, the exact "
        f"(Clopper-Pearson) 95% interval is [0, {bound:.3f}] for n = {n} "
        f"(all right: [{1 - bound:.3f}, 1]).",
    ]


def _published(report: dict[str, Any]) -> list[str]:
    models = published_models(report)
    if not models:
        return []
    lines = [
        "",
        "## Against published numbers",
        "",
        "| benchmark | metric | protocol | this run | " + " | ".join(models) + " |",
        "|---|---|---|---|" + "---|" * len(models),
    ]
    for bench in report["benchmarks"]:
        keys: list[tuple[str, str]] = []
        for ref in bench["references"]:
            if (ref["metric"], ref["protocol"]) not in keys:
                keys.append((ref["metric"], ref["protocol"]))
        mark = " †" if bench.get("subset") else ""
        for metric, protocol in keys:
            stat = bench["protocols"].get(protocol, {}).get(metric)
            cells = []
            for model in models:
                hit = [
                    r
                    for r in bench["references"]
                    if r["model"] == model and (r["metric"], r["protocol"]) == (metric, protocol)
                ]
                cells.append(f"{hit[0]['value']:.3f}" if hit else "no published number")
            lines.append(
                f"| {bench['name']} | {metric} | {protocol} | "
                f"{fmt(stat, bench['trials'])}{mark} | " + " | ".join(cells) + " |"
            )
    sources = sorted({r["source"] for b in report["benchmarks"] for r in b["references"]})
    lines += ["", "Published numbers: " + "; ".join(sources) + "."]
    if any(b.get("subset") for b in report["benchmarks"]):
        lines.append("† scored on a subset: not comparable to the published number.")
    return lines
