"""The report's PNG: one panel per metric family, intervals as error bars.

Unlike metrics never share an axis: scores (higher is better), MAD (lower is better,
another scale) and failure rates each get a panel. Published numbers are markers on
the bar of the protocol they were published under, and a benchmark without one says
"no published number" instead of showing an empty bar that reads as 0. The title names
the run and the benchmark set, not a model path.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from secreason.evals.report import LOWER_IS_BETTER, PROTOCOL_ORDER, published_models

MARKERS = ("D", "*", "^", "s", "v", "P")


def run_label(run: dict[str, Any]) -> str:
    """``demo/rl`` for ``runs/demo/rl/final``; the run's name when it has one."""
    if run.get("run_name"):
        return str(run["run_name"])
    model = str(run.get("model") or "predictions").rstrip("/")
    parts = [p for p in Path(model).parts if p not in ("final", ".", "runs")]
    return "/".join(parts[-2:]) if parts else model


def _title(report: dict[str, Any]) -> str:
    names = [b["name"] for b in report["benchmarks"]]
    shown = ", ".join(names) if len(", ".join(names)) <= 70 else f"{len(names)} benchmarks"
    title = f"{run_label(report.get('run', {}))}: {shown}"
    subsets = [b["subset"] for b in report["benchmarks"] if b.get("subset")]
    if not subsets:
        return title
    # The PNG travels alone (slides, chats): it carries the caveat itself.
    sizes = sorted({s["n"] for s in subsets})
    n = f"n = {sizes[0]:,} per benchmark" if len(sizes) == 1 else "n varies"
    return f"{title} (subset)\n{n}: not comparable to the published numbers"


def _families(report: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Panels: (title, [(benchmark, metric)])."""
    scores, lower = [], []
    for bench in report["benchmarks"]:
        present = {m for p in bench["protocols"].values() for m in p}
        if bench["headline"] not in LOWER_IS_BETTER:
            scores.append((bench["name"], bench["headline"]))
        lower += [(bench["name"], m) for m in LOWER_IS_BETTER if m in present]
    out = [("headline score (higher is better)", scores)]
    if lower:
        out.append(("MAD (lower is better)", lower))
    out.append(("failure rates (lower is better)", []))
    return out


def _stat(bench: dict[str, Any], protocol: str, metric: str) -> tuple[float, float, float]:
    stat = bench["protocols"].get(protocol, {}).get(metric) or {}
    mean = stat.get("mean")
    if mean is None or math.isnan(float(mean)):
        return math.nan, 0.0, 0.0
    ci = stat.get("ci") or [mean, mean]
    return float(mean), float(mean) - float(ci[0]), float(ci[1]) - float(mean)


def _score_panel(ax: Any, report: dict[str, Any], items: list[tuple[str, str]]) -> None:
    benches = {b["name"]: b for b in report["benchmarks"]}
    models = published_models(report)
    width = 0.38
    top = 0.0
    for k, protocol in enumerate(PROTOCOL_ORDER):
        xs, ys, lo, hi, labels = [], [], [], [], []
        for i, (name, metric) in enumerate(items):
            mean, down, up = _stat(benches[name], protocol, metric)
            xs.append(i + (k - 0.5) * width)
            labels.append("" if math.isnan(mean) else f"{mean:.2f}")
            ys.append(0.0 if math.isnan(mean) else mean)
            if math.isnan(mean) and protocol in benches[name]["protocols"]:
                ax.text(xs[-1], 0.01, "n/a", ha="center", va="bottom", fontsize=7, color="grey")
            lo.append(down)
            hi.append(up)
            top = max(top, ys[-1] + up)
        bars = ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=protocol, alpha=0.85)
        # A score of 0 draws no bar: its number says it was measured.
        ax.bar_label(bars, labels=labels, fontsize=6, padding=1)
    drawn: set[str] = set()
    for i, (name, metric) in enumerate(items):
        refs = [r for r in benches[name]["references"] if r["metric"] == metric]
        if not refs:
            ax.text(
                i,
                top * 1.05 + 0.02,
                "no published\nnumber",
                ha="center",
                va="bottom",
                fontsize=7,
                color="grey",
            )
        for ref in refs:
            k = PROTOCOL_ORDER.index(ref["protocol"]) if ref["protocol"] in PROTOCOL_ORDER else 0
            marker = MARKERS[models.index(ref["model"]) % len(MARKERS)]
            label = None if ref["model"] in drawn else f"published: {ref['model']}"
            drawn.add(ref["model"])
            ax.plot(i + (k - 0.5) * width, ref["value"], marker, color="black", label=label)
            top = max(top, ref["value"])
    ax.set_xticks(range(len(items)))
    ax.set_xticklabels([n for n, _ in items], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, max(0.1, top * 1.3 + 0.05))


def _rates_panel(ax: Any, report: dict[str, Any]) -> None:
    benches = report["benchmarks"]
    series: list[tuple[str, str | None, str]] = [
        ("invalid", "official", "invalid_rate"),
        ("invalid", "strict", "invalid_rate"),
    ]
    series += [("truncated", None, "truncated_rate"), ("unclosed", None, "unclosed_rate")]
    width = 0.8 / len(series)
    for k, (label, protocol, metric) in enumerate(series):
        ys, lo, hi = [], [], []
        for bench in benches:
            p = protocol or next(iter(bench["protocols"]), "official")
            mean, down, up = _stat(bench, p, metric)
            ys.append(0.0 if math.isnan(mean) else mean)
            lo.append(down)
            hi.append(up)
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(benches))]
        name = f"{label} ({protocol})" if protocol else label
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=name, alpha=0.85)
    ax.set_xticks(range(len(benches)))
    ax.set_xticklabels([b["name"] for b in benches], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)


def chart(report: dict[str, Any], path: Path) -> None:
    """Write the PNG (one panel per metric family; legends beside, never over, bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = _families(report)
    n = max(1, len(report["benchmarks"]))
    fig, axes = plt.subplots(
        len(families), 1, figsize=(max(7.0, 1.1 * n + 4), 3.6 * len(families)), squeeze=False
    )
    for ax, (title, items) in zip(axes[:, 0], families, strict=True):
        if title.startswith("failure"):
            _rates_panel(ax, report)
        else:
            _score_panel(ax, report, items)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(_title(report), fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
