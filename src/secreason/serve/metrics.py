"""What ``/metrics`` reports: bounded summaries of the server's own behaviour.

A monitoring endpoint any key holder can call must cost the server little and answer
in a size that does not grow with traffic (every sample of a long window would be
megabytes of JSON built on the event loop per call). Each latency series is therefore
kept two ways, both bounded:

* a window of the most recent :data:`WINDOW` samples, summarised as exact
  quantiles (p50, p90, p99, max) when asked;
* a cumulative histogram with fixed log-spaced buckets (20 per decade, 1 us to
  1000 s): counts only ever grow, so a client that reads it twice can compute the
  quantiles of exactly the requests in between (:func:`quantile_between`), to within
  one bucket (the upper edge is at most 12.2 % above the true value).

The endpoint's rate is limited per key like every other call (see :mod:`limits`), in a
bucket of its own so that polling never spends a key's completion budget.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterable
from typing import Any

WINDOW = 1024  # recent samples behind the window quantiles
STEPS_PER_DECADE = 20
LOWEST_EXP, HIGHEST_EXP = -3, 6  # bucket edges from 1e-3 ms to 1e6 ms
EDGES: tuple[float, ...] = tuple(
    10 ** (k / STEPS_PER_DECADE)
    for k in range(LOWEST_EXP * STEPS_PER_DECADE, HIGHEST_EXP * STEPS_PER_DECADE + 1)
)
RECENT_BATCHES = 64  # batch sizes listed by /metrics (the most recent ones)


def _nearest_rank(ordered: list[float], q: float) -> float:
    """The q-th percentile (0-100) of sorted values by the nearest-rank rule."""
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class LatencySeries:
    """One latency series (milliseconds): a recent window and a cumulative histogram."""

    def __init__(self, window: int = WINDOW) -> None:
        self.recent: deque[float] = deque(maxlen=window)
        self.count = 0
        self.total_ms = 0.0
        self._buckets = [0] * (len(EDGES) + 1)  # the last one: beyond the highest edge

    def add(self, value_ms: float) -> None:
        value_ms = max(0.0, value_ms)
        self.recent.append(value_ms)
        self.count += 1
        self.total_ms += value_ms
        self._buckets[bisect.bisect_left(EDGES, value_ms)] += 1

    def summary(self) -> dict[str, Any]:
        """Counts, window quantiles and the non-empty buckets as ``[upper_ms, count]``
        (upper ``null``: beyond the last edge); at most ``len(EDGES) + 1`` rows."""
        ordered = sorted(self.recent)
        quantiles = {
            f"p{q}": round(_nearest_rank(ordered, q), 4) if ordered else None for q in (50, 90, 99)
        }
        edges: list[float | None] = [*EDGES, None]
        return {
            "count": self.count,
            "sum_ms": round(self.total_ms, 3),
            "window": len(ordered),
            **quantiles,
            "max": round(ordered[-1], 4) if ordered else None,
            "buckets": [[edge, n] for edge, n in zip(edges, self._buckets, strict=True) if n],
        }


def quantile_between(before: dict[str, Any], after: dict[str, Any], q: float) -> float:
    """The q-th percentile (0-100) of the samples added between two summaries of one
    series (``/metrics`` read twice), as its bucket's upper edge; NaN when none were
    added, ``inf`` when it lies beyond the last edge."""
    earlier = {_key(edge): n for edge, n in before.get("buckets", [])}
    added = [(edge, n - earlier.get(_key(edge), 0)) for edge, n in after.get("buckets", [])]
    added = sorted(((edge, n) for edge, n in added if n > 0), key=lambda row: _key(row[0]))
    total = sum(n for _, n in added)
    if total == 0:
        return math.nan
    rank = max(1, math.ceil(q / 100 * total))
    seen = 0
    for edge, n in added:
        seen += n
        if seen >= rank:
            return math.inf if edge is None else float(edge)
    return math.inf  # unreachable: the ranks add up to total


def _key(edge: float | None) -> float:
    return math.inf if edge is None else float(edge)


class ServerStats:
    """Counters and latency series of the requests the middleware counts, for ``/metrics``."""

    def __init__(self, window: int = WINDOW) -> None:
        self.in_flight = 0
        self.requests = 0
        self.by_status: dict[int, int] = {}
        self.overhead_ms = LatencySeries(window)  # time in the server, not the model
        self.model_ms = LatencySeries(window)  # time awaiting the model (and guard)

    def observe(self, overhead_ms: float, model_ms: float) -> None:
        self.overhead_ms.add(overhead_ms)
        self.model_ms.add(model_ms)

    def snapshot(self) -> dict[str, Any]:
        return {
            "in_flight": self.in_flight,
            "requests": self.requests,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "overhead_ms": self.overhead_ms.summary(),
            "model_ms": self.model_ms.summary(),
        }


def engine_metrics(engine: Any) -> dict[str, Any]:
    """The model engine's counters (a proxy engine has none: zeros), batch sizes bounded
    to the :data:`RECENT_BATCHES` most recent."""
    sizes: Iterable[int] = getattr(engine, "batch_sizes", ())
    recent = list(sizes)[-RECENT_BATCHES:]
    return {
        "batch_sizes": recent,
        "batches": getattr(engine, "batches", 0),
        "batched_requests": getattr(engine, "batched", 0),
        "model_busy_s": round(getattr(engine, "busy_s", 0.0), 6),
        "model_running": getattr(engine, "running", 0),
        "cancelled": getattr(engine, "cancelled", 0),
    }
