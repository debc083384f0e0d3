"""AthenaBench: loaders, the authors' official rules, strict beside them, --predictions.

The fixtures (tests/fixtures/benchmarks/athenabench) have the published file names and
columns with invented rows. Every expected number below was worked out by hand from
the authors' rules (athena_eval/answer_extractors.py and evaluate.py): the last
non-empty line with a match, after one leading "Answer:" label is dropped; the
comparison per task; the aggregate per task.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from secreason.cli import app
from secreason.evals import ItemResult, get_benchmark
from secreason.evals.athenabench import ATHENABENCH
from secreason.evals.registry import expand
from secreason.tasks.base import Protocol

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks" / "athenabench"

# name -> completions per fixture row, official metrics, strict metrics (hand-computed)
CASES: dict[str, tuple[list[str], dict[str, float], dict[str, float]]] = {
    # gold A, C, B, D. Official: row 2's last line "This is a guess." holds a standalone
    # "a" (case-insensitive) -> A, wrong; row 3's last line "Answer:" is empty after the
    # label, so the line above ("Option D fits.") gives D. Strict: rows 2, 3 invalid.
    "athenabench-mcq": (
        [
            "I weighed the options.\nAnswer: A",
            "The answer is C.\nAnswer: **C**",
            "Answer: B\nThis is a guess.",
            "Option D fits.\nAnswer:",
        ],
        {"accuracy": 3 / 4},
        {"accuracy": 2 / 4, "invalid_rate": 2 / 4},
    ),
    # gold T1552.001, T1110.003, T1595.002 (main technique compared). Official: the first
    # id of the last matching line, cut at the dot; row 1's last line names T1078.
    # Strict: the set of the Answer line, sub-techniques collapsed, must equal the gold.
    "athenabench-ate": (
        ["Answer: T1552.001 or T1059", "Answer: T1110.003\nSee also T1078.", "Answer: t1595.002"],
        {"accuracy": 2 / 3},
        {"accuracy": 1 / 3},
    ),
    # gold CWE-79, CWE-121, CWE-312. Official compares strings: "CWE-0312" != "CWE-312";
    # strict compares integers but needs the Answer line last.
    "athenabench-rcm": (
        ["Answer: cwe-79", "Answer: CWE-787\nCWE-121 is the narrower child.", "Answer: CWE-0312"],
        {"accuracy": 2 / 3},
        {"accuracy": 2 / 3},
    ),
    # gold {M1017, M1022, M1027, M1047}, {M1027, M1032, M1036}, {M1056}. Row 1: P 1/2,
    # R 1/3 -> F1 0.4.
    # Row 2: official reads M1056 on the last line (F1 1); strict: no Answer line last.
    "athenabench-rms": (
        [
            "Answer: M1047, M1017, M1027, M1022",
            "Answer: M1027, M1099",
            "Answer: M1056\nM1056 alone suffices.",
        ],
        {"f1": (1 + 0.4 + 1) / 3},
        {"f1": (1 + 0.4 + 0) / 3, "invalid_rate": 1 / 3},
    ),
    # gold base 6.1, 9.8, 5.5. Row 1 scores 7.5 (|d| = 2.3); row 2's vector ends with "."
    # which the cvss package refuses: official leaves it out (MAD 1.15 over 2 rows),
    # strict reads the vector without the period (|d| = 0).
    "athenabench-vsp": (
        [
            "Answer: CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N",
            "Answer: CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
            "Answer: CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N.",
        ],
        {"mad": 1.15, "accuracy": 1 - 1.15 / 7.7, "n_valid": 2},
        {"mad": 2.3 / 3, "accuracy": (2 + (1 - 2.3 / 7.7)) / 3, "n_valid": 3},
    ),
    # gold Toy-C-36, Copper Heron, Storm-0001 (aliases.csv / related_groups.csv beside).
    # Official reads the whole last line: "Lab Eagle (Toy-C-36)" is no node (wrong);
    # "Silent Quill" (quotes stripped) is an alias of an alias (correct); "Toy Spider"
    # is related (plausible). Strict accepts an alias in parentheses.
    "athenabench-taa": (
        [
            "Answer: Lab Eagle (Toy-C-36)",
            'It looks like them.\nAnswer: "Silent Quill"',
            "Answer: Toy Spider",
        ],
        {"accuracy": 1 / 3, "plausible_accuracy": 2 / 3, "combined_accuracy": 1.5 / 3},
        {"accuracy": 2 / 3, "plausible_accuracy": 3 / 3, "combined_accuracy": 2.5 / 3},
    ),
}


def score(name: str, completions: list[str], protocol: Protocol, data: Path = FIXTURES):
    bench = get_benchmark(name)
    samples = bench.load(data)
    results = [
        ItemResult(s.id, protocol, bench.judge(s, c, protocol))
        for s, c in zip(samples, completions, strict=True)
    ]
    return bench.metrics(samples, results, protocol)


def test_suite_and_registry() -> None:
    assert expand(["athenabench"]) == [
        "athenabench-mcq",
        "athenabench-ate",
        "athenabench-rcm",
        "athenabench-rms",
        "athenabench-vsp",
        "athenabench-taa",
    ]
    assert get_benchmark("athenabench-rms").headline == "f1"


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("protocol", ["official", "strict"])
def test_hand_computed_scores(name: str, protocol: Protocol) -> None:
    completions, official, strict = CASES[name]
    got = score(name, completions, protocol)
    for key, value in (official if protocol == "official" else strict).items():
        assert got[key] == pytest.approx(value), (key, got)


def test_loading_keeps_the_row_prompt_and_columns() -> None:
    bench = get_benchmark("athenabench-mcq")
    samples = bench.load(FIXTURES)
    row = json.loads((FIXTURES / "athena-cti-mcq-3k.jsonl").read_text().splitlines()[1])
    assert [s.id for s in samples] == [f"athenabench-mcq-{i}" for i in range(4)]
    assert samples[1].messages == [{"role": "user", "content": row["prompt"]}]
    assert samples[1].meta["options"]["E"] == row["option_e"]
    assert bench.messages(samples[1], "strict") == bench.messages(samples[1], "official")
    assert get_benchmark("athenabench-rms").load(FIXTURES, limit=1)[0].meta["technique_id"]


def test_repository_layout_and_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "benchmark-mini").mkdir()
    shutil.copy(FIXTURES / "athena-cti-rcm.jsonl", tmp_path / "benchmark-mini")
    assert len(get_benchmark("athenabench-rcm").load(tmp_path)) == 3
    with pytest.raises(FileNotFoundError, match="--data"):
        get_benchmark("athenabench-rcm").load(None)
    with pytest.raises(FileNotFoundError, match="athena-cti-vsp.jsonl"):
        get_benchmark("athenabench-vsp").load(tmp_path)
    bad = tmp_path / "athena-cti-ate.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "answer": ""}) + "\n")
    with pytest.raises(ValueError, match=r"row 0: empty or missing 'answer'"):
        get_benchmark("athenabench-ate").load(bad)


def test_vsp_with_no_parseable_vector_is_the_authors_perfect_score() -> None:
    # Their MAD over zero parsed rows is 0, so accuracy is 1 - 0 / 7.7; kept, with n_valid.
    got = score("athenabench-vsp", ["no idea"] * 3, "official")
    assert (got["accuracy"], got["n_valid"]) == (1.0, 0)
    assert score("athenabench-vsp", ["no idea"] * 3, "strict")["accuracy"] == 0.0


def test_taa_without_maps_matches_the_exact_name_only(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "athena-cti-taa.jsonl", tmp_path)
    got = score(
        "athenabench-taa", ["Answer: TOY-C-36", "Answer: Heron Team", "x"], "official", tmp_path
    )
    assert got["accuracy"] == pytest.approx(1 / 3)
    with pytest.raises(FileNotFoundError, match="alias map"):
        get_benchmark("athenabench-taa", aliases=tmp_path / "none.csv").load(tmp_path)


def eval_predictions(name: str, data: Path, completions: list[str], out: Path) -> dict:
    preds = out / "preds.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    preds.write_text(
        "".join(json.dumps({"index": i, "completion": c}) + "\n" for i, c in enumerate(completions))
    )
    args = ["eval", name, "--predictions", str(preds), "--data", str(data), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)[name]


@pytest.mark.parametrize("name", sorted(CASES))
def test_predictions_through_the_cli(tmp_path: Path, name: str) -> None:
    completions, official, strict = CASES[name]
    got = eval_predictions(name, FIXTURES, completions, tmp_path)
    headline = get_benchmark(name).headline
    assert got["official"][headline] == pytest.approx(official[headline])
    assert got["strict"][headline] == pytest.approx(strict[headline])


ROWS = {
    "athenabench-mcq": 300,
    "athenabench-ate": 100,
    "athenabench-rcm": 200,
    "athenabench-rms": 100,
    "athenabench-vsp": 200,
    "athenabench-taa": 50,
}


@pytest.mark.parametrize("name", sorted(ATHENABENCH))
def test_real_mini_split_through_predictions(
    shared_benchmarks: Path, tmp_path: Path, name: str
) -> None:
    """Echoing each gold answer scores 1 under both protocols; one fixed letter scores
    MCQ's share of that letter."""
    data = shared_benchmarks / "athenabench"
    bench = get_benchmark(name)
    samples = bench.load(data)
    assert len(samples) == ROWS[name]
    echo = [f"My reasoning.\nAnswer: {s.reference}" for s in samples]
    got = eval_predictions(name, data, echo, tmp_path)
    assert got["official"][bench.headline] == pytest.approx(1.0)
    assert got["strict"][bench.headline] == pytest.approx(1.0)
    if name == "athenabench-mcq":
        share = sum(s.reference == "C" for s in samples) / len(samples)
        fixed = eval_predictions(name, data, ["Answer: C"] * len(samples), tmp_path / "c")
        assert fixed["official"]["accuracy"] == pytest.approx(share)


def test_suite_runs_end_to_end_on_the_tiny_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["eval", "athenabench", "--model", str(tiny_model_dir), "--data", str(FIXTURES)]
    args += ["--out", str(out), "--max-tokens", "8", "--batch-size", "8"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    got = {b["name"]: b for b in report["benchmarks"]}
    assert sorted(got) == sorted(ATHENABENCH)
    for name, bench in got.items():
        rows = len(CASES[name][0])
        for protocol in ("official", "strict"):
            assert bench["protocols"][protocol]["n"]["mean"] == rows, (name, protocol)
        # --max-tokens 8 bounds every completion
        assert 0 < bench["protocols"]["official"]["output_tokens_p95"]["mean"] <= 8
