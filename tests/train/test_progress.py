"""Training progress: one readable line per logging step.

A real SFT run printing these lines is checked in test_continuation.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from secreason.train.progress import format_line

CASES = [
    (
        "sft",
        {"loss": 2.3125, "grad_norm": 0.91, "learning_rate": 0.0019, "epoch": 0.32},
        (10, 400),
        "step 10/400 (ep 0.32) | loss 2.312 | grad 0.91 | lr 0.0019",
    ),
    (
        "grpo",
        {
            "loss": 0.0,
            "learning_rate": 1e-4,
            "reward": 0.4,
            "reward_std": 0.25,
            "rewards/cwe_reward/mean": 0.5,
            "rewards/format_reward/mean": -0.1,
            "rewards/cwe_reward/std": 0.3,
            "completions/mean_length": 52.5,
            "kl": 0.0123,
            "total_flos": 1e12,
        },
        (3, 200),
        "step 3/200 | loss 0 | lr 1.00e-04 | reward 0.4 ± 0.25 (cwe 0.5, format -0.1) "
        "| len 52.5 | kl 0.0123",
    ),
    (
        "end",
        {"train_runtime": 12.5, "train_loss": 1.5},
        (6, 6),
        "step 6/6 | train_loss 1.5 | seconds 12.5",
    ),
    ("nan", {"loss": float("nan")}, (1, -1), "step 1 | loss nan"),
    (
        "task-absent-from-the-step",
        {"reward": 0.3, "rewards/cwe_reward/mean": None, "rewards/ate_reward/mean": 0.5},
        (2, 6),
        "step 2/6 | reward 0.3 (cwe -, ate 0.5)",
    ),
]


@pytest.mark.parametrize(("case", "logs", "steps", "line"), CASES, ids=[c[0] for c in CASES])
def test_format_line(case: str, logs: dict[str, Any], steps: tuple[int, int], line: str) -> None:
    assert format_line(logs, *steps) == line
