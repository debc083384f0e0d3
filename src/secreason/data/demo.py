"""A small, regular world of cyber items that a ~1M-parameter model can learn from scratch.

The real knowledge bases speak a vocabulary of tens of thousands of words; a tiny model
with a ~1k BPE vocabulary trained in minutes cannot learn that. The demo instead draws
items from a few dozen facts (real CWE ids, ATT&CK technique ids and tactics, CVSS
metric values) phrased in plain, short sentences. Three choices make it a good test
bed for SFT followed by RL (see issue 4):

* Every class has several *phrasings* (cues). ``meta["teacher_seen"]`` is True only
  for items whose cues all lie in the first share of each class's phrasings: SFT on
  those alone teaches the format and part of the mapping, while RL prompts cover every
  phrasing, so RL has something left to learn.
* Held-out items differ by *entity* (a product, an actor) never seen in training,
  built from words training does see: hold out combinations, not vocabulary.
* Each item carries its grounding ``meta["facts"]``: short sentences from the world's
  facts that the template teacher turns into step-by-step reasoning.

The facts themselves (weaknesses, techniques, CVSS wordings, names) are in
``data.demo_world``; this module turns them into items.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from secreason.data.demo_world import (
    ACTOR_ANIMALS,
    ACTOR_WORDS,
    CVSS_METRICS,
    PRODUCTS,
    TACTICS,
    TECHNIQUES,
    VENDORS,
    WEAKNESSES,
)
from secreason.data.synthesize import build_sample, entity_split
from secreason.tasks.base import Sample

DEMO_TASKS = ("cwe", "cvss", "ate", "mcq")
PROVENANCE = "secreason demo world v1"
LETTERS = "ABCD"


def _seen(cue_index: int, n_cues: int, teacher_share: float) -> bool:
    """Is a phrasing among those the (template) teacher covers?"""
    return cue_index < max(1, round(n_cues * teacher_share))


def _product(rng: random.Random) -> tuple[str, str]:
    return rng.choice(VENDORS), rng.choice(PRODUCTS)


def _actor(rng: random.Random) -> str:
    return f"{rng.choice(ACTOR_WORDS)} {rng.choice(ACTOR_ANIMALS)}"


def _demo_sample(
    task: str,
    reference: str,
    fields: dict[str, Any],
    *,
    variant: int,
    seen: bool,
    label: str,
    entity: str,
    heldout: float,
    seed: int,
) -> Sample:
    """An item of the demo world; ``fields`` are the task's own (description, facts...)."""
    meta = {**fields, "conclude": False, "variant": variant, "teacher_seen": seen, "label": label}
    return build_sample(
        task,
        reference=reference,
        meta=meta,
        entity=entity,
        split=entity_split(entity, heldout, seed),
        provenance=PROVENANCE,
    )


def _cwe_item(rng: random.Random, share: float, heldout: float, seed: int) -> Sample:
    weak = rng.choice(WEAKNESSES)
    cue_i = rng.randrange(len(weak.cues))
    vendor, product = _product(rng)
    version = f"{rng.randint(1, 9)}.{rng.randint(0, 9)}"
    entity = f"product:{vendor} {product}"
    description = f"In {vendor} {product} {version}, {weak.cues[cue_i]}."
    facts = [
        f"The text says {weak.cues[cue_i]}.",
        f"That is {weak.name}.",
        f"{weak.name.capitalize()} is CWE-{weak.cwe}.",
    ]
    return _demo_sample(
        "cwe",
        f"CWE-{weak.cwe}",
        {"description": description, "facts": facts},
        variant=cue_i,
        seen=_seen(cue_i, len(weak.cues), share),
        label=f"CWE-{weak.cwe}",
        entity=entity,
        heldout=heldout,
        seed=seed,
    )


def _cvss_item(rng: random.Random, share: float, heldout: float, seed: int) -> Sample:
    vendor, product = _product(rng)
    entity = f"product:{vendor} {product}"
    chosen: dict[str, tuple[str, str, str, int, int]] = {}
    # Half the items use only each value's first phrasing; the rest mix in others, so
    # teacher-covered items are common while every phrasing still occurs.
    plain = rng.random() < 0.5
    for metric, values in CVSS_METRICS.items():
        value = rng.choice(sorted(values))
        words, cues = values[value]
        i = 0 if plain else rng.randrange(len(cues))
        chosen[metric] = (value, words, cues[i], i, len(cues))
    if not plain and all(v[3] == 0 for v in chosen.values()):
        metric = rng.choice(sorted(chosen))
        value, words, _, _, n = chosen[metric]
        chosen[metric] = (value, words, CVSS_METRICS[metric][value][1][1], 1, n)
    c = {m: v[2] for m, v in chosen.items()}
    description = (
        f"An attacker can exploit {vendor} {product} {c['AV']}, {c['AC']}, {c['PR']} and "
        f"{c['UI']}. The attacker can {c['C']}, {c['I']} and {c['A']}."
    )
    facts = [f"{v[2].capitalize()} means {m}:{v[0]}." for m, v in chosen.items()]
    facts.insert(4, "Nothing leaves the product, so S:U.")
    parts = [f"{m}:{chosen[m][0]}" for m in ("AV", "AC", "PR", "UI")] + ["S:U"]
    parts += [f"{m}:{chosen[m][0]}" for m in ("C", "I", "A")]
    vector = "CVSS:3.1/" + "/".join(parts)
    return _demo_sample(
        "cvss",
        vector,
        {"description": description, "facts": facts},
        variant=max(v[3] for v in chosen.values()),
        seen=all(_seen(v[3], v[4], share) for v in chosen.values()),
        label=vector,
        entity=entity,
        heldout=heldout,
        seed=seed,
    )


