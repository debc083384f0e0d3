"""Resume after a real kill: SIGKILL a training process, rerun the same command.

The rerun must continue from the newest checkpoint (not start over), finish, and a
third run must do nothing because the stage is marked done.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stage_fixtures import whole_checkpoint

REPO = Path(__file__).resolve().parents[2]
TRACE = "<think>\nThe text says {w}, that is a clue about {w}.\n</think>\nAnswer: {a}"


def _write_data(folder: Path) -> tuple[Path, Path]:
    sft, rl = folder / "sft.jsonl", folder / "rl.jsonl"
    words = ["buffer", "query", "shell", "path", "token", "script", "packet", "session"]
    with sft.open("w") as fh, rl.open("w") as fr:
        for i, w in enumerate(words * 8):
            a = "ABCD"[i % 4]
            user = [{"role": "user", "content": f"Question {i} about the {w}?"}]
            reply = {"role": "assistant", "content": TRACE.format(w=w, a=a)}
            fh.write(json.dumps({"messages": [*user, reply]}) + "\n")
            fr.write(json.dumps({"prompt": user, "task": "mcq", "reference": a}) + "\n")
    return sft, rl


STAGES = {
    "sft": ["max_steps=40", "save_steps=4", "per_device_train_batch_size=16", "logging_steps=100"],
    "rl": [
        "max_steps=8",
        "save_steps=2",
        "per_device_train_batch_size=8",
        "num_generations=4",
        "max_completion_length=24",
        "beta=0.0",
    ],
}


def _command(stage: str, model: Path, data: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        f"secreason.train.{stage}",
        str(REPO / "recipes" / "tiny-cpu" / f"{stage}.yaml"),
        f"model_name_or_path={model}",
        f"dataset_path={data}",
        f"output_dir={out}",
        *STAGES[stage],
    ]


def _complete(checkpoint: Path) -> bool:
    """The checkpoint's trainer state is fully written (it is saved last)."""
    try:
        json.loads((checkpoint / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return True


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.mark.slow
# SFT's kill, torn save and rerun are driven in test_stage_kills.py (one scenario, three
# processes); this keeps RL's (GRPO's generation, rewards and metrics file).
@pytest.mark.parametrize("stage", ["rl"])
def test_killed_stage_resumes_and_a_finished_stage_is_not_redone(
    stage: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    sft_data, rl_data = _write_data(tmp_path)
    out = tmp_path / stage
    cmd = _command(stage, tiny_model_dir, sft_data if stage == "sft" else rl_data, out)

    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(cmd, env=_env(), stdout=log, stderr=log, cwd=tmp_path)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if any(_complete(c) for c in out.glob("checkpoint-*")):
                break
            if proc.poll() is not None:
                tail = (tmp_path / "first.log").read_text()[-3000:]
                pytest.fail(f"{stage} ended (rc={proc.returncode}) before a checkpoint:\n{tail}")
            time.sleep(0.02)
        else:
            pytest.fail("no checkpoint within 120 s")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        log.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "final" / "secreason_stage.json").exists(), "killed before the end"
    killed_at = max(int(c.name.split("-")[1]) for c in out.glob("checkpoint-*"))

    rerun = subprocess.run(cmd, env=_env(), capture_output=True, text=True, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming from" in rerun.stdout and "checkpoint-" in rerun.stdout, rerun.stdout[-2000:]
    marker = json.loads((out / "final" / "secreason_stage.json").read_text())
    max_steps = int(next(o for o in STAGES[stage] if o.startswith("max_steps=")).split("=")[1])
    assert marker["steps"] == max_steps
    state = json.loads((out / f"checkpoint-{max_steps}" / "trainer_state.json").read_text())
    # Continued from the kill point: the first logged step of the rerun is after it.
    assert state["global_step"] == max_steps and killed_at < max_steps

    again = subprocess.run(cmd, env=_env(), capture_output=True, text=True, cwd=tmp_path)
    assert again.returncode == 0
    assert "already finished" in again.stdout


def test_a_different_recipe_does_not_resume_anothers_checkpoints(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from secreason.train.config import SFTRecipe, load_recipe
    from secreason.train.stage import StageError, prepare_output

    sft_data, _ = _write_data(tmp_path)
    args = [
        f"model_name_or_path={tiny_model_dir}",
        f"dataset_path={sft_data}",
        f"output_dir={tmp_path}/o",
    ]
    first = load_recipe(REPO / "recipes/tiny-cpu/sft.yaml", SFTRecipe, args)
    assert prepare_output(first) is None
    whole_checkpoint(tmp_path / "o" / "checkpoint-5", 5)
    same = load_recipe(REPO / "recipes/tiny-cpu/sft.yaml", SFTRecipe, [*args, "logging_steps=3"])
    assert prepare_output(same) is not None  # cosmetic fields do not block a resume
    other = load_recipe(
        REPO / "recipes/tiny-cpu/sft.yaml", SFTRecipe, [*args, "learning_rate=1e-5"]
    )
    with pytest.raises(StageError, match="different recipe"):
        prepare_output(other)
