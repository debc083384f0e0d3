"""``benchmarks/harmbench_deployment.py`` end to end on the serving tests' tiny models:
three real ``secreason serve`` processes, ``secreason eval harmbench`` against each with
the tiny Llama-Guard-protocol model as judge, benign prompts through the same servers."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from serve_fixtures import HARMFUL_OUTPUT_PROMPT, SAFE_QUESTIONS, UNSAFE_QUESTIONS

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "harmbench_deployment.py"
CATEGORIES = ["cybercrime_intrusion", "harassment_bullying", "cybercrime_intrusion", "illegal"]


def write_fixtures(folder: Path) -> tuple[Path, Path]:
    """A HarmBench CSV of behaviors the tiny guard was taught to flag, and a cti-mcq.tsv of
    questions it was taught to pass (our own texts, published layouts)."""
    folder.mkdir(parents=True, exist_ok=True)
    harm = folder / "harmbench_behaviors_text_all.csv"
    with harm.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "Behavior",
                "FunctionalCategory",
                "SemanticCategory",
                "Tags",
                "ContextString",
                "BehaviorID",
            ]
        )
        for i, (behavior, category) in enumerate(zip(UNSAFE_QUESTIONS, CATEGORIES, strict=True)):
            writer.writerow([behavior, "standard", category, "", "", f"toy_{i}"])
        writer.writerow(
            [HARMFUL_OUTPUT_PROMPT, "standard", "cybercrime_intrusion", "", "", "toy_b"]
        )
    benign = folder / "cti-mcq.tsv"
    with benign.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(
            ["URL", "Question", "Option A", "Option B", "Option C", "Option D", "Prompt", "GT"]
        )
        for i, question in enumerate(SAFE_QUESTIONS[:3]):
            writer.writerow([f"toy/{i}", question, "w", "x", "y", "z", question, "A"])
    return harm, benign


@pytest.mark.slow
def test_three_configurations_and_the_guard_refuses_more(
    tmp_path: Path, chat_model_dir: Path, guard_model_dir: Path
) -> None:
    harm, benign = write_fixtures(tmp_path / "data")
    out = tmp_path / "run"
    command = [
        sys.executable,
        str(SCRIPT),
        "--model",
        str(chat_model_dir),
        "--guard",
        str(guard_model_dir),
        "--judge-model",
        str(guard_model_dir),
        "--judge-kind",
        "guard",
        "--data",
        str(harm),
        "--benign",
        str(benign),
        "--limit",
        "4",
        "--max-tokens",
        "24",
        "--out",
        str(out),
        "--json",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {r["configuration"]: r for r in json.loads(done.stdout)["configurations"]}
    assert list(rows) == ["no-system-prompt", "system-prompt", "system-prompt+guard"]
    for row in rows.values():
        assert row["n_harmbench"] == 4  # --limit cut the five behaviors to four
        assert row["n_benign"] == 3
        assert 0.0 <= row["pass_rate"] <= 1.0
        assert 0.0 <= row["false_refusal_rate"] <= 1.0
        assert set(row["per_category"]) == set(CATEGORIES)
    guarded = rows["system-prompt+guard"]["harmbench_guard_refusal_rate"]
    assert guarded > rows["system-prompt"]["harmbench_guard_refusal_rate"] == 0.0
    assert guarded > rows["no-system-prompt"]["harmbench_guard_refusal_rate"] == 0.0
    # the deployments that were measured are on disk: their YAML and audit trail
    guard_dir = out / "system-prompt-guard"
    assert "guard" in (guard_dir / "serve.yaml").read_text()
    audit = [json.loads(line) for line in (guard_dir / "audit.jsonl").read_text().splitlines()]
    assert len(audit) >= 4 + 3
    table = (out / "summary.md").read_text()
    assert all(name in table for name in rows)
