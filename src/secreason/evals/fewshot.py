"""Few-shot prompting: show ``n`` solved items before the question, never the item itself.

Why: base and lightly tuned models often answer in the right format only after seeing
it, and published MCQ numbers are frequently few-shot. Examples come from the
benchmark's dev split when the caller passes one (``pool``), otherwise from the
benchmark's own rows other than the item, drawn per item with a seeded generator (the
same seed gives the same examples, whatever ``--limit`` keeps). Each example is a user
turn holding the example's own prompt and an assistant turn ``Answer: <gold>``, placed
after the system prompt and before the item's user turn, so the conversation and the
generation cache key both show exactly what the model saw.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

from secreason.tasks.base import Message, Sample


def _question(sample: Sample) -> str:
    users = [m["content"] for m in sample.messages if m["role"] == "user"]
    if not users:
        raise ValueError(f"{sample.id}: no user turn to use as a few-shot example")
    return users[-1]


def with_fewshot(
    samples: Sequence[Sample], n: int, *, seed: int = 0, pool: Sequence[Sample] | None = None
) -> list[Sample]:
    """``samples`` with ``n`` solved examples before each question (``n`` = 0: unchanged)."""
    if n < 0:
        raise ValueError(f"fewshot must be 0 or more, got {n}")
    if n == 0:
        return list(samples)
    source = list(pool) if pool is not None else list(samples)
    out = []
    for index, sample in enumerate(samples):
        candidates = [s for s in source if s.id != sample.id and s.messages != sample.messages]
        if len(candidates) < n:
            raise ValueError(
                f"fewshot={n}: only {len(candidates)} other items to draw examples from"
            )
        rng = random.Random(f"{seed}:{sample.meta.get('index', index)}")
        examples = rng.sample(candidates, n)
        shots: list[Message] = []
        for example in examples:
            shots.append({"role": "user", "content": _question(example)})
            shots.append({"role": "assistant", "content": f"Answer: {example.reference}"})
        head = [dict(m) for m in sample.messages if m["role"] == "system"]
        rest = [dict(m) for m in sample.messages if m["role"] != "system"]
        meta = {**sample.meta, "fewshot": [e.id for e in examples]}
        out.append(replace(sample, messages=[*head, *shots, *rest], meta=meta))
    return out
