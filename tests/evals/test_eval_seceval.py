"""SecEval: letter-set parse, the authors' string compare, per-topic accuracy, subsets."""

from __future__ import annotations

from pathlib import Path

import pytest

from secreason.evals import ItemResult, get_benchmark
from secreason.evals.base import Benchmark
from secreason.evals.seceval import seceval_official
from secreason.tasks.base import Protocol, Sample

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks" / "seceval"


def metrics(
    bench: Benchmark, samples: list[Sample], completions: list[str], protocol: Protocol
) -> dict[str, float]:
    results = [
        ItemResult(s.id, protocol, bench.judge(s, c, protocol))
        for s, c in zip(samples, completions, strict=True)
    ]
    return bench.metrics(samples, results, protocol)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answer: B", "B"),
        ("Answer: CA", "AC"),
        ("A, B and D", "ABD"),
        ("The Best choice: D", "BD"),  # every capital A-D counts, as in the original
        ("answer: a", ""),  # lower case letters are not read
        ("", ""),
    ],
    ids=["single", "unsorted", "listed", "capital-in-word", "lowercase", "empty"],
)
def test_official_parse(text: str, expected: str) -> None:
    assert seceval_official(text).value == expected


def test_fixture_loads_choices_and_topics() -> None:
    samples = get_benchmark("seceval").load(FIXTURES)
    assert [s.reference for s in samples] == ["B", "AC", "AA", ""]
    assert samples[2].meta["options"]["A"] == "Toy x: y"  # only the 'A: ' prefix is cut
    assert samples[1].meta["topics"] == ["SystemSecurity", "WebSecurity"]
    last = samples[0].messages[-1]["content"]
    assert "\n" not in last and last.startswith("Question: Which toy setting is safe? Pick one.")
    assert [m["role"] for m in samples[0].messages] == ["system", "user", "assistant", "user"]


def test_official_overall_and_per_topic() -> None:
    bench = get_benchmark("seceval")
    samples = bench.load(FIXTURES)
    completions = [
        "<think>maybe A or C</think>\nAnswer: B",  # reasoning letters ignored: correct
        "<think>lock, audit</think>Answer: CA",  # AC: correct
        "<think>a</think>Answer: A",  # gold 'AA' never matches a set: wrong
        "<think>none</think>none of them",  # no letter == empty gold: correct
    ]
    got = metrics(bench, samples, completions, "official")
    assert got["accuracy"] == pytest.approx(3 / 4)
    assert got["topics/WebSecurity"] == pytest.approx(1.0)
    assert got["topics/SystemSecurity"] == pytest.approx(1.0)
    assert got["topics/PenTest"] == pytest.approx(0.5)


def test_strict_exact_set_match() -> None:
    bench = get_benchmark("seceval")
    samples = bench.load(FIXTURES)
    completions = [
        "<think>x</think>\nAnswer: B",
        "<think>x</think>\nAnswer: A, C",
        "<think>x</think>\nAnswer: A",  # strict compares sets: {A} == set('AA')
        "<think>x</think>\nAnswer: none",  # invalid
    ]
    got = metrics(bench, samples, completions, "strict")
    assert got["accuracy"] == pytest.approx(3 / 4)
    assert got["invalid_rate"] == pytest.approx(1 / 4)


def test_single_subset() -> None:
    samples = get_benchmark("seceval-single").load(FIXTURES)
    assert [s.id for s in samples] == ["seceval-single-0"]


def test_real_file_counts(shared_benchmarks: Path) -> None:
    assert len(get_benchmark("seceval").load(shared_benchmarks / "seceval")) == 2189
    assert len(get_benchmark("seceval-single").load(shared_benchmarks / "seceval")) == 1255
