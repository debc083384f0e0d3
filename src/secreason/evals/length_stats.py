"""How long the model talked: output-token and reasoning/answer length statistics per run.

Why: two models with the same accuracy can differ tenfold in cost, and a reasoning model
that hits the token limit loses items silently. From what a run already has (the
backends' completion-token counts and the reasoning contract's split), this adds
``output_tokens_mean`` / ``_p50`` / ``_p95`` (completions with a known count only;
absent when no backend reported one, e.g. scored predictions) and, for every item,
``reasoning_words_mean`` / ``_p95`` and ``answer_words_mean`` / ``_p95`` (words, since
the split is made on text). Percentiles are nearest-rank.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from secreason.evals.base import ItemResult


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def _stats(prefix: str, values: Sequence[float], quantiles: Sequence[int]) -> dict[str, float]:
    if not values:
        return {}
    out = {f"{prefix}_mean": sum(values) / len(values)}
    out.update({f"{prefix}_p{q}": percentile(values, q) for q in quantiles})
    return out


def length_stats(results: Sequence[ItemResult], generations: Mapping[str, Any]) -> dict[str, float]:
    """The statistics above; ``generations`` maps a sample id to its ``Generation``."""
    tokens = [
        float(g.completion_tokens)
        for g in generations.values()
        if int(getattr(g, "completion_tokens", 0) or 0) > 0
    ]
    out = _stats("output_tokens", tokens, (50, 95))
    reasoning = [float(len(r.judgement.split.reasoning.split())) for r in results]
    answer = [float(len(r.judgement.split.answer.split())) for r in results]
    out.update(_stats("reasoning_words", reasoning, (95,)))
    out.update(_stats("answer_words", answer, (95,)))
    return out
