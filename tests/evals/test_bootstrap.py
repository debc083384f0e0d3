"""The shared bootstrap: exact where the answer is known, sane where it is statistical."""

from __future__ import annotations

import numpy as np
import pytest

from secreason.evals.bootstrap import paired_interval, ratio_interval


@pytest.mark.parametrize(
    ("num", "den", "value", "low", "high"),
    [
        ([1.0] * 20, None, 1.0, 1.0, 1.0),  # no spread, no width
        ([0.0] * 20, None, 0.0, 0.0, 0.0),
        ([2.0, 0.0, 0.0], [1.0, 1.0, 0.0], 1.0, 0.0, 2.0),  # MAD over valid items only
        ([3.0], None, 3.0, 3.0, 3.0),
    ],
    ids=["all-ones", "all-zeros", "ratio-with-empty-denominators", "one-item"],
)
def test_exact_cases(
    num: list[float], den: list[float] | None, value: float, low: float, high: float
) -> None:
    interval = ratio_interval(num, den)
    assert interval is not None
    assert (interval.value, interval.low, interval.high) == pytest.approx((value, low, high))


def test_a_coin_over_400_items_has_the_textbook_width() -> None:
    flips = np.random.default_rng(1).integers(0, 2, 400).astype(float)
    interval = ratio_interval(flips)
    assert interval is not None and interval.n == 400
    # Normal approximation: +- 1.96 * sqrt(p(1-p)/n) = +- 0.049.
    assert interval.high - interval.low == pytest.approx(2 * 0.049, abs=0.012)
    assert interval.low < interval.value < interval.high


def test_large_inputs_are_resampled_in_chunks_and_are_reproducible() -> None:
    values = np.random.default_rng(2).random(30_000)
    first = ratio_interval(values, resamples=300)
    assert first == ratio_interval(values, resamples=300)  # seeded
    assert first is not None and first.low < 0.5 < first.high


@pytest.mark.parametrize(
    ("num", "den"),
    [([], None), ([1.0, 2.0], [0.0, 0.0])],
    ids=["no-items", "zero-denominator"],
)
def test_nothing_to_resample_gives_none(num: list[float], den: list[float] | None) -> None:
    assert ratio_interval(num, den) is None


def test_mismatched_lengths_are_an_error() -> None:
    with pytest.raises(ValueError, match="equally long"):
        ratio_interval([1.0, 2.0], [1.0])


def test_paired_difference() -> None:
    interval = paired_interval([0.0] * 30, [1.0] * 30)
    assert interval is not None and (interval.value, interval.low) == (1.0, 1.0)
    mixed = paired_interval([0.0, 1.0] * 25, [1.0, 0.0] * 25)
    assert mixed is not None and mixed.low < 0 < mixed.high
