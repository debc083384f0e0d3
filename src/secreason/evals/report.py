"""Run reports: JSON for tools, CSV for spreadsheets, markdown for people, a PNG chart.

A number is only useful next to what it should be compared with, and with how sure it
is. So the report puts the official and strict protocols side by side, gives every
mean its 95 % interval (bootstrap over items, trials pooled: ``uncertainty.py``), keeps
the invalid-answer, truncation and unclosed-reasoning rates next to every score (a
model that "wins" by never closing its reasoning shows it), lines each headline up
against the published numbers the benchmark module cites, and says in plain words when
a run scored a subset (``--limit``) that cannot be compared with them.

This module builds the report's data and writes the JSON and CSV; the markdown is
rendered by ``evals.report_markdown``, the charts by ``evals.report_chart`` and
``evals.report_subjects``.
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
from secreason.evals.uncertainty import metric_interval, read_logs

PROTOCOL_ORDER = ("official", "strict")
#: counts, not rates: columns of the CSV rather than metric rows
COUNTS = ("n", "n_valid", "missing")
#: metrics where lower is better, shown beside the headline when a benchmark has them
#: (CTIBench-VSP's official number is the MAD of CVSS scores)
LOWER_IS_BETTER = ("mad",)
RATES = ("invalid_rate", "truncated_rate", "unclosed_rate")


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """Mean and sample std (0 for a single trial) of a metric over trials."""
    clean = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not clean:
        return {"mean": None, "std": None, "values": list(values)}
    std = statistics.stdev(clean) if len(clean) > 1 else 0.0
    return {"mean": statistics.fmean(clean), "std": std, "values": clean}


def _protocol_summary(
    trials: Sequence[dict[str, float]], logs: Sequence[Sequence[dict[str, Any]]]
) -> dict[str, dict[str, Any]]:
    keys: list[str] = []
    for metrics in trials:
        keys.extend(k for k in metrics if k not in keys)
    out = {}
    for key in keys:
        stat = summarize([m[key] for m in trials if key in m])
        reported = [m.get(key) for m in trials]
        ci = None if key in COUNTS else metric_interval(key, logs, reported)
        stat["ci"] = [ci.low, ci.high] if ci else None
        stat["n_items"] = ci.n if ci else None
        out[key] = stat
    return out


def subset_of(result: BenchmarkResult, run: dict[str, Any]) -> dict[str, Any] | None:
    """``{"n": 30, "of": 2500}`` when the run scored part of the benchmark (else None)."""
    limit = run.get("limit")
    total = (run.get("rows_total") or {}).get(result.name)
    if total is None and isinstance(limit, int) and result.n_samples >= limit:
        total = full_rows(result.name, run)
    if isinstance(total, int) and result.n_samples < total:
        return {"n": result.n_samples, "of": total, "limit": limit}
    if total is None and isinstance(limit, int) and result.n_samples >= limit:
        return {"n": result.n_samples, "of": None, "limit": limit}
    return None


def full_rows(name: str, run: dict[str, Any]) -> int | None:
    """The benchmark's row count without ``--limit`` (None when it cannot be read now)."""
    from secreason.evals.registry import get_benchmark
    from secreason.evals.runner import RunSettings

    if not run.get("data"):
        return None  # only local files are re-read, never a hub download for a count
    try:
        bench = get_benchmark(name)
        source = RunSettings(data=run.get("data")).source(bench)
        return len(bench.load(source)) if source else None
    except Exception:  # the report states "a subset" without the total
        return None


def caveat(name: str, subset: dict[str, Any] | None) -> str | None:
    if not subset:
        return None
    of = f" of {subset['of']:,}" if subset.get("of") else ""
    how = f" (--limit {subset['limit']})" if subset.get("limit") else ""
    return f"{name}: n = {subset['n']:,}{of}{how}: a subset, not comparable to the published number"


def build_report(results: Sequence[BenchmarkResult], run: dict[str, Any]) -> dict[str, Any]:
    """The report as one JSON-ready dict (what the other formats are rendered from)."""
    benchmarks = []
    for result in results:
        logs = read_logs(result.samples_log)
        protocols = {
            p: _protocol_summary(result.metrics[p], logs.get(p, []))
            for p in sorted(result.metrics, key=_protocol_rank)
        }
        subset = subset_of(result, run)
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
                    "comparable": subset is None,
                }
            )
        benchmarks.append(
            {
                "name": result.name,
                "headline": result.headline,
                "n_samples": result.n_samples,
                "subset": subset,
                "caveat": caveat(result.name, subset),
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


def markdown(report: dict[str, Any]) -> str:
    """The report for people (``evals.report_markdown``)."""
    from secreason.evals.report_markdown import render

    return render(report)


def published_models(report: dict[str, Any]) -> list[str]:
    models: list[str] = []
    for bench in report["benchmarks"]:
        models.extend(r["model"] for r in bench["references"] if r["model"] not in models)
    return models


def write_csv(report: dict[str, Any], path: Path) -> None:
    """One row per benchmark x protocol x metric; trials as columns, counts as columns."""
    models = published_models(report)
    trials = max((b["trials"] for b in report["benchmarks"]), default=0)
    header = ["benchmark", "protocol", "metric", "mean", "ci_low", "ci_high", "std"]
    header += ["n", "n_total", "missing", "trials"] + [f"trial_{t}" for t in range(trials)]
    header += [f"published: {m}" for m in models]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for bench in report["benchmarks"]:
            total = (bench.get("subset") or {}).get("of") or (
                None if bench.get("subset") else bench["n_samples"]
            )
            for protocol, metrics in bench["protocols"].items():
                missing = (metrics.get("missing") or {}).get("mean")
                for metric, stat in metrics.items():
                    if metric in COUNTS:
                        continue
                    ci = stat.get("ci") or [None, None]
                    values = list(stat["values"]) + [None] * (trials - len(stat["values"]))
                    refs = {
                        r["model"]: r["value"]
                        for r in bench["references"]
                        if (r["metric"], r["protocol"]) == (metric, protocol)
                    }
                    writer.writerow(
                        [bench["name"], protocol, metric, stat["mean"], ci[0], ci[1], stat["std"]]
                        + [bench["n_samples"], total, missing, len(stat["values"])]
                        + values
                        + [refs.get(m) for m in models]
                    )


def write_report(
    out_dir: str | Path, results: Sequence[BenchmarkResult], run: dict[str, Any]
) -> dict[str, Path]:
    """Write report.json/.csv/.md/.png into ``out_dir``; return their paths."""
    from secreason.evals.report_chart import chart
    from secreason.evals.report_subjects import subject_chart

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(results, run)
    paths = {ext: out / f"report.{ext}" for ext in ("json", "csv", "md", "png")}
    paths["json"].write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_csv(report, paths["csv"])
    paths["md"].write_text(markdown(report), encoding="utf-8")
    chart(report, paths["png"])
    paths.update(subject_chart(report, out))  # evals.report_subjects: report.subjects.png
    return paths
