"""One-pass multiple-choice measures: format class, lenient/proper accuracy, per-letter F1.

Fixture golds (athenabench mcq): A, C, B, D. Every expected value is counted by hand.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from secreason.evals import ItemResult, get_benchmark
from secreason.tasks.base import Protocol

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks"

PLAIN = [
    "I weighed the options.\nAnswer: A",  # proper, A (right)
    "The answer is C.\nAnswer: **C**",  # proper, C (right)
    "Answer: B\nThis is a guess.",  # improper: the authors' reader finds 'a' -> A (wrong)
    "Option D fits.\nAnswer:",  # improper: D from the line above (right)
]


def measures(completions: list[str], protocol: Protocol, name: str = "athenabench-mcq"):
    bench = get_benchmark(name)
    folder = FIXTURES / ("athenabench" if name.startswith("athena") else "ctibench")
    samples = bench.load(folder)[: len(completions)]
    results = [
        ItemResult(s.id, protocol, bench.judge(s, c, protocol))
        for s, c in zip(samples, completions, strict=True)
    ]
    return bench.metrics(samples, results, protocol)


@pytest.mark.parametrize("protocol", ["official", "strict"])
def test_format_classes_and_lenient_accuracy_do_not_depend_on_the_protocol(
    protocol: Protocol,
) -> None:
    got = measures(PLAIN, protocol)
    assert (got["format_proper"], got["format_improper"], got["format_invalid"]) == (0.5, 0.5, 0)
    assert got["accuracy_proper"] == pytest.approx(2 / 4)
    assert got["accuracy_lenient"] == pytest.approx(3 / 4)


def test_per_letter_f1_and_confusion_follow_the_protocols_letter() -> None:
    official = measures(PLAIN, "official")
    # predicted A, C, A, D for gold A, C, B, D: A has P 1/2, R 1 -> F1 2/3; B none.
    assert official["f1/A"] == pytest.approx(2 / 3)
    assert (official["f1/B"], official["f1/C"], official["f1/D"]) == (0.0, 1.0, 1.0)
    assert official["macro_f1"] == pytest.approx((2 / 3 + 0 + 1 + 1) / 4)
    assert official["confusion/B>A"] == 1 and "confusion/B>B" not in official
    assert official["source_type/toy"] == pytest.approx(3 / 4)
    strict = measures(PLAIN, "strict")
    # strict reads A, C and nothing twice: B and D go to the '-' column.
    assert strict["confusion/B>-"] == 1 and strict["confusion/D>-"] == 1
    assert strict["macro_f1"] == pytest.approx(0.5)


def test_reasoning_forms() -> None:
    got = measures(
        [
            "<think>x</think>\nAnswer: A",  # proper
            "<think>never closed ... Answer: C",  # no answer region: invalid
            "<think>a</think>\nAnswer: B\n<think>b</think>\nAnswer: B",  # two blocks: improper
            "D",  # only the lenient reader: improper
        ],
        "strict",
    )
    assert (got["format_proper"], got["format_improper"], got["format_invalid"]) == (
        0.25,
        0.5,
        0.25,
    )
    assert got["accuracy_lenient"] == pytest.approx(3 / 4)
    assert got["accuracy_proper"] == pytest.approx(1 / 4)


def test_ctibench_mcq_carries_them_too() -> None:
    # CTIBench fixture golds B, C, D, A; its official rule reads the last character.
    got = measures(["Answer: B", "C", "no idea"], "official", "ctibench-mcq")
    assert got["format_proper"] == pytest.approx(1 / 3)
    assert got["format_improper"] == pytest.approx(1 / 3)
    assert got["accuracy_lenient"] == pytest.approx(2 / 3)
    assert got["confusion/D>-"] == 1


def test_every_single_answer_choice_benchmark_carries_them() -> None:
    bench = get_benchmark("mmlu-security")
    samples = bench.load(FIXTURES / "mmlu_computer_security")[:2]
    completions = [f"Answer: {samples[0].reference}", "nothing to say"]
    results = [
        ItemResult(s.id, "strict", bench.judge(s, c, "strict"))
        for s, c in zip(samples, completions, strict=True)
    ]
    got = bench.metrics(samples, results, "strict")
    assert (got["format_proper"], got["format_invalid"], got["accuracy_lenient"]) == (0.5, 0.5, 0.5)
