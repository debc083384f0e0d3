"""CyberMetric: loader, the evaluator's ANSWER rule, re-ask, accuracy by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from secreason.evals import ItemResult, get_benchmark
from secreason.evals.cybermetric import cybermetric_official

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks" / "cybermetric"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ANSWER: B", "B"),
        ("answer: c", "C"),
        ("Answer B", "B"),  # the colon is optional
        ("ANSWER:\n  D", "D"),  # \s* spans newlines
        ("First ANSWER: A, then ANSWER: B", "A"),  # the FIRST match wins
        ("ANSWER: E", None),  # only A-D
        ("The answer is B", None),  # 'is' is not whitespace
        ("", None),
        ("   \n ", None),
    ],
    ids=[
        "upper",
        "lower",
        "no-colon",
        "newline",
        "first-match",
        "letter-e",
        "answer-is",
        "empty",
        "blank",
    ],
)
def test_official_rule(text: str, expected: str | None) -> None:
    assert cybermetric_official(text).value == expected


def test_fixture_loads_with_inline_options() -> None:
    bench = get_benchmark("cybermetric-80")
    samples = bench.load(FIXTURES)
    assert [s.id for s in samples] == ["cybermetric-80-0", "cybermetric-80-1", "cybermetric-80-2"]
    assert [s.reference for s in samples] == ["B", "A", "C"]
    prompt = samples[0].messages[-1]["content"]
    assert "Options: A) 1, B) 8080, C) 2, D) 3" in prompt
    assert "ANSWER: X" in prompt


@pytest.mark.parametrize("size", [80, 500, 2000])
def test_real_files(shared_benchmarks: Path, size: int) -> None:
    samples = get_benchmark(f"cybermetric-{size}").load(shared_benchmarks / "cybermetric")
    assert len(samples) == size
    assert {s.reference for s in samples} <= {"A", "B", "C", "D"}


def test_unknown_size_is_refused() -> None:
    with pytest.raises(TypeError, match="cybermetric"):
        get_benchmark("cybermetric-80", size=81)


def test_accuracy_official_and_strict() -> None:
    bench = get_benchmark("cybermetric-80")
    samples = bench.load(FIXTURES)
    official = [
        "<think>alt http</think>ANSWER: B",  # correct
        "<think>ANSWER: A</think>I pick the banana. ANSWER: b",  # answer region: B, wrong
        "<think>hash</think>No idea.",  # invalid -> wrong
    ]
    results = [
        ItemResult(s.id, "official", bench.judge(s, c, "official"))
        for s, c in zip(samples, official, strict=True)
    ]
    got = bench.metrics(samples, results, "official")
    assert got["accuracy"] == pytest.approx(1 / 3)
    assert got["invalid_rate"] == pytest.approx(1 / 3)
    strict = ["<think>x</think>\nANSWER: B", "<think>x</think>\nAnswer: A", "ANSWER: C\nthanks"]
    results = [
        ItemResult(s.id, "strict", bench.judge(s, c, "strict"))
        for s, c in zip(samples, strict, strict=True)
    ]
    got = bench.metrics(samples, results, "strict")
    assert got["accuracy"] == pytest.approx(2 / 3)  # text after the answer line: invalid


def test_reask_only_official_and_unreadable() -> None:
    sample = get_benchmark("cybermetric-80").load(FIXTURES)[0]
    off = get_benchmark("cybermetric-80")
    on = get_benchmark("cybermetric-80", reask=5)
    assert on.reask == 5 and off.reask == 0  # the attempt count the runner uses
    bad, good = "<think>hmm</think>Port eight thousand eighty.", "ANSWER: B"
    assert on.reask_messages(sample, good, "official") is None
    assert on.reask_messages(sample, "<think>ANSWER: B", "official") is not None  # unclosed
    assert on.reask_messages(sample, bad, "strict") is None
    assert on.reask_messages(sample, bad, "official") == on.messages(sample, "official")
