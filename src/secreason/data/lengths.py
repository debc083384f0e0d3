"""Token lengths of the exported rows, against the trainers' length limits.

A row longer than the SFT ``max_length`` is truncated (its answer line lost); an RL
prompt longer than the room the rollout leaves cannot be answered. The card reports
percentiles and how many rows exceed those limits, counted with the target model's
tokenizer when the recipe names one (a local folder or a cached hub name), else in
whitespace words, and says which.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class LengthConfig:
    #: tokenizer of the model to train (path or cached name); None counts words
    tokenizer: str | None = None
    #: the SFT recipe's max_length (recipes/foundation-sec-8b-reasoning/sft.yaml)
    sft_max_length: int = 16384
    #: room for an RL prompt: vllm_max_model_length - max_completion_length (8192 - 4096)
    rl_max_prompt_length: int = 4096


def counter(config: LengthConfig) -> tuple[Callable[[str], int], str]:
    """A length function and its unit."""
    if not config.tokenizer:
        return (lambda text: len(text.split())), (
            "whitespace words (no tokenizer named; a text has at least as many tokens as "
            "words for subword tokenizers, so 'over limit' is a lower bound)"
        )
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(config.tokenizer)
    return (lambda text: len(tok(text, add_special_tokens=False)["input_ids"])), (
        f"tokens ({config.tokenizer}, message texts without chat template)"
    )


def _percentile(values: list[int], q: float) -> int:
    return values[min(len(values) - 1, int(q * len(values)))]


def length_stats(
    splits: dict[str, tuple[Sequence[str], int]], config: LengthConfig
) -> dict[str, Any]:
    """Per split (texts, limit): n, p50, p90, p99, max and rows over the limit."""
    count, unit = counter(config)
    out: dict[str, Any] = {"unit": unit, "splits": {}}
    for name, (texts, limit) in splits.items():
        values = sorted(count(t) for t in texts)
        if not values:
            continue
        out["splits"][name] = {
            "n": len(values),
            "p50": _percentile(values, 0.5),
            "p90": _percentile(values, 0.9),
            "p99": _percentile(values, 0.99),
            "max": values[-1],
            "limit": limit,
            "over_limit": sum(v > limit for v in values),
        }
    return out
