"""``secreason data run`` tells a person where the data card is.

Its stdout is one JSON line for scripts; before, nothing said that a card (counts, the
shortcut audit, lengths) had been written or where, so a newcomer never found it.
"""

from __future__ import annotations

import json
from pathlib import Path

from cli_fixtures import REPO, secreason


def test_data_run_names_the_card_and_the_audit(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = secreason(
        "data",
        "run",
        str(REPO / "recipes" / "data" / "tiny-demo.yaml"),
        "--set",
        f"out_dir={out}",
        "--set",
        "demo.n_per_task=10",
        "--set",
        "mix.rl_total=4",
        "--set",
        "decontaminate.benchmarks=null",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])  # scripts: unchanged
    assert summary["outputs"]["sft"]["rows"] > 0
    line = result.stderr.strip().splitlines()[-1]
    assert line == f"data card: {out / 'card.md'} (shortcut audit: passed)", line
    assert (out / "card.md").is_file()


def test_data_export_of_a_missing_folder_says_what_to_give(tmp_path: Path) -> None:
    result = secreason(
        "data", "export", "runs/data/rl", "--format", "verl", "--out", "x", cwd=tmp_path
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "runs/data/rl does not exist" in result.stderr, result.stderr
    assert "secreason data run" in result.stderr, result.stderr
