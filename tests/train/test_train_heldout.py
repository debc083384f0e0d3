"""The paired bootstrap behind the demo's "RL beats SFT" claim (secreason.train.heldout)."""

from __future__ import annotations

import pytest

from secreason.train.heldout import paired_bootstrap


@pytest.mark.parametrize(
    ("a", "b", "significant"),
    [
        ({f"i{k}": 0.0 for k in range(50)}, {f"i{k}": 1.0 for k in range(50)}, True),
        ({f"i{k}": 0.5 for k in range(50)}, {f"i{k}": 0.5 for k in range(50)}, False),
        ({f"i{k}": 1.0 for k in range(50)}, {f"i{k}": 0.0 for k in range(50)}, False),
        # one lucky item out of 50 is not a gain
        (
            {f"i{k}": 0.0 for k in range(50)},
            {"i0": 1.0, **{f"i{k}": 0.0 for k in range(1, 50)}},
            False,
        ),
        # a small but consistent gain on many items is
        (
            {f"i{k}": float(k % 2) for k in range(400)},
            {f"i{k}": float(k % 2 or k % 4 == 0) for k in range(400)},
            True,
        ),
    ],
    ids=["all-better", "equal", "all-worse", "one-lucky-item", "small-consistent"],
)
def test_significance(a: dict[str, float], b: dict[str, float], significant: bool) -> None:
    gain = paired_bootstrap(a, b)
    assert gain.significant is significant
    assert gain.low <= gain.gain <= gain.high


def test_only_items_both_models_have_are_paired() -> None:
    gain = paired_bootstrap({"x": 0.0, "y": 0.0}, {"y": 1.0, "z": 1.0})
    assert (gain.n, gain.mean_a, gain.mean_b, gain.gain) == (1, 0.0, 1.0, 1.0)
    assert paired_bootstrap({}, {"y": 1.0}).n == 0
