"""95 % intervals for a run's metrics, from the per-sample logs the runner wrote.

A mean over 30 items and one over 2,500 look alike in a table; the interval tells them
apart. Each metric a report shows is a ratio of per-item sums, so it is enough to know,
per log line, the item's numerator and denominator (:data:`PER_ITEM`). These readers
restate what the benchmark's own aggregation computes, so before an interval is
attached, the ratio recomputed from each trial's log must equal the number the
benchmark reported for that trial; a metric that does not match (a new aggregation,
say) simply gets no interval rather than a wrong one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from secreason.evals.bootstrap import Interval, ratio_interval

Line = dict[str, Any]
Reader = Callable[[Line], tuple[float, float]]


def _details(line: Line) -> dict[str, Any]:
    details = line.get("details")
    return details if isinstance(details, dict) else {}


def _is(status: str) -> Reader:
    return lambda line: (float(line.get("status") == status), 1.0)


def _detail(key: str) -> Reader:
    return lambda line: (float(_details(line).get(key) or 0.0), 1.0)


def _counts(line: Line) -> tuple[int, int, int]:
    d = _details(line)
    return int(d.get("tp", 0)), int(d.get("fp", 0)), int(d.get("fn", 0))


def _correct_of_valid(line: Line) -> tuple[float, float]:
    status = line.get("status")
    return float(status == "correct"), float(status != "invalid")


def _deviation(line: Line) -> tuple[float, float]:
    d = _details(line)
    return (float(d["deviation"]), 1.0) if "deviation" in d else (0.0, 0.0)


def _micro(part: str) -> Reader:
    def read(line: Line) -> tuple[float, float]:
        tp, fp, fn = _counts(line)
        den = {"f1": 2 * tp + fp + fn, "precision": tp + fp, "recall": tp + fn}[part]
        return (2 * tp if part == "f1" else tp), den

    return read


#: metric name -> (numerator, denominator) of one log line
PER_ITEM: dict[str, Reader] = {
    "accuracy": _is("correct"),
    "accuracy_all": _is("correct"),
    "invalid_rate": _is("invalid"),
    "accuracy_valid": _correct_of_valid,
    "accuracy_answered": _correct_of_valid,
    "mean": lambda line: (float(line.get("score") or 0.0), 1.0),
    "score": lambda line: (float(line.get("score") or 0.0), 1.0),
    "unclosed_rate": lambda line: (float(line.get("format", {}).get("status") == "unclosed"), 1.0),
    "format_ok_rate": lambda line: (float(bool(line.get("format", {}).get("ok"))), 1.0),
    "truncated_rate": lambda line: (float(line.get("finish_reason") == "length"), 1.0),
    "mad": _deviation,
    "exact_vector_rate": lambda line: (float(bool(_details(line).get("exact_vector"))), 1.0),
    "micro_f1": _micro("f1"),
    "micro_precision": _micro("precision"),
    "micro_recall": _micro("recall"),
    "macro_f1": _detail("f1"),
    "mean_jaccard": _detail("jaccard"),
    "partial_rate": lambda line: (float("partial" in _details(line)), 1.0),
}


def read_logs(samples_log: dict[str, str]) -> dict[str, list[list[Line]]]:
    """Per protocol, per trial, the log lines (keys are ``"{trial}.{protocol}"``)."""
    out: dict[str, dict[int, list[Line]]] = {}
    for key, path in samples_log.items():
        trial, _, protocol = key.partition(".")
        file = Path(path)
        if not protocol or not trial.isdigit() or not file.is_file():
            continue
        lines = [json.loads(t) for t in file.read_text(encoding="utf-8").splitlines() if t]
        out.setdefault(protocol, {})[int(trial)] = lines
    return {p: [trials[t] for t in sorted(trials)] for p, trials in out.items()}


def _agrees(value: float, reported: Any) -> bool:
    if not isinstance(reported, (int, float)) or math.isnan(float(reported)):
        return math.isnan(value)
    return math.isclose(value, float(reported), rel_tol=1e-6, abs_tol=1e-9)


def metric_interval(
    metric: str, trials: Sequence[Sequence[Line]], reported: Sequence[Any]
) -> Interval | None:
    """The metric's interval over items with trials pooled, or None when the logs do
    not reproduce the reported per-trial values (or there is nothing to resample)."""
    read = PER_ITEM.get(metric)
    if read is None or not trials or len(trials) != len(reported):
        return None
    pooled: dict[str, list[float]] = {}
    for lines, value in zip(trials, reported, strict=True):
        top = bottom = 0.0
        for line in lines:
            num, den = read(line)
            top, bottom = top + num, bottom + den
            item = pooled.setdefault(str(line.get("id")), [0.0, 0.0])
            item[0] += num
            item[1] += den
        if not _agrees(top / bottom if bottom else math.nan, value):
            return None
    nums = [v[0] for v in pooled.values()]
    dens = [v[1] for v in pooled.values()]
    return ratio_interval(nums, dens)
