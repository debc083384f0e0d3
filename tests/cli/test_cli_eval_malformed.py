"""Hostile review of ``secreason eval`` inputs: broken benchmark files and predictions.

Each row writes one malformed file of our own (a benchmark file under its published
name for ``--data``, or a ``--predictions`` file beside a good fixture) and runs the
real command in a subprocess, expecting a non-zero exit, no traceback and the file
(and line, or row) at fault named on stderr; a few rows are accepted inputs (a
byte-order mark, CRLF line ends) whose scores must be right. Rows marked "was:" failed
before this review (a bare ``KeyError`` text such as ``GT``, a BOM taken for part of
the first column's name, a float or boolean index silently read as a row).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_fixtures import secreason

RCM_HEADER = "URL\tDescription\tPrompt\tGT\n"
RCM_ROW = "https://example.invalid/0\tA toy flaw.\tMap the toy flaw to a CWE.\tCWE-79\n"
ATHENA_ROW = {
    "prompt": "Map the toy flaw to a CWE. End with 'Answer: CWE-<id>'.",
    "answer": "CWE-79",
}
MMLU_HEADER = "question,choice0,choice1,choice2,choice3,answer\n"
MMLU_ROW = "Which toy control stops replay?,Nonces,Colours,Fonts,Logos,0\n"


def predictions(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# (benchmark, published file name, file bytes, what stderr must name)
BAD_DATA: list[tuple[str, str, bytes, list[str]]] = [
    # was: "ctibench-rcm (data: ...): GT"
    ("ctibench-rcm", "cti-rcm.tsv", b"URL\tPrompt\nu\tp\n", ["cti-rcm.tsv:1", "'GT'"]),
    ("ctibench-rcm", "cti-rcm.tsv", b"", ["cti-rcm.tsv", "empty file"]),  # was: "no rows"
    ("ctibench-rcm", "cti-rcm.tsv", RCM_HEADER.encode(), ["no rows"]),
    ("ctibench-rcm", "cti-rcm.tsv", b"\xff\xfe" + RCM_HEADER.encode("utf-16-le"), ["UTF-16"]),
    (
        "ctibench-rcm",
        "cti-rcm.tsv",
        (RCM_HEADER + RCM_ROW.replace("CWE-79", "")).encode(),
        ["cti-rcm.tsv: row 0", "not a CWE id"],  # was: at scoring, no file or row
    ),
    # A gold answer nothing can match: refused at load. was: every answer silently wrong
    ("ctibench-mcq", "cti-mcq.tsv", b"Prompt\tGT\nq\tE\n", ["cti-mcq.tsv: row 0", "A-D"]),
    ("ctibench-vsp", "cti-vsp.tsv", b"Prompt\tGT\nq\tAV:N\n", ["cti-vsp.tsv: row 0", "CVSS"]),
    ("ctibench-ate", "cti-ate.tsv", b"Prompt\tGT\nq\tnone\n", ["cti-ate.tsv: row 0", "technique"]),
    # was: "unexpected AttributeError: 'list' object has no attribute 'get'"
    (
        "athenabench-rcm",
        "athena-cti-rcm.jsonl",
        b"[1, 2]\n",
        ["athena-cti-rcm.jsonl:1", "JSON object"],
    ),
    (
        "athenabench-rcm",
        "athena-cti-rcm.jsonl",
        (json.dumps(ATHENA_ROW) + "\n" + json.dumps({"prompt": "x"}) + "\n").encode(),
        ["athena-cti-rcm.jsonl:2", "'answer'"],  # was: "row 1", no line
    ),
    (
        "athenabench-rcm",
        "athena-cti-rcm.jsonl",
        b"\n\n",
        ["athena-cti-rcm.jsonl", "empty file"],
    ),  # was: no rows
    (
        "athenabench-rcm",
        "athena-cti-rcm.jsonl",
        (json.dumps(ATHENA_ROW) + "\n" + '{"prompt": "x", "answ').encode(),
        ["athena-cti-rcm.jsonl:2", "not valid JSON"],
    ),
    # was: "invalid literal for int() with base 10: 'B'" with no file or row
    (
        "mmlu-security",
        "computer_security_test.csv",
        (MMLU_HEADER + MMLU_ROW[:-2] + "B\n").encode(),
        ["row 0", "'B'"],
    ),
    # was: "choice3", the KeyError's text alone
    (
        "mmlu-security",
        "computer_security_test.csv",
        b"question,choice0,choice1,choice2,answer\nq,a,b,c,0\n",
        ["row 0", "'choice3'"],
    ),
    # was: "questions"; the next row (a solution that is no option) was accepted
    (
        "cybermetric-80",
        "CyberMetric-80-v1.json",
        b'{"items": []}',
        ["CyberMetric-80-v1.json", "'questions'"],
    ),
    (
        "cybermetric-80",
        "CyberMetric-80-v1.json",
        json.dumps(
            {"questions": [{"question": "q", "answers": {"A": "x", "B": "y"}, "solution": "E"}]}
        ).encode(),
        ["question 0", "solution 'E'"],
    ),
    (
        "seceval",
        "questions.json",
        b'[{"id": "1", "question": "q", "answer": "A"}]',
        ["item 0", "'choices'"],
    ),
    ("seceval", "questions.json", b"[]", ["questions.json", "non-empty"]),  # was: "no rows"
    (
        "secbench",
        "MCQs_2730.jsonl",
        b'{"question": "q", "answers": ["a", "b"]}\n',
        ["MCQs_2730.jsonl:1", "'label'"],
    ),
]


@pytest.mark.parametrize(
    ("name", "file", "content", "expected"),
    BAD_DATA,
    ids=[f"{r[0]}:{r[3][-1]}" for r in BAD_DATA],
)
def test_bad_benchmark_file_is_named(
    tmp_path: Path, name: str, file: str, content: bytes, expected: list[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / file).write_bytes(content)
    preds = predictions(tmp_path / "p.jsonl", [json.dumps({"index": 0, "completion": "x"})])
    run = secreason("eval", name, "--data", str(data), "--predictions", str(preds), cwd=tmp_path)
    assert run.returncode != 0, run.stdout
    assert "Traceback" not in run.stderr
    for part in expected:
        assert part in run.stderr, run.stderr


def rcm_folder(root: Path, text: str) -> Path:
    root.mkdir()
    (root / "cti-rcm.tsv").write_bytes(text.encode("utf-8"))
    return root


BAD_PREDICTIONS: list[tuple[list[str], list[str]]] = [
    # was: "invalid literal for int() with base 10: 'zero'" with no file or line
    ([json.dumps({"index": "zero", "completion": "CWE-79"})], ["p.jsonl:1", "whole number"]),
    # was: accepted as row 0 / row 1
    ([json.dumps({"index": 0.7, "completion": "CWE-79"})], ["p.jsonl:1", "whole number"]),
    ([json.dumps({"index": True, "completion": "CWE-79"})], ["p.jsonl:1", "whole number"]),
    (
        [json.dumps({"index": 0, "completion": "a"}), json.dumps({"index": 5, "completion": "b"})],
        ["p.jsonl:2", "index 5"],
    ),
    ([json.dumps({"id": "ctibench-mcq-0", "completion": "A"})], ["p.jsonl:1", "ctibench-mcq-0"]),
    (
        [json.dumps({"index": 0, "completion": "a"}), json.dumps({"index": 0, "completion": "b"})],
        ["p.jsonl:2", "second prediction"],
    ),
    (["{not json"], ["p.jsonl:1", "JSON"]),
    ([json.dumps({"index": 0, "completion": None})], ["p.jsonl:1", "'completion'"]),
    ([json.dumps({"index": 0})], ["p.jsonl:1", "'completion'"]),
    # was: the id silently won over a contradicting index; a numeric reasoning dropped
    (
        [json.dumps({"id": "ctibench-rcm-1", "index": 0, "completion": "CWE-79"})],
        ["p.jsonl:1", "different rows"],
    ),
    (
        [json.dumps({"index": 0, "completion": "CWE-79", "reasoning": 5})],
        ["p.jsonl:1", "'reasoning'"],
    ),
    (["", "  "], ["p.jsonl", "empty"]),
]


@pytest.mark.parametrize(
    ("lines", "expected"), BAD_PREDICTIONS, ids=[r[1][-1] for r in BAD_PREDICTIONS]
)
def test_bad_predictions_line_is_named(
    tmp_path: Path, lines: list[str], expected: list[str]
) -> None:
    data = rcm_folder(tmp_path / "data", RCM_HEADER + RCM_ROW + RCM_ROW)
    preds = predictions(tmp_path / "p.jsonl", lines)
    run = secreason(
        "eval", "ctibench-rcm", "--data", str(data), "--predictions", str(preds), cwd=tmp_path
    )
    assert run.returncode != 0, run.stdout
    assert "Traceback" not in run.stderr
    for part in expected:
        assert part in run.stderr, run.stderr


def test_bom_crlf_and_missing_rows_are_scored_right(tmp_path: Path) -> None:
    """A BOM'd CRLF benchmark file, a BOM'd CRLF predictions file with one row missing:
    scored (the missing row counted invalid and warned about), not refused.
    was: a BOM'd predictions file was refused ('Unexpected UTF-8 BOM')."""
    data = tmp_path / "data"
    data.mkdir()
    text = MMLU_HEADER + MMLU_ROW + MMLU_ROW.replace(",0\n", ",2\n")
    (data / "computer_security_test.csv").write_bytes(
        b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode()
    )
    preds = tmp_path / "p.jsonl"
    line = json.dumps({"index": 0, "completion": "<think>t</think>\nAnswer: A"})
    preds.write_bytes(b"\xef\xbb\xbf" + line.encode() + b"\r\n")
    run = secreason(
        "eval",
        "mmlu-security",
        "--data",
        str(data),
        "--predictions",
        str(preds),
        "--out",
        "o",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert "1 of 2 rows have no prediction" in run.stderr
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    (bench,) = report["benchmarks"]
    for protocol in ("official", "strict"):
        metrics = bench["protocols"][protocol]
        assert metrics["accuracy"]["mean"] == 0.5, protocol
        assert metrics["invalid_rate"]["mean"] == 0.5, protocol
