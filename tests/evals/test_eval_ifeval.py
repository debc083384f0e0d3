"""IFEval through if-verifiable's checkers, on the answer region only; metrics by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secreason.evals import ItemResult, get_benchmark

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks" / "ifeval"
# Row 0: english_lowercase + no_comma; row 1: keywords wind and string.


def run(completions: list[str]) -> dict[str, float]:
    bench = get_benchmark("ifeval")
    samples = bench.load(FIXTURES)
    results = [
        ItemResult(s.id, "official", bench.judge(s, c, "official"))
        for s, c in zip(samples, completions, strict=True)
    ]
    return bench.metrics(samples, results, "official")


def test_loader() -> None:
    samples = get_benchmark("ifeval").load(FIXTURES)
    assert [s.id for s in samples] == ["ifeval-0", "ifeval-1"]
    assert samples[1].messages[0]["content"].startswith("Write about a toy kite")
    spec = json.loads(samples[1].reference)
    assert spec["instruction_id_list"] == ["keywords:existence"]
    assert spec["kwargs"] == [{"keywords": ["wind", "string"]}]  # None-valued keys dropped


def test_strict_and_loose_prompt_and_instruction_level() -> None:
    got = run(
        [
            # Reasoning full of capitals and commas is not checked; the answer's first
            # line breaks 'lowercase' strictly, loose drops it and passes.
            "<think>Capitals, Commas, Everywhere.</think>\n"
            "Sure!\nthe small boat drifts on the calm lake",
            "<think>Plan: Mention Both.</think>The wind pulls the string of the kite.",
        ]
    )
    assert got["prompt_strict"] == pytest.approx(1 / 2)
    assert got["prompt_loose"] == pytest.approx(2 / 2)
    assert got["inst_strict"] == pytest.approx(2 / 3)
    assert got["inst_loose"] == pytest.approx(3 / 3)


def test_unclosed_reasoning_fails_every_instruction() -> None:
    got = run(
        [
            "<think>the small boat drifts on the calm lake",  # never closed: empty answer
            "<think>x</think>A kite needs wind.",  # 'string' missing
        ]
    )
    assert got["inst_loose"] == 0.0
    assert got["prompt_loose"] == 0.0
    assert got["invalid_rate"] == pytest.approx(1 / 2)
