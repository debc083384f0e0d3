"""Run reports: JSON for tools, CSV for spreadsheets, markdown for people, a PNG chart.

A number is only useful next to what it should be compared with, so the report puts
the official and strict protocols side by side, keeps invalid-answer and
unclosed-reasoning rates next to every score (a model that "wins" by never closing its
reasoning shows it), gives mean +- std over trials (sample standard deviation, n-1),
and lines each headline up against the published numbers the benchmark module cites.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from secreason.evals.runner import BenchmarkResult

PROTOCOL_ORDER = ("official", "strict")


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """Mean and sample std (0 for a single trial) of a metric over trials."""
    clean = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not clean:
        return {"mean": None, "std": None, "values": list(values)}
    std = statistics.stdev(clean) if len(clean) > 1 else 0.0
    return {"mean": statistics.fmean(clean), "std": std, "values": clean}


def _protocol_summary(trials: Sequence[dict[str, float]]) -> dict[str, dict[str, Any]]:
    keys: list[str] = []
    for metrics in trials:
        keys.extend(k for k in metrics if k not in keys)
    return {k: summarize([m[k] for m in trials if k in m]) for k in keys}


def build_report(results: Sequence[BenchmarkResult], run: dict[str, Any]) -> dict[str, Any]:
    """The report as one JSON-ready dict (what the other formats are rendered from)."""
    benchmarks = []
    for result in results:
        protocols = {
            p: _protocol_summary(result.metrics[p])
            for p in sorted(result.metrics, key=_protocol_rank)
        }
        references = []
        for ref in result.references:
            ours = protocols.get(ref.protocol, {}).get(ref.metric, {}).get("mean")
            references.append(
                {
                    "model": ref.model,
                    "metric": ref.metric,
                    "protocol": ref.protocol,
                    "value": ref.value,
                    "source": ref.source,
                    "ours": ours,
                    "delta": None if ours is None else ours - ref.value,
                }
            )
        benchmarks.append(
            {
                "name": result.name,
                "headline": result.headline,
                "n_samples": result.n_samples,
                "trials": max((len(v) for v in result.metrics.values()), default=0),
                "generated": result.generated,
                "cached": result.cached,
                "protocols": protocols,
                "references": references,
                "samples_log": result.samples_log,
            }
        )
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "run": run,
        "benchmarks": benchmarks,
    }


def _protocol_rank(name: str) -> int:
    return PROTOCOL_ORDER.index(name) if name in PROTOCOL_ORDER else len(PROTOCOL_ORDER)


def fmt(stat: dict[str, Any] | None, trials: int = 1, digits: int = 3) -> str:
    if not stat or stat.get("mean") is None:
        return "-"
    text = f"{stat['mean']:.{digits}f}"
    if trials > 1:
        text += f" ± {stat['std']:.{digits}f}"
    return text


def markdown(report: dict[str, Any]) -> str:
    run = report.get("run", {})
    lines = [
        f"# Evaluation of {run.get('model') or 'predictions'}",
        "",
        f"backend `{run.get('backend', '-')}`, {report['created']}. Scores are mean ± std "
        "over trials; invalid = no valid answer extracted (counted wrong under strict); "
        "unclosed = reasoning never closed.",
        "",
        "| benchmark | metric | official | strict | invalid (off / strict) "
        "| unclosed | n | trials |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for bench in report["benchmarks"]:
        protocols, trials, metric = bench["protocols"], bench["trials"], bench["headline"]
        official, strict = protocols.get("official", {}), protocols.get("strict", {})
        invalid = " / ".join(
            fmt(protocols.get(p, {}).get("invalid_rate"), trials) for p in PROTOCOL_ORDER
        )
        unclosed = next((fmt(protocols[p].get("unclosed_rate"), trials) for p in protocols), "-")
        lines.append(
            f"| {bench['name']} | {metric} | {fmt(official.get(metric), trials)} "
            f"| {fmt(strict.get(metric), trials)} | {invalid} | {unclosed} "
            f"| {bench['n_samples']} | {trials} |"
        )
    models: list[str] = []
    for bench in report["benchmarks"]:
        models.extend(r["model"] for r in bench["references"] if r["model"] not in models)
    if models:
        lines += [
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
            for metric, protocol in keys:
                stat = bench["protocols"].get(protocol, {}).get(metric)
                cells = []
                for model in models:
                    hit = [
                        r
                        for r in bench["references"]
                        if r["model"] == model
                        and (r["metric"], r["protocol"]) == (metric, protocol)
                    ]
                    cells.append(f"{hit[0]['value']:.3f}" if hit else "-")
                lines.append(
                    f"| {bench['name']} | {metric} | {protocol} | "
                    f"{fmt(stat, bench['trials'])} | " + " | ".join(cells) + " |"
                )
        sources = sorted({r["source"] for b in report["benchmarks"] for r in b["references"]})
        lines += ["", "Published numbers: " + "; ".join(sources) + "."]
    return "\n".join(lines) + "\n"


def write_csv(report: dict[str, Any], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["benchmark", "protocol", "metric", "mean", "std", "trials", "values"])
        for bench in report["benchmarks"]:
            for protocol, metrics in bench["protocols"].items():
                for metric, stat in metrics.items():
                    writer.writerow(
                        [
                            bench["name"],
                            protocol,
                            metric,
                            stat["mean"],
                            stat["std"],
                            len(stat["values"]),
                            " ".join(f"{v:.6g}" for v in stat["values"]),
                        ]
                    )


def bar_chart(report: dict[str, Any], path: Path) -> None:
    """Headline per benchmark: official, strict (with std) and the first published model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [b["name"] for b in report["benchmarks"]]
    series: dict[str, tuple[list[float], list[float]]] = {}
    for label in PROTOCOL_ORDER:
        means: list[float] = []
        stds: list[float] = []
        for bench in report["benchmarks"]:
            stat = bench["protocols"].get(label, {}).get(bench["headline"]) or {}
            mean = stat.get("mean")
            means.append(math.nan if mean is None else float(mean))
            stds.append(float(stat.get("std") or 0.0))
        if any(not math.isnan(m) for m in means):
            series[label] = (means, stds)
    published: list[float] = []
    published_model = ""
    for bench in report["benchmarks"]:
        ref = next((r for r in bench["references"] if r["metric"] == bench["headline"]), None)
        published.append(ref["value"] if ref else math.nan)
        published_model = published_model or (ref["model"] if ref else "")
    if published_model:
        series[f"published: {published_model}"] = (published, [0.0] * len(published))

    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(names) + 2), 4.5))
    for k, (label, (means, stds)) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(names))]
        ax.bar(xs, [0 if math.isnan(m) else m for m in means], width, yerr=stds, label=label)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_ylabel("headline metric")
    ax.set_title(f"{report.get('run', {}).get('model') or 'predictions'}")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(
    out_dir: str | Path, results: Sequence[BenchmarkResult], run: dict[str, Any]
) -> dict[str, Path]:
    """Write report.json/.csv/.md/.png into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(results, run)
    paths = {ext: out / f"report.{ext}" for ext in ("json", "csv", "md", "png")}
    paths["json"].write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_csv(report, paths["csv"])
    paths["md"].write_text(markdown(report), encoding="utf-8")
    bar_chart(report, paths["png"])
    return paths
