"""``secreason score`` run as the real console script on fixture JSONL files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).parent / "secreason"
# Wide, colourless help panels so that messages are never wrapped mid-phrase.
ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
THINK = "<think>Reflected input reaches the page unencoded, so script runs.</think>\n"
CRIT = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"


def run(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    if not SCRIPT.exists():
        pytest.skip(f"console script {SCRIPT} is not installed")
    return subprocess.run(
        [str(SCRIPT), "score", *map(str, args)],
        capture_output=True,
        text=True,
        input=stdin,
        env=ENV,
        timeout=60,
    )


def write_jsonl(path: Path, rows: list[dict | str]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def summary_of(stderr: str) -> dict:
    start = stderr.index("{")
    end = stderr.rindex("}") + 1
    return json.loads(stderr[start:end])


@pytest.fixture
def cwe_file(tmp_path: Path) -> Path:
    return write_jsonl(
        tmp_path / "cwe.jsonl",
        [
            {"id": "a", "completion": THINK + "Answer: CWE-79", "reference": "CWE-79"},
            {"id": "b", "completion": THINK + "Answer: CWE-89", "reference": "CWE-79"},
            # Strict: last line is not an Answer line; official: last CWE-\d+ is CWE-79.
            {"id": "c", "completion": THINK + "CWE-89? No: CWE-79.\nDone", "reference": "CWE-79"},
            {"id": "d", "completion": "<think>Answer: CWE-79", "reference": "CWE-79"},
        ],
    )


def test_strict_scores_every_line_and_passes_fields_through(cwe_file: Path) -> None:
    result = run("cwe", cwe_file)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", "c", "d"]
    assert [r["status"] for r in rows] == ["correct", "incorrect", "invalid", "invalid"]
    assert rows[0]["answer"] == "CWE-79"
    assert rows[0]["format"]["ok"] is True
    assert rows[3]["format"]["status"] == "unclosed"
    assert "completion" not in rows[0]
    agg = summary_of(result.stderr)
    assert (agg["task"], agg["protocol"], agg["n"], agg["errors"]) == ("cwe", "strict", 4, 0)
    assert agg["accuracy"] == 0.25


def test_official_protocol_reads_the_last_cwe_anywhere(cwe_file: Path, tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    out = tmp_path / "scored.jsonl"
    result = run("cwe", cwe_file, "--protocol", "official", "--summary", summary, "--out", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["status"] for r in rows] == ["correct", "incorrect", "correct", "invalid"]
    agg = json.loads(summary.read_text())
    assert agg["protocol"] == "official"
    assert agg["accuracy"] == 0.5


def test_malformed_lines_are_named_and_the_rest_scored(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"completion": THINK + "Answer: B", "reference": "B"},
            "{not json",
            {"reference": "B"},
            {"completion": THINK + "Answer: C", "reference": "C"},
        ],
    )
    result = run("mcq", path)
    assert result.returncode == 1
    assert "line 2: not valid JSON" in result.stderr
    assert "line 3: missing 'completion'" in result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r.get("status", r.get("error", "")[:8]) for r in rows] == [
        "correct",
        "not vali",
        "missing ",
        "correct",
    ]
    assert rows[1]["line"] == 2
    agg = summary_of(result.stderr)
    assert (agg["n"], agg["errors"], agg["accuracy"]) == (2, 2, 1.0)


def test_prefilled_completions(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "pre.jsonl",
        [
            {
                "completion": "The input is echoed unencoded.</think>\nAnswer: CWE-79",
                "reference": "CWE-79",
            }
        ],
    )
    result = run("cwe", path, "--prefilled")
    row = json.loads(result.stdout)
    assert (row["status"], row["format"]["status"]) == ("correct", "prefilled")


def test_cvss_and_ate_aggregates_from_stdin() -> None:
    lines = [
        json.dumps({"completion": THINK + f"Answer: {CRIT}", "reference": CRIT}),
        json.dumps({"completion": THINK + "Answer: junk", "reference": CRIT}),
    ]
    result = run("cvss", "-", stdin="\n".join(lines))
    agg = summary_of(result.stderr)
    assert agg["mad"] == 0.0
    assert agg["mean"] == 0.5
    ate = json.dumps(
        {"completion": THINK + "Answer: T1071, T1005", "reference": ["T1071", "T1573"]}
    )
    agg = summary_of(run("ate", "-", stdin=ate).stderr)
    assert agg["micro_f1"] == 0.5


def test_taa_with_map_files(tmp_path: Path) -> None:
    aliases = tmp_path / "aliases.json"
    related = tmp_path / "related.json"
    aliases.write_text(json.dumps({"Copper Heron": ["Heron Team"]}))
    related.write_text(json.dumps({"Copper Heron": ["Grey Finch"]}))
    path = write_jsonl(
        tmp_path / "taa.jsonl",
        [
            {"completion": THINK + "Answer: Heron Team", "reference": "Copper Heron"},
            {"completion": THINK + "Answer: Grey Finch", "reference": "Copper Heron"},
        ],
    )
    result = run("taa", path, "--aliases", aliases, "--related", related)
    assert result.returncode == 0, result.stderr
    labels = [json.loads(line)["details"]["label"] for line in result.stdout.splitlines()]
    assert labels == ["correct", "plausible"]
    agg = summary_of(result.stderr)
    assert (agg["correct"], agg["correct_plausible"]) == (0.5, 1.0)


def test_task_options_are_passed(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "h.jsonl", [{"completion": THINK + "Answer: CWE-74", "reference": "CWE-79"}]
    )
    plain = json.loads(run("cwe", path).stdout)
    partial = json.loads(run("cwe", path, "-o", "hierarchy=true").stdout)
    assert (plain["score"], partial["score"]) == (0.0, 0.5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope", "x.jsonl"), "unknown task"),
        (("mcq", "x.jsonl", "--protocol", "loose"), "strict, official"),
        (("mcq", "missing.jsonl"), "does not exist"),
        (("cwe", "x.jsonl", "--aliases", "a.json"), "taa task only"),
        (("cwe", "x.jsonl", "-o", "nonsense"), "KEY=VALUE"),
    ],
)
def test_bad_invocations_say_why(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    if not SCRIPT.exists():
        pytest.skip(f"console script {SCRIPT} is not installed")
    write_jsonl(tmp_path / "x.jsonl", [{"completion": "x", "reference": "A"}])
    result = subprocess.run(
        [str(SCRIPT), "score", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=ENV,
        timeout=60,
    )
    assert result.returncode != 0
    assert message in result.stderr
