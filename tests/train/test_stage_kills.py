"""Real signals against a real SFT process on the tiny model: SIGTERM, then SIGKILL in the
middle of a checkpoint save, then a plain rerun.

1. ``secreason sft`` gets SIGTERM during a step: it saves ``checkpoint-K`` at the end
   of that step, exits 143 and says how to continue (before: no handler, the steps
   since the last periodic save were lost, a kill in a save tore the checkpoint).
2. The same command resumes from ``checkpoint-K`` and is SIGKILLed inside its next save
   (weights and optimizer written, trainer state not): a torn ``checkpoint-N``.
3. The same command again skips the torn folder (named on stderr, set aside), resumes
   from ``checkpoint-K`` and finishes with one unbroken log history (before: it resumed
   from the torn folder and crashed in safetensors or torch.load).
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
from test_train_resume import _write_data

from secreason.train.checkpoints import folder_problem

REPO = Path(__file__).resolve().parents[2]
MAX_STEPS = 6

# Dies by SIGKILL inside transformers' first checkpoint save of this process, after the
# weights, optimizer and scheduler are written and before the RNG and trainer state.
KILL_IN_SAVE = """
import os, signal, sys
from transformers import Trainer
def torn(self, output_dir):
    print(f"killing at step {self.state.global_step}", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
Trainer._save_rng_state = torn
from secreason.cli import main
main()
"""


def _args(model: Path, data: Path, out: Path) -> list[str]:
    sets = [
        f"model_name_or_path={model}",
        f"dataset_path={data}",
        f"output_dir={out}",
        f"max_steps={MAX_STEPS}",
        "save_steps=2",
        "per_device_train_batch_size=4",
        "logging_steps=1",
    ]
    return ["sft", str(REPO / "recipes" / "tiny-cpu" / "sft.yaml")] + [
        a for s in sets for a in ("--set", s)
    ]


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
    }


def _sigterm_after_first_step(cmd: list[str], log: Path) -> int:
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, env=_env(), stdout=fh, stderr=fh)
        deadline = time.monotonic() + 180
        try:
            while "[sft] step 1/" not in log.read_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"no first step (rc={proc.poll()}):\n{log.read_text()[-3000:]}")
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            return proc.wait(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()


@pytest.mark.slow
def test_sigterm_then_a_kill_inside_a_save_lose_nothing(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    sft_data, _ = _write_data(tmp_path)
    out = tmp_path / "out"
    args = _args(tiny_model_dir, sft_data, out)
    cli = [sys.executable, "-c", "from secreason.cli import main; main()", *args]

    # 1. SIGTERM: save at the end of the step, exit 128 + 15, say how to continue.
    log = tmp_path / "term.log"
    assert _sigterm_after_first_step(cli, log) == 128 + signal.SIGTERM, log.read_text()[-3000:]
    text = log.read_text()
    assert "Traceback" not in text
    saved = [int(p.name.split("-")[1]) for p in out.glob("checkpoint-*")]
    assert len(saved) == 1 and 1 <= saved[0] < MAX_STEPS, saved
    stopped = saved[0]
    assert f"interrupted: SIGTERM: stopped at step {stopped} of {MAX_STEPS}" in text
    assert "rerun the same command to continue" in text
    assert folder_problem(out / f"checkpoint-{stopped}", checkpoint=True) is None
    assert not (out / "final" / "secreason_stage.json").exists()

    # 2. Resume, then die inside the next save: a torn checkpoint.
    torn = subprocess.run(
        [sys.executable, "-c", KILL_IN_SAVE, *args], env=_env(), capture_output=True, text=True
    )
    assert torn.returncode == -signal.SIGKILL, torn.stderr[-3000:]
    assert f"resuming from {out}/checkpoint-{stopped}" in torn.stdout
    torn_step = int(torn.stderr.split("killing at step ")[1].split()[0])
    assert torn_step > stopped
    assert folder_problem(out / f"checkpoint-{torn_step}", checkpoint=True) is not None

    # 3. Plain rerun: skip the torn folder (said on stderr), resume, finish.
    rerun = subprocess.run(cli, env=_env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"skipping {out}/checkpoint-{torn_step}: no trainer_state.json" in rerun.stderr
    assert f"moved to torn-checkpoint-{torn_step}" in rerun.stderr
    assert f"resuming from {out}/checkpoint-{stopped}" in rerun.stdout
    assert "Traceback" not in rerun.stderr
    marker = json.loads((out / "final" / "secreason_stage.json").read_text())
    assert marker["steps"] == MAX_STEPS
    state = json.loads((out / f"checkpoint-{MAX_STEPS}" / "trainer_state.json").read_text())
    logged = [h["step"] for h in state["log_history"] if "loss" in h]
    assert logged == list(range(1, MAX_STEPS + 1))  # one history: no step missing, none twice
    assert (out / f"torn-checkpoint-{torn_step}").is_dir()
