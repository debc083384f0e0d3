"""The demo report's RL curves: a moving average over the raw points."""

from __future__ import annotations

from pathlib import Path

import pytest

from secreason.train.report import _plot_curves, moving_average, short_run_note


@pytest.mark.parametrize(
    ("values", "window", "expected"),
    [
        ([], 3, []),
        ([1.0, 2.0, 3.0, 4.0], 1, [1.0, 2.0, 3.0, 4.0]),
        ([1.0, 2.0, 3.0, 4.0], 2, [1.0, 1.5, 2.5, 3.5]),
        ([0.0, 1.0, 0.0, 1.0, 0.0, 1.0], 10, [0.0, 0.5, 1 / 3, 0.5, 0.4, 0.5]),
        ([5.0], 0, [5.0]),  # a zero window is a window of one
    ],
    ids=["empty", "window-1", "window-2", "window-longer-than-run", "window-0"],
)
def test_moving_average(values: list[float], window: int, expected: list[float]) -> None:
    assert moving_average(values, window) == pytest.approx(expected)


def test_curves_png_is_written(tmp_path: Path) -> None:
    records = [
        {"step": s, "tasks": {"cwe": {"reward": s % 2, "format_valid": 1.0, "reasoning_words": 9}}}
        for s in range(1, 41)
    ]
    _plot_curves(records, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (("max_steps=6", "save_steps=3"), "RL ran 6 steps"),  # demo --quick
        (("save_steps=3",), ""),  # the full demo: the recipe's 200 steps
        (("max_steps=200",), ""),
        (("max_steps=6", "max_steps=400"), ""),  # the last one counts
        (("max_steps=abc",), ""),
    ],
)
def test_an_unmet_target_of_a_short_run_says_why(overrides: tuple[str, ...], says: str) -> None:
    note = short_run_note({"rl_overrides": overrides})
    assert (says in note) if says else note == ""
