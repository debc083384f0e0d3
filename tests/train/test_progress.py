"""Training progress: one readable line per logging step, from a real trainer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from secreason.train.progress import format_line

REPO = Path(__file__).resolve().parents[2]

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
]


@pytest.mark.parametrize(("case", "logs", "steps", "line"), CASES, ids=[c[0] for c in CASES])
def test_format_line(case: str, logs: dict[str, Any], steps: tuple[int, int], line: str) -> None:
    assert format_line(logs, *steps) == line


@pytest.mark.slow
def test_a_real_sft_run_prints_lines_not_dicts(
    tiny_model_dir: Path, tmp_path: Path, capsys: Any
) -> None:
    from secreason.train.config import SFTRecipe, load_recipe
    from secreason.train.sft import run_sft

    data = tmp_path / "sft.jsonl"
    reply = "<think>\nThe text names a buffer.\n</think>\nAnswer: B"
    turns = [{"role": "user", "content": "Which?"}, {"role": "assistant", "content": reply}]
    data.write_text((json.dumps({"messages": turns}) + "\n") * 16)
    args = [
        f"model_name_or_path={tiny_model_dir}",
        f"dataset_path={data}",
        f"output_dir={tmp_path / 'out'}",
        "max_steps=3",
        "logging_steps=1",
        "per_device_train_batch_size=8",
        "save_steps=100",
    ]
    run_sft(load_recipe(REPO / "recipes" / "tiny-cpu" / "sft.yaml", SFTRecipe, args))
    captured = capsys.readouterr()
    printed = captured.out + captured.err
    for step in (1, 2, 3):
        assert f"[sft] step {step}/3" in printed
    assert "| loss " in printed and "| lr " in printed
    assert "{'loss'" not in printed and "'grad_norm'" not in printed
