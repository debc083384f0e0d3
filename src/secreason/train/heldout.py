"""Scoring a trained model folder on held-out items, for the demo and its benchmark.

Generation goes through the project's ``TransformersBackend`` (the same engine the
evaluation harness uses, batched, left-padded, prompts grouped by length); every
completion is read by the task's own
``judge``, the path that also computes RL rewards, so "reward went up" and "score went
up" mean the same thing.

The comparison that matters is paired: the same items under two models. The interval
is a paired bootstrap over items of the difference of per-item mean scores.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from secreason.tasks import get_task
from secreason.tasks.base import Sample


@dataclass(frozen=True)
class Decoding:
    """How completions are drawn: greedy (``samples=1, temperature=0``) or sampled."""

    name: str
    temperature: float
    top_p: float
    samples: int
    max_new_tokens: int = 192
    seed: int = 0


@dataclass
class Judged:
    item: str
    task: str
    decoding: str
    sample: int
    score: float
    format_ok: bool
    reasoning_words: int
    status: str
    text: str


def generate(
    model_dir: str | Path, items: Sequence[Sample], decoding: Decoding, batch_size: int = 64
) -> tuple[list[list[str]], bool]:
    """``decoding.samples`` completions per item, in item order, and whether the model's
    template prefills the reasoning (so the contract reads them with ``prefilled``)."""
    from secreason.backends.base import SamplingParams
    from secreason.backends.transformers import TransformersBackend

    backend = TransformersBackend(str(model_dir), device="cpu", batch_size=batch_size)
    try:
        params = SamplingParams(
            temperature=decoding.temperature,
            top_p=decoding.top_p,
            max_tokens=decoding.max_new_tokens,
            seed=decoding.seed,
        )
        k = decoding.samples
        flat = backend.generate([s.messages for s in items for _ in range(k)], params)
        texts = [g.full_text() for g in flat]
        return [texts[i * k : (i + 1) * k] for i in range(len(items))], backend.prefilled
    finally:
        backend.close()


def judge_all(
    items: Sequence[Sample], completions: Sequence[Sequence[str]], decoding: str, prefilled: bool
) -> list[Judged]:
    tasks: dict[str, Any] = {}
    out: list[Judged] = []
    for item, texts in zip(items, completions, strict=True):
        task = tasks.setdefault(item.task, get_task(item.task))
        for k, text in enumerate(texts):
            j = task.judge(text, item.reference, prefilled=prefilled)
            out.append(
                Judged(
                    item=item.id,
                    task=item.task,
                    decoding=decoding,
                    sample=k,
                    score=j.score.value,
                    format_ok=j.format.ok,
                    reasoning_words=j.format.reasoning_words,
                    status=j.score.status,
                    text=text,
                )
            )
    return out


def evaluate_model(
    model_dir: str | Path,
    items: Sequence[Sample],
    decodings: Sequence[Decoding],
    cache: str | Path,
) -> list[Judged]:
    """Generate and judge, cached in a JSONL file so a rerun skips finished decodings.

    A decoding counts as cached only with every row (items x samples, for these items):
    rows a kill left half written are dropped and that decoding is run again."""
    cache = Path(cache)
    done: dict[str, list[Judged]] = {}
    if cache.is_file():
        for line in cache.read_text(encoding="utf-8").splitlines():
            try:
                row = Judged(**json.loads(line))
            except (ValueError, TypeError):
                continue  # a line cut short by a kill
            done.setdefault(row.decoding, []).append(row)
        ids = {s.id for s in items}
        for decoding in decodings:
            rows = done.get(decoding.name, [])
            whole = {(r.item, r.sample) for r in rows} == {
                (i, k) for i in ids for k in range(decoding.samples)
            }
            if rows and not (whole and len(rows) == len(items) * decoding.samples):
                del done[decoding.name]
        kept = "".join(json.dumps(asdict(r)) + "\n" for rows in done.values() for r in rows)
        tmp = cache.with_name(f".{cache.name}.tmp")
        tmp.write_text(kept, encoding="utf-8")
        tmp.replace(cache)
    results: list[Judged] = []
    for decoding in decodings:
        if decoding.name in done:
            results.extend(done[decoding.name])
            continue
        completions, prefilled = generate(model_dir, items, decoding)
        rows = judge_all(items, completions, decoding.name, prefilled)
        with cache.open("a", encoding="utf-8") as fh:
            fh.write("".join(json.dumps(asdict(row)) + "\n" for row in rows))
        results.extend(rows)
    return results


def per_item(rows: Sequence[Judged], decoding: str) -> dict[str, float]:
    """Mean score per item under one decoding."""
    sums: dict[str, list[float]] = {}
    for r in rows:
        if r.decoding == decoding:
            sums.setdefault(r.item, []).append(r.score)
    return {k: sum(v) / len(v) for k, v in sums.items()}


@dataclass(frozen=True)
class PairedGain:
    n: int
    mean_a: float
    mean_b: float
    gain: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        """The gain is above the interval: its lower bound is above zero."""
        return self.low > 0


def paired_bootstrap(
    a: dict[str, float], b: dict[str, float], *, resamples: int = 2000, seed: int = 0
) -> PairedGain:
    """95 % interval of mean(b - a) over the items both have, resampling items."""
    from secreason.evals.bootstrap import paired_interval

    keys = sorted(set(a) & set(b))
    n = len(keys)
    if n == 0:
        return PairedGain(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    left, right = [a[k] for k in keys], [b[k] for k in keys]
    interval = paired_interval(left, right, resamples=resamples, seed=seed)
    assert interval is not None  # n > 0
    return PairedGain(n, sum(left) / n, sum(right) / n, interval.value, interval.low, interval.high)
