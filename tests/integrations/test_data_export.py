"""``secreason data export --format verl|openrlhf``: RL rows in the trainers' layouts."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from secreason.cli import app
from secreason.data.export import rl_row, save_rows
from secreason.integrations import openrlhf, verl
from secreason.tasks.base import Sample

SAMPLES = [
    Sample("a1", "cwe", [{"role": "user", "content": "Which CWE? XSS"}], "CWE-79", {"x": 1}),
    Sample(
        "a2", "mcq", [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}], "B"
    ),
]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["data", "export", *args])
    return result.exit_code, result.output


def test_verl_parquet_from_a_saved_rl_folder(tmp_path: Path) -> None:
    save_rows([rl_row(s) for s in SAMPLES], tmp_path / "rl", split="train")
    code, out = run(str(tmp_path / "rl"), "--format", "verl", "--out", str(tmp_path / "verl"))
    assert code == 0, out
    rows = pq.read_table(tmp_path / "verl" / "train.parquet").to_pylist()
    assert [r["data_source"] for r in rows] == ["secreason/cwe", "secreason/mcq"]
    assert rows[1]["prompt"] == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Q"},
    ]
    assert rows[0]["reward_model"] == {"style": "rule", "ground_truth": "CWE-79"}
    assert rows[0]["ability"] == "cyber"
    assert rows[0]["extra_info"] == {
        "split": "train", "index": 0, "id": "a1", "task": "cwe", "source": ""
    }  # fmt: skip
    # What verl's reward manager then calls for the first row:
    got = verl.compute_score(
        rows[0]["data_source"],
        "The flaw runs script in the victim's browser.</think>\nAnswer: CWE-79",
        rows[0]["reward_model"]["ground_truth"],
        rows[0]["extra_info"],
    )
    assert got["score"] == 1.0


def test_openrlhf_jsonl_labels_round_trip(tmp_path: Path) -> None:
    source = tmp_path / "train.jsonl"
    source.write_text("".join(json.dumps(rl_row(s)) + "\n" for s in SAMPLES))
    code, out = run(str(source), "--format", "openrlhf", "--out", str(tmp_path / "o"))
    assert code == 0, out
    lines = [json.loads(x) for x in (tmp_path / "o" / "train.jsonl").read_text().splitlines()]
    assert [openrlhf.parse_label(r["label"], 0) for r in lines] == [("cwe", "CWE-79"), ("mcq", "B")]
    assert lines[0]["prompt"] == SAMPLES[0].messages


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ({"id": "z", "task": "cwe", "reference": "CWE-79"}, "row 0 (id='z'): missing prompt"),
        ({"prompt": [{"role": "user", "content": "q"}], "task": "ioc", "reference": "x"},
         "names no secreason task"),
        ({"messages": [{"role": "user", "content": "q"}], "task": "cwe", "reference": "CWE-1"},
         "is this an RL split?"),
    ],
)  # fmt: skip
def test_bad_rows_are_refused_with_the_row(tmp_path: Path, row: dict, needle: str) -> None:
    source = tmp_path / "train.jsonl"
    source.write_text(json.dumps(row) + "\n")
    code, out = run(str(source), "--format", "verl", "--out", str(tmp_path / "v"))
    assert code == 2 and needle in out, out
    assert not (tmp_path / "v" / "train.parquet").exists()


def test_unknown_format_and_missing_source(tmp_path: Path) -> None:
    code, out = run(str(tmp_path), "--format", "csv", "--out", str(tmp_path / "x"))
    assert code == 2 and "expected verl or openrlhf" in out
    code, out = run(str(tmp_path / "none"), "--format", "verl", "--out", str(tmp_path / "x"))
    assert code == 2 and "none does not exist" in out and "RL JSONL file" in out, out
