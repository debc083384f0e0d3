"""De-duplicated scoring (``--dedup``): the published set and its unique items side by side.

Why: some benchmark files repeat items. CTIBench RCM has 1000 rows, 12 of which repeat
an earlier description: 10 with the same CWE, while one description appears
four times with CWE-120, -121, -121 and -122. CTIBench VSP repeats 12 descriptions, all
with the same vector. A repeated item weighs twice in the published number; a repeated
item with different golds cannot be answered right on every row. Published numbers are
computed over the full file, so the full set stays the headline and the de-duplicated
set is reported beside it, never instead of it.

Rules (one place, so the numbers can be checked by hand):

* Two rows are duplicates when their prompts are equal after normalisation: the last
  user turn of the item (the row's own prompt, few-shot examples left out), case-folded,
  runs of whitespace collapsed to one space. Shuffled copies of an item
  (``--shuffle-options``) are grouped by their origin item, keyed by its first order.
* A group whose rows all share one gold keeps its first row (file order); the others are
  ``duplicates``.
* A group whose rows disagree on the gold (``conflicting``) is left out of the
  de-duplicated set entirely: no single answer is right on all its rows, and keeping any
  one row would pick a gold the data does not agree on. Its rows are counted in
  ``conflicting_rows``; duplicates inside it that share a gold are also ``duplicates``.

On CTIBench RCM that keeps 987 of 1000 items (988 distinct descriptions, less the one
conflicting group); on VSP 988 of 1000.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from secreason.evals.base import Benchmark, ItemResult
from secreason.tasks.base import Protocol, Sample

PREFIX = "dedup/"


def normalise(text: str) -> str:
    """Case-folded text with every run of whitespace collapsed to one space."""
    return " ".join(str(text).casefold().split())


def prompt_key(sample: Sample) -> str:
    """The normalised last user turn: the item's own prompt."""
    users = [m for m in sample.messages if m.get("role") == "user"]
    if not users:
        raise ValueError(f"{sample.id}: no user turn to de-duplicate on")
    return normalise(str(users[-1].get("content") or ""))


@dataclass(frozen=True)
class DedupPlan:
    """Which samples the de-duplicated set keeps, and why the others left."""

    #: ids of the samples kept (every shuffled copy of a kept item)
    keep: frozenset[str]
    #: items before de-duplication and kept after it (shuffled copies counted once)
    items: int
    unique: int
    duplicates: int
    conflicting_groups: int
    conflicting_rows: int


def plan(samples: Sequence[Sample]) -> DedupPlan:
    """Group items by prompt and gold; keep the first of each consistent group."""
    items: dict[str, list[Sample]] = {}
    for sample in samples:  # shuffled copies share the origin item id
        items.setdefault(str(sample.meta.get("item", sample.id)), []).append(sample)
    groups: dict[str, list[tuple[str, str]]] = {}
    for item, copies in items.items():
        first = next((c for c in copies if c.meta.get("permutation", 0) == 0), copies[0])
        gold = normalise(str(first.reference))
        groups.setdefault(prompt_key(first), []).append((item, gold))
    keep: set[str] = set()
    duplicates = conflicting_groups = conflicting_rows = 0
    for members in groups.values():
        golds = [gold for _, gold in members]
        duplicates += len(golds) - len(set(golds))
        if len(set(golds)) > 1:
            conflicting_groups += 1
            conflicting_rows += len(members)
            continue
        keep.add(members[0][0])
    kept_ids = frozenset(s.id for s in samples if str(s.meta.get("item", s.id)) in keep)
    return DedupPlan(
        keep=kept_ids,
        items=len(items),
        unique=len(keep),
        duplicates=duplicates,
        conflicting_groups=conflicting_groups,
        conflicting_rows=conflicting_rows,
    )


def dedup_metrics(
    benchmark: Benchmark,
    samples: Sequence[Sample],
    results: Sequence[ItemResult],
    protocol: Protocol,
) -> dict[str, float]:
    """The benchmark's own metrics over the de-duplicated set, keys prefixed ``dedup/``.

    Also ``dedup/n`` (samples kept), ``dedup/duplicates``, ``dedup/conflicting_groups``
    and ``dedup/conflicting_rows`` (see the module docstring for the rules).
    """
    chosen = plan(samples)
    pairs = [(s, r) for s, r in zip(samples, results, strict=True) if s.id in chosen.keep]
    kept_samples = [s for s, _ in pairs]
    kept_results = [r for _, r in pairs]
    metrics = dict(benchmark.metrics(kept_samples, kept_results, protocol))
    n = len(kept_results)
    metrics["n"] = float(n)
    metrics.setdefault(
        "invalid_rate",
        sum(r.judgement.score.status == "invalid" for r in kept_results) / (n or 1),
    )
    metrics["duplicates"] = float(chosen.duplicates)
    metrics["conflicting_groups"] = float(chosen.conflicting_groups)
    metrics["conflicting_rows"] = float(chosen.conflicting_rows)
    return {PREFIX + key: float(value) for key, value in metrics.items()}
