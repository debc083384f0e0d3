"""MMLU computer_security: integer answers to letters, accuracy under both protocols."""

from __future__ import annotations

from pathlib import Path

import pytest

from secreason.evals import ItemResult, get_benchmark

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks"


def test_fixture_answers_become_letters() -> None:
    samples = get_benchmark("mmlu-security").load(FIXTURES / "mmlu_computer_security")
    assert [s.reference for s in samples] == ["B", "A", "C"]
    assert [s.id for s in samples] == [f"mmlu-security-{i}" for i in range(3)]
    assert "B) Toy scanner" in samples[0].messages[-1]["content"]


def test_bad_answer_index_names_the_row(tmp_path: Path) -> None:
    bad = tmp_path / "computer_security_test.csv"
    bad.write_text("question,choice0,choice1,choice2,choice3,answer\nq,a,b,c,d,7\n")
    with pytest.raises(ValueError, match="row 0: answer '7'"):
        get_benchmark("mmlu-security").load(tmp_path)


def test_real_file(shared_benchmarks: Path) -> None:
    samples = get_benchmark("mmlu-security").load(shared_benchmarks / "mmlu_computer_security")
    assert len(samples) == 100


def test_accuracy_official_and_strict() -> None:
    bench = get_benchmark("mmlu-security")
    samples = bench.load(FIXTURES / "mmlu_computer_security")
    completions = [
        "<think>scanner</think>Answer: B. It scans.",  # official: B; strict: B
        "<think>secret</think>Answer: A\nAnswer: B",  # official: conflict; strict: B
        "<think>flood</think>\nAnswer: C",
    ]
    for protocol, expected in (("official", 2 / 3), ("strict", 2 / 3)):
        results = [
            ItemResult(s.id, protocol, bench.judge(s, c, protocol))  # type: ignore[arg-type]
            for s, c in zip(samples, completions, strict=True)
        ]
        got = bench.metrics(samples, results, protocol)  # type: ignore[arg-type]
        assert got["accuracy"] == pytest.approx(expected), protocol
    pairs = list(zip(samples, completions, strict=True))
    official = [bench.judge(s, c, "official").score.status for s, c in pairs]
    strict = [bench.judge(s, c, "strict").score.status for s, c in pairs]
    assert official == ["correct", "invalid", "correct"]
    assert strict == ["correct", "incorrect", "correct"]