def _ate_item(rng: random.Random, share: float, heldout: float, seed: int) -> Sample:
    actor = _actor(rng)
    entity = f"actor:{actor}"
    k = rng.choice((1, 2))
    techs = rng.sample(TECHNIQUES, k)
    idx = [rng.randrange(len(t.cues)) for t in techs]
    sentences = [f"The {actor} group {techs[0].cues[idx[0]]}."]
    if k == 2:
        sentences.append(f"Then it {techs[1].cues[idx[1]]}.")
    facts: list[str] = []
    for t, i in zip(techs, idx, strict=True):
        facts += [f"It {t.cues[i]}.", f"That is {t.name}, {t.id}."]
    ids = sorted(t.id for t in techs)
    return _demo_sample(
        "ate",
        ", ".join(ids),
        {"description": " ".join(sentences), "facts": facts},
        variant=max(idx),
        seen=all(_seen(i, len(t.cues), share) for t, i in zip(techs, idx, strict=True)),
        label=", ".join(ids),
        entity=entity,
        heldout=heldout,
        seed=seed,
    )


def _mcq_item(rng: random.Random, share: float, heldout: float, seed: int) -> Sample:
    tech = rng.choice(TECHNIQUES)
    cue_i = rng.randrange(len(tech.cues))
    distractors = rng.sample([t for t in TACTICS if t != tech.tactic], 3)
    options = [tech.tactic, *distractors]
    rng.shuffle(options)
    gold = LETTERS[options.index(tech.tactic)]
    actor = _actor(rng)
    entity = f"actor:{actor}"
    question = f"The {actor} group {tech.cues[cue_i]}. Which tactic does this serve?"
    facts = [
        f"It {tech.cues[cue_i]}.",
        f"That is {tech.name}, {tech.id}.",
        f"{tech.id} serves the {tech.tactic} tactic.",
        f"The {tech.tactic} tactic is option {gold}.",
    ]
    return _demo_sample(
        "mcq",
        gold,
        {
            "question": question,
            "options": dict(zip(LETTERS, options, strict=True)),
            "facts": facts,
        },
        variant=cue_i,
        seen=_seen(cue_i, len(tech.cues), share),
        label=tech.tactic,
        entity=entity,
        heldout=heldout,
        seed=seed,
    )


_MAKERS = {"cwe": _cwe_item, "cvss": _cvss_item, "ate": _ate_item, "mcq": _mcq_item}


def make_demo_items(
    n_per_task: int,
    seed: int = 0,
    *,
    tasks: Sequence[str] = DEMO_TASKS,
    teacher_share: float = 0.5,
    heldout_fraction: float = 0.2,
) -> tuple[list[Sample], list[Sample]]:
    """Return ``(train, heldout)`` with ``n_per_task`` distinct items per task in total.

    The split is by entity (product or actor), deterministic for ``seed``; items are
    unique by content id. ``teacher_share`` sets which phrasings count as
    ``teacher_seen`` (SFT should use only those; RL prompts may use all).
    """
    unknown = sorted(set(tasks) - set(_MAKERS))
    if unknown:
        raise ValueError(f"unknown demo task(s) {unknown}; choose from {sorted(_MAKERS)}")
    rng = random.Random(seed)
    train: list[Sample] = []
    heldout: list[Sample] = []
    for task in tasks:
        seen: set[str] = set()
        misses = 0
        while len(seen) < n_per_task:
            item = _MAKERS[task](rng, teacher_share, heldout_fraction, seed)
            if item.id in seen:
                misses += 1
                if misses > 10_000:
                    raise ValueError(f"demo world too small for {n_per_task} distinct {task} items")
                continue
            misses = 0
            seen.add(item.id)
            (heldout if item.meta["split"] == "heldout" else train).append(item)
    return train, heldout


def demo_corpus(items: Sequence[Sample]) -> list[str]:
    """Texts to train the tiny tokenizer on: prompts and template traces of the items."""
    from secreason.data.template_teacher import template_trace

    texts: list[str] = []
    for item in items:
        texts.extend(m["content"] for m in item.messages)
        texts.append(template_trace(item))
    return texts
