"""Output-token and reasoning/answer length statistics, counted by hand."""

from __future__ import annotations

import pytest

from secreason.backends.base import Generation
from secreason.evals.base import ItemResult
from secreason.evals.length_stats import length_stats, percentile
from secreason.tasks import get_task


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 50, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),  # nearest rank: ceil(0.5 * 4) = 2nd
        ([1.0, 2.0, 3.0, 4.0], 95, 4.0),
        ([4.0, 1.0, 3.0, 2.0], 75, 3.0),  # order does not matter
        ([1.0, 2.0], 0, 1.0),
    ],
)
def test_percentile(values: list[float], q: int, expected: float) -> None:
    assert percentile(values, q) == expected


def test_length_stats() -> None:
    task = get_task("mcq")
    texts = ["<think>one two three</think>\nAnswer: A", "<think>a b</think>\nThe answer is B now"]
    results = [ItemResult(str(i), "strict", task.judge(t, "A")) for i, t in enumerate(texts)]
    generations = {
        "0": Generation(texts[0], completion_tokens=10),
        "1": Generation(texts[1], completion_tokens=30),
        "2": Generation("", completion_tokens=0),  # no count reported: left out
    }
    got = length_stats(results, generations)
    assert got["output_tokens_mean"] == 20.0
    assert (got["output_tokens_p50"], got["output_tokens_p95"]) == (10.0, 30.0)
    assert got["reasoning_words_mean"] == 2.5 and got["reasoning_words_p95"] == 3.0
    assert got["answer_words_mean"] == 3.5 and got["answer_words_p95"] == 5.0
    assert "output_tokens_mean" not in length_stats(results, {"0": Generation("x")})
