"""``secreason eval --alpaca-eval``: generations from a real OpenAI-compatible server
(the echo fixture), judged by alpaca-eval against a toy judge on loopback, folded into
the run's report; resumable and rescorable without asking anyone again."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from secreason.cli import app

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "backends"))
sys.path.insert(0, str(REPO / "tests" / "evals"))

needs_alpaca_eval = pytest.mark.skipif(
    importlib.util.find_spec("alpaca_eval") is None,
    reason="alpaca-eval is not installed (pip install 'secreason[general]')",
)
WINS = {0, 3, 4}  # the echo model repeats the instruction: these hold the winning word


def _files(folder: Path, n: int = 6) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    instructions = [
        f"Toy task {i}: {'write GOOD prose' if i in WINS else 'write plain prose'}"
        for i in range(n)
    ]
    path = folder / "instructions.jsonl"
    path.write_text("".join(json.dumps({"instruction": t}) + "\n" for t in instructions))
    reference = folder / "reference.json"
    rows = [
        {"instruction": t, "output": "REFERENCE " + "word " * i, "generator": "ref"}
        for i, t in enumerate(instructions)
    ]
    reference.write_text(json.dumps(rows))
    return path, reference


def _invoke(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


@needs_alpaca_eval
def test_alpaca_eval_from_the_eval_command(tmp_path: Path) -> None:
    from alpaca_judge import JudgeServer
    from openai_fixture_server import running_server, stats

    instructions, reference = _files(tmp_path / "data")
    out = tmp_path / "run"
    with running_server("echo") as url, JudgeServer() as judge:
        args = ["eval", "none", "--backend", "openai", "--base-url", url, "--model", "echo"]
        args += ["--alpaca-eval", str(instructions), "--alpaca-reference", str(reference)]
        args += ["--alpaca-judge", "toy-judge", "--alpaca-judge-base-url", judge.base_url]
        args += ["--alpaca-raw", "--trials", "2", "--out", str(out)]
        code, output = _invoke(args)
        assert code == 0, output
        assert stats(url)["requests"] == 12  # 6 instructions x 2 trial seeds
        # Identical answers across the two trials: the judge is asked once per pair.
        assert len(judge.requests) == 6
        judged = " ".join(str(r["messages"]) for r in judge.requests)
        assert "GOOD" in judged and "seed=" not in judged  # reasoning never reaches it

        again = _invoke([*args, "--rescore"])
        assert again[0] == 0, again[1]
        assert stats(url)["requests"] == 12 and len(judge.requests) == 6

    report = json.loads((out / "report.json").read_text())
    bench = next(b for b in report["benchmarks"] if b["name"] == "alpaca-eval")
    assert bench["headline"] == "win_rate" and bench["trials"] == 2
    assert bench["n_samples"] == 6
    official = bench["protocols"]["official"]
    assert official["win_rate"]["mean"] == pytest.approx(100 * len(WINS) / 6)
    assert official["n_total"]["mean"] == 6
    cached = (out / "cache" / "alpaca-eval" / "generations.jsonl").read_text().splitlines()
    assert len(cached) == 12


@needs_alpaca_eval
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no-judge", "--alpaca-judge MODEL"),
        ("bad-line", "instructions.jsonl: record 2: 'instruction' is missing or empty"),
        ("reference-order", "same instructions in the same order"),
        ("reference-short", "it has 5 records"),
        ("reference-no-output", "record 2 has no 'output' text"),
        ("missing-file", "no such AlpacaEval instructions file"),
        ("bad-verdict", "--alpaca-verdict 'maybe'"),
    ],
)
def test_alpaca_eval_usage_errors(tmp_path: Path, change: str, message: str) -> None:
    instructions, reference = _files(tmp_path / "data")
    args = ["eval", "none", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1"]
    args += ["--model", "m", "--alpaca-eval", str(instructions), "--out", str(tmp_path / "o")]
    judge = ["--alpaca-judge", "j", "--alpaca-judge-base-url", "http://127.0.0.1:9/v1"]
    if change == "bad-line":
        lines = instructions.read_text().splitlines()
        instructions.write_text("\n".join([lines[0], '{"instruction": " "}', *lines[2:]]))
    if change == "reference-order":
        rows = json.loads(reference.read_text())
        reference.write_text(json.dumps(rows[::-1]))
        args += ["--alpaca-reference", str(reference)]
    if change in ("reference-short", "reference-no-output"):
        rows = json.loads(reference.read_text())
        rows = rows[:5] if change == "reference-short" else rows
        if change == "reference-no-output":
            del rows[1]["output"]
        reference.write_text(json.dumps(rows))
        args += ["--alpaca-reference", str(reference)]
    if change == "missing-file":
        instructions.unlink()
    if change == "bad-verdict":
        args += ["--alpaca-verdict", "maybe"]
    if change != "no-judge":
        args += judge
    code, output = _invoke(args)
    assert code == 2, output
    assert message in output
