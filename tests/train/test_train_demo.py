"""The short demo (same code path as `secreason demo`, fewer steps) end to end.

Asserts what the quick variant can promise: SFT teaches the format, RL changes the
weights, the report folder is complete, and the exported model loads offline and
answers in the reasoning format. The score gain is the full demo's claim, not this one's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from secreason.reasoning import split
from secreason.train.demo import DemoConfig


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cli = "from secreason.cli import main; main()"
    cmd = [sys.executable, "-c", cli, "demo", "--quick", "--out", str(out)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    return out


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_sft_teaches_the_reasoning_format(demo_dir: Path) -> None:
    sft = _rows(demo_dir / "eval" / "sft.jsonl")
    base = _rows(demo_dir / "eval" / "base.jsonl")
    assert len(sft) >= 40
    rate = sum(r["format_ok"] for r in sft) / len(sft)
    assert rate >= 0.85, f"format-valid after SFT: {rate:.2f}"
    assert sum(r["format_ok"] for r in base) / len(base) < rate


@pytest.mark.slow
def test_rl_changed_the_weights(demo_dir: Path) -> None:
    from secreason.train.demo import weights_changed

    assert weights_changed(demo_dir / "sft" / "final", demo_dir / "rl" / "final") > 0.0
    assert weights_changed(demo_dir / "sft" / "final", demo_dir / "sft" / "final") == 0.0
    records = _rows(demo_dir / "rl" / "rl_metrics.jsonl")
    assert records and all(0.0 <= r["reward_time_share"] < 1.0 for r in records)


@pytest.mark.slow
def test_report_folder_is_complete(demo_dir: Path) -> None:
    report = demo_dir / "report"
    text = (report / "README.md").read_text()
    assert "## Measured outcomes" in text and "paired bootstrap 95% CI" in text
    for task in DemoConfig.quick().tasks:
        assert f"| {task} | rl |" in text
    for png in ("rl_curves.png", "reasoning_length.png"):
        assert (report / png).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_exported_model_loads_offline_and_is_the_rl_model(demo_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from secreason.train.demo import weights_changed

    model_dir = demo_dir / "report" / "model"
    assert weights_changed(model_dir, demo_dir / "rl" / "final") == 0.0
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    item = _rows(demo_dir / "data" / "heldout.jsonl")[0]
    prompt = tokenizer.apply_chat_template(
        item["messages"], tokenize=False, add_generation_prompt=True
    )
    assert prompt.endswith("<think>\n")
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=24, do_sample=False)
    text = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert len(text.split()) >= 3  # a trained model writes words, not byte noise
    greedy = [r for r in _rows(demo_dir / "eval" / "rl.jsonl") if r["decoding"] == "greedy"]
    assert sum(split(r["text"], prefilled=True).status == "prefilled" for r in greedy) > 0


@pytest.mark.slow
def test_rerun_skips_finished_stages(demo_dir: Path) -> None:
    from secreason.train.demo import run_demo

    before = (demo_dir / "rl" / "final" / "secreason_stage.json").read_text()
    run_demo(DemoConfig.quick(), demo_dir)
    assert (demo_dir / "rl" / "final" / "secreason_stage.json").read_text() == before


def test_threads_drop_to_one_while_every_core_is_busy() -> None:
    from secreason.train.demo import busy_cores, pick_threads

    cores = os.cpu_count() or 1
    assert pick_threads(3) == 3  # an explicit request wins
    spin = "import time\nend = time.time() + 20\nwhile time.time() < end: pass\n"
    hogs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(cores)]
    try:
        busy = busy_cores(window=1.0)
        assert busy is not None and cores / 2 <= busy <= cores + 0.01
        assert pick_threads(None) == 1
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
