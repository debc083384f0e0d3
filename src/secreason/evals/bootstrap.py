"""The one bootstrap of the codebase: 95 % intervals by resampling items, in numpy.

Every metric the reports show is a ratio of per-item sums (accuracy = correct / items,
MAD = deviations / valid vectors, micro-F1 = 2tp / (2tp + fp + fn)), so one function
covers them: resample items with replacement, recompute ``sum(num) / sum(den)``, take
the 2.5th and 97.5th percentiles. Trials are pooled by summing each item's numerator
and denominator over trials first, so an item is resampled with all its trials (items,
not trials, are the unit a benchmark samples). A paired comparison of two models is the
same call on per-item differences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95
_CHUNK = 4_000_000  # resampled indices held at once (32 MB)


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile bootstrap interval over ``n`` items."""

    value: float
    low: float
    high: float
    n: int


def ratio_interval(
    num: Sequence[float] | np.ndarray,
    den: Sequence[float] | np.ndarray | None = None,
    *,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> Interval | None:
    """Interval of ``sum(num) / sum(den)`` resampling items (``den`` = 1 each: a mean).

    Returns None when there are no items or the denominator is zero; resamples whose
    denominator is zero (e.g. no valid answer drawn) are left out of the percentiles.
    """
    top = np.asarray(num, dtype=float)
    bottom = np.ones_like(top) if den is None else np.asarray(den, dtype=float)
    if top.shape != bottom.shape or top.ndim != 1:
        raise ValueError(f"num and den must be 1-D and equally long ({top.shape}, {bottom.shape})")
    n = top.size
    if n == 0 or bottom.sum() == 0:
        return None
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK // n)
    stats = []
    for start in range(0, resamples, rows):
        idx = rng.integers(0, n, size=(min(rows, resamples - start), n))
        s_top, s_bottom = top[idx].sum(axis=1), bottom[idx].sum(axis=1)
        keep = s_bottom != 0
        stats.append(s_top[keep] / s_bottom[keep])
    values = np.concatenate(stats)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(float(top.sum() / bottom.sum()), float(low), float(high), n)


def paired_interval(
    a: Sequence[float], b: Sequence[float], *, resamples: int = RESAMPLES, seed: int = 0
) -> Interval | None:
    """Interval of mean(b - a) over paired items."""
    left, right = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return ratio_interval(right - left, resamples=resamples, seed=seed)
