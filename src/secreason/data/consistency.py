"""One gold answer per question, and no question on both sides of the train/held-out line.

Generators that walk a knowledge base meet the same text more than once: ATT&CK files
one procedure under several techniques, two groups share a sentence. Left alone, the
same prompt carries different gold answers (the complete answer then earns partial
reward) and can land in training and in held-out at once (held-out then measures
memory). This step groups items by *normalised prompt* (lower case, punctuation and
spacing ignored, the same key exact dedup uses) and per group:

* several golds: for set-valued tasks (``ate``) the gold becomes the union and the
  facts are merged; for the others the group is dropped (no single answer is right);
* several splits: held-out wins, the training copies are dropped;
* then one item per group remains.

Every decision is counted for the data card.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from secreason.data.dedup import DedupConfig, exact_key, near_pairs
from secreason.data.synthesize import build_sample
from secreason.tasks.base import Sample

SET_TASKS = frozenset({"ate"})
_BUILT = ("entity", "split", "provenance")


@dataclass
class ConsistencyReport:
    n_in: int = 0
    n_out: int = 0
    conflicting_prompts: int = 0
    resolved_by_union: int = 0
    dropped_conflicts: int = 0
    cross_split_dropped: int = 0
    repeats_merged: int = 0
    per_task: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def prompt_key(sample: Sample) -> tuple[str, str]:
    text = "\n".join(m["content"] for m in sample.messages if m["role"] != "assistant")
    return sample.task, exact_key(text)


def _union(group: list[Sample]) -> Sample:
    from secreason.tasks.attack import technique_set

    ids: set[str] = set()
    facts: dict[str, None] = {}
    for s in group:
        ids |= technique_set(s.reference)
        facts.update(dict.fromkeys(str(f) for f in s.meta.get("facts") or []))
    first = group[0]
    meta = {k: v for k, v in first.meta.items() if k not in _BUILT}
    if facts:
        meta["facts"] = list(facts)
    return build_sample(
        first.task,
        reference=", ".join(sorted(ids)),
        meta=meta,
        entity=str(first.meta.get("entity", "")),
        split=str(first.meta.get("split", "train")),
        provenance=str(first.meta.get("provenance", "")) + " (gold: union over repeats)",
    )


def one_gold_per_prompt(samples: Sequence[Sample]) -> tuple[list[Sample], ConsistencyReport]:
    """Resolve conflicting golds and cross-split repeats; keep one item per prompt."""
    report = ConsistencyReport(n_in=len(samples))
    groups: dict[tuple[str, str], list[Sample]] = {}
    for s in samples:
        groups.setdefault(prompt_key(s), []).append(s)
    out: list[Sample] = []
    for (task, _), group in groups.items():
        counts = report.per_task.setdefault(task, {"conflicts": 0, "dropped": 0, "unioned": 0})
        splits = {str(s.meta.get("split", "train")) for s in group}
        if "heldout" in splits and len(splits) > 1:
            kept = [s for s in group if s.meta.get("split") == "heldout"]
            report.cross_split_dropped += len(group) - len(kept)
            group = kept
        if len({s.reference for s in group}) > 1:
            report.conflicting_prompts += 1
            counts["conflicts"] += 1
            if task not in SET_TASKS:
                report.dropped_conflicts += len(group)
                counts["dropped"] += len(group)
                continue
            report.resolved_by_union += 1
            counts["unioned"] += 1
            group = [_union(group)]
        report.repeats_merged += len(group) - 1
        out.append(group[0])
    report.n_out = len(out)
    return out, report


def cross_split_near_duplicates(
    train_texts: Sequence[str], heldout_texts: Sequence[str], config: DedupConfig
) -> dict[str, Any]:
    """How many held-out items have a MinHash near duplicate (any gold) in training."""
    pairs = near_pairs([*train_texts, *heldout_texts], config)
    n = len(train_texts)
    held = {max(x, y) - n for x, y in pairs if min(x, y) < n <= max(x, y)}
    return {
        "heldout_with_train_near_duplicate": len(held),
        "heldout": len(heldout_texts),
        "threshold": config.threshold,
    }


def split_leaks(splits: Mapping[str, Sequence[Sample]]) -> list[dict[str, Any]]:
    """Prompts (normalised) that carry two golds, or sit in held-out and in a training
    split: what ``one_gold_per_prompt`` removes, checked again on a finished run."""
    groups: dict[tuple[str, str], list[tuple[str, Sample]]] = {}
    for split, items in splits.items():
        for s in items:
            groups.setdefault(prompt_key(s), []).append((split, s))
    leaks = []
    for (task, _), group in groups.items():
        golds = {s.reference for _, s in group}
        names = {split for split, _ in group}
        if len(golds) > 1 or ("heldout" in names and len(names) > 1):
            kind = "one prompt, two golds" if len(golds) > 1 else "held-out prompt in training"
            ids = sorted({f"{split}:{s.id}" for split, s in group})
            leaks.append({"task": task, "kind": kind, "ids": ids})
    return leaks
