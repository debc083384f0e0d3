"""SecBench: the English single-answer no-CJK subset, dedup, answer-statement rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from secreason.evals import ItemResult, get_benchmark
from secreason.evals.choice import answer_statement

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks" / "secbench"


def test_subset_keeps_english_single_answer_rows_without_cjk() -> None:
    samples = get_benchmark("secbench").load(FIXTURES)
    # row 1: label "AB"; row 2: Chinese; row 3: English label but CJK in the question
    assert [s.meta["index"] for s in samples] == [0, 4, 5]
    assert [s.id for s in samples] == ["secbench-0", "secbench-4", "secbench-5"]
    assert samples[1].reference == "D"  # " d " stripped and upper-cased
    assert samples[1].meta["options"]["E"] == "five"  # the five-option row keeps E
    assert "E) five" in samples[1].messages[-1]["content"]


def test_dedup_drops_the_repeated_question() -> None:
    samples = get_benchmark("secbench", dedup=True).load(FIXTURES)
    assert [s.meta["index"] for s in samples] == [0, 4]


def test_real_file_counts(shared_benchmarks: Path) -> None:
    assert len(get_benchmark("secbench").load(shared_benchmarks / "secbench")) == 595
    deduped = get_benchmark("secbench", dedup=True).load(shared_benchmarks / "secbench")
    assert len(deduped) < 595


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answer: B", "B"),
        ("I think... answer: (c) because", "C"),
        ("Answer: B\nTo restate, Answer: B.", "B"),
        ("Answer: A\nActually, Answer: C", None),  # conflicting statements
        ("The correct option is B", None),
        ("**Answer:** D", None),  # markup between "Answer:" and the letter is not read
    ],
    ids=["plain", "parenthesised", "repeated-agree", "conflict", "no-statement", "bold"],
)
def test_answer_statement(text: str, expected: str | None) -> None:
    assert answer_statement(text).value == expected


def test_accuracy_and_per_domain() -> None:
    bench = get_benchmark("secbench")
    samples = bench.load(FIXTURES)
    completions = [
        "<think>acl</think>\nAnswer: B",
        "<think>five</think>\nAnswer: E",
        "<think>again</think>\nAnswer: B",
    ]
    results = [
        ItemResult(s.id, "strict", bench.judge(s, c, "strict"))
        for s, c in zip(samples, completions, strict=True)
    ]
    got = bench.metrics(samples, results, "strict")
    assert got["accuracy"] == pytest.approx(2 / 3)
    assert got["domain/网络安全"] == pytest.approx(1.0)
    assert got["domain/云安全"] == pytest.approx(0.0)
