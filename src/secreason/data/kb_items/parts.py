"""What every knowledge-base generator shares: trimmed prose, the split, fair options.

Three rules hold for every kind of item, so they are written once:

* knowledge-base prose is cut to its first sentences (a definition's opening says what
  the entry is; the rest is detail a prompt does not need);
* an item's split follows its entity (``synthesize.entity_split``), never the item;
* a multiple-choice item's distractors share about as many words with the question as
  the gold does, so the audit's "option overlap" baseline (``data.shortcuts``) stays at
  chance, and the gold's letter is drawn by the same shuffle that orders the options.
"""

from __future__ import annotations

import random
import re
from typing import Any

from secreason.data.phrases import overlap, quoted
from secreason.data.synthesize import SynthesisConfig, build_sample, entity_split
from secreason.tasks.base import Sample

LETTERS = "ABCD"
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def first_sentences(text: str, n: int = 2, limit: int = 400) -> str:
    """The first ``n`` sentences of ``text``, cut at a word to at most ``limit`` characters."""
    parts = _SENTENCE.split(" ".join(text.split()))
    out = " ".join(parts[:n])
    return out if len(out) <= limit else out[: limit - 3].rsplit(" ", 1)[0] + "..."


def item_split(entity: str, cfg: SynthesisConfig) -> str:
    """The split of every item about ``entity``."""
    return entity_split(entity, cfg.heldout_fraction, cfg.seed)


def _options(gold: str, distractors: list[str], rng: random.Random) -> tuple[dict[str, str], str]:
    opts = [gold, *distractors[:3]]
    rng.shuffle(opts)
    return dict(zip(LETTERS, opts, strict=False)), LETTERS[opts.index(gold)]


def pick_distractors(
    question: str,
    gold: str,
    pool: list[str],
    rng: random.Random,
    k: int = 3,
    tolerance: float = 0.1,
) -> list[str] | None:
    """``k`` distractors whose word overlap with the question is closest to the gold's.

    Options that share words with the question are the cue a no-model baseline reads
    (the audit's "option overlap"): distractors as close to the question as the gold
    leave that cue at chance. None when the gold is quoted in the question and no
    distractor is, or when the pool has no ``k`` options within ``tolerance`` of the gold.
    """
    pool = sorted(set(pool) - {gold})
    if len(pool) < k:
        return None
    if quoted(gold, question) and not any(quoted(d, question) for d in pool):
        return None
    target = overlap(gold, question)
    rng.shuffle(pool)
    pool.sort(key=lambda d: abs(overlap(d, question) - target))
    if abs(overlap(pool[k - 1], question) - target) > tolerance:
        return None
    return pool[:k]


def kb_sample(
    task: str,
    cfg: SynthesisConfig,
    *,
    reference: str,
    meta: dict[str, Any],
    entity: str,
    provenance: str,
) -> Sample:
    """``build_sample`` with the split drawn from ``entity`` under ``cfg``."""
    return build_sample(
        task,
        reference=reference,
        meta=meta,
        entity=entity,
        split=item_split(entity, cfg),
        provenance=provenance,
    )


def mcq_sample(
    question: str,
    gold: str,
    distractors: list[str],
    facts: list[str],
    rng: random.Random,
    *,
    entity: str,
    cfg: SynthesisConfig,
    provenance: str,
    extra: dict[str, Any] | None = None,
) -> Sample:
    """An ``mcq`` item: the gold among shuffled distractors, its letter as a last fact."""
    options, letter = _options(gold, distractors, rng)
    facts = [*facts, f"'{gold}' is option {letter}."]
    meta = {"question": question, "options": options, "facts": facts, **(extra or {})}
    return kb_sample("mcq", cfg, reference=letter, meta=meta, entity=entity, provenance=provenance)
