"""ATT&CK items: technique descriptions, procedures and group reports -> technique ids,
techniques -> tactics, and scrubbed group profiles -> the group.

Technique items are split by the parent technique (a held-out T1059 takes its
sub-techniques with it); multi-technique report items and attribution items by group.
ATT&CK files one procedure text under several techniques, sometimes for several
actors, so a procedure's gold is the union of every technique the text is recorded
under: the complete answer is the one that earns full credit. An item whose text names
every gold technique (by id or unambiguous name) is dropped, since the audit's string
matcher answers it without reasoning.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Iterator
from typing import Any

from secreason.data import shortcuts
from secreason.data.kb_items.actor_scrub import scrub_actor
from secreason.data.kb_items.parts import first_sentences, kb_sample, mcq_sample, pick_distractors
from secreason.data.phrases import words
from secreason.data.synthesize import SynthesisConfig
from secreason.tasks.base import Sample


def _attack_provenance() -> str:
    from secreason.kb import ATTACK_VERSION_NOTE

    return ATTACK_VERSION_NOTE


def _root(technique_id: str) -> str:
    return technique_id.split(".")[0]


def _mask_name(text: str, name: str) -> str:
    return re.sub(re.escape(name), "this technique", text, flags=re.IGNORECASE)


def technique_to_id(cfg: SynthesisConfig, rng: random.Random) -> Iterator[Sample]:
    """A technique's description (its name masked) -> its ATT&CK id."""
    from secreason.kb import load_attack

    kb = load_attack()
    prov = _attack_provenance()
    for t in kb.techniques():
        text = _mask_name(first_sentences(t.description, 3, 600), t.name)
        if names_every_technique(text, [t.id]):
            continue
        facts = [
            f"The text describes {t.name}.",
            f"In ATT&CK, {t.name} is {t.id}"
            + (f", a sub-technique of {t.parent}." if t.parent else "."),
        ]
        yield kb_sample(
            "ate",
            cfg,
            reference=t.id,
            meta={"description": text, "facts": facts},
            entity=_root(t.id),
            provenance=f"{prov}, {t.id}",
        )


@functools.lru_cache(maxsize=1)
def _matcher() -> shortcuts.Shortcuts:
    return shortcuts.Shortcuts()


def names_every_technique(text: str, gold: list[str]) -> bool:
    """Whether ``text`` spells out every gold technique by id or unambiguous name
    ("...used keylogging..."): such an item is answered by string matching alone."""
    matcher = _matcher()
    found = {label for label, _ in matcher.technique_names.find(text)}
    found |= set(shortcuts.TECHNIQUE_ID.findall(text))
    return set(gold) <= found


def _procedures(kb: Any, actor: str) -> dict[str, set[str]]:
    """An actor's procedure texts -> every technique each one is recorded under."""
    out: dict[str, set[str]] = {}
    for use in kb.uses(actor):
        if kb.has_technique(use.target) and len(use.description.split()) >= 6:
            out.setdefault(use.description, set()).add(use.target)
    return out


def procedure_to_technique(cfg: SynthesisConfig, rng: random.Random) -> Iterator[Sample]:
    """A procedure example (what a group or tool did) -> every technique it is recorded as.

    ATT&CK often files one procedure text under several techniques (a parent and its
    sub-technique, or two behaviours in one sentence), sometimes for several actors: the
    item is made once per text, with the union of those techniques as its gold set.
    """
    from secreason.kb import load_attack

    kb = load_attack()
    prov = _attack_provenance()
    actors = [g.id for g in kb.groups()] + [s.id for s in kb.software()]
    by_text: dict[str, set[str]] = {}
    sources: dict[str, list[str]] = {}
    for actor in actors:
        for text, targets in _procedures(kb, actor).items():
            key = " ".join(words(text))
            by_text.setdefault(key, set()).update(targets)
            sources.setdefault(key, [text, actor])
    for key, targets in by_text.items():
        text, actor = sources[key]
        gold = sorted(targets)
        if names_every_technique(text, gold):
            continue
        facts = [f"The report says: {text}"]
        facts += [f"That behaviour is {kb.technique(t).name}, ATT&CK technique {t}." for t in gold]
        entity = _root(gold[0])
        yield kb_sample(
            "ate",
            cfg,
            reference=", ".join(gold),
            meta={"description": text, "facts": facts},
            entity=entity,
            provenance=f"{prov}, procedure of {actor} ({', '.join(gold)})",
        )


def technique_to_tactic(cfg: SynthesisConfig, rng: random.Random) -> Iterator[Sample]:
    """A technique -> the tactic it serves (techniques with exactly one tactic)."""
    from secreason.kb import load_attack

    kb = load_attack()
    prov = _attack_provenance()
    tactics = {t.shortname: t.name for t in kb.tactics()}
    for t in kb.techniques():
        if len(t.tactics) != 1 or t.tactics[0] not in tactics:
            continue
        gold = tactics[t.tactics[0]]
        others = sorted(v for k, v in tactics.items() if k != t.tactics[0])
        question = f"Which ATT&CK tactic does the technique {t.id} ({t.name}) serve?"
        distractors = pick_distractors(question, gold, others, rng)
        if distractors is None:
            continue
        facts = [
            f"{t.id} is {t.name}: {first_sentences(t.description, 1)}",
            f"ATT&CK lists {t.id} under the {gold} tactic.",
        ]
        yield mcq_sample(
            question,
            gold,
            distractors,
            facts,
            rng,
            entity=_root(t.id),
            cfg=cfg,
            provenance=f"{prov}, {t.id}",
        )


def group_report_to_techniques(cfg: SynthesisConfig, rng: random.Random) -> Iterator[Sample]:
    """A report-style paragraph of a group's procedures -> the full set of techniques.

    The gold is the union of every technique each quoted procedure is recorded under,
    so the complete answer is the one that earns full credit.
    """
    from secreason.kb import load_attack

    kb = load_attack()
    prov = _attack_provenance()
    for g in kb.groups():
        procedures = _procedures(kb, g.id)
        if len(procedures) < 2:
            continue
        texts = sorted(procedures)
        rng.shuffle(texts)
        for start in range(0, len(texts) - 1, 3):
            chosen = texts[start : start + 3]
            if len(chosen) < 2:
                continue
            gold = sorted(set().union(*(procedures[t] for t in chosen)))
            if names_every_technique(" ".join(chosen), gold):
                continue
            facts = []
            for text in chosen:
                named = ", ".join(f"{kb.technique(t).name} ({t})" for t in sorted(procedures[text]))
                facts.append(f"'{first_sentences(text, 1, 160)}' is {named}.")
            yield kb_sample(
                "ate",
                cfg,
                reference=", ".join(gold),
                meta={"description": " ".join(chosen), "facts": facts},
                entity=f"group:{g.id}",
                provenance=f"{prov}, procedures of {g.id} ({g.name})",
            )


def group_profile_to_actor(cfg: SynthesisConfig, rng: random.Random) -> Iterator[Sample]:
    """A group's profile, scrubbed of every name linked to it (``scrub_actor``) -> the group."""
    from secreason.kb import load_attack

    kb = load_attack()
    prov = _attack_provenance()
    for g in kb.groups():
        text = first_sentences(scrub_actor(g.description, g.id), 4, 800)
        if len(text.split()) < 12 or "[PLACEHOLDER]" not in text:
            continue
        aliases = [a for a in g.aliases if a != g.name]
        facts = [
            f"The profile matches the ATT&CK group {g.id}, {g.name}"
            + (f" (also known as {', '.join(aliases[:4])})." if aliases else "."),
            f"{g.name} is described as: {first_sentences(g.description, 1, 240)}",
        ]
        yield kb_sample(
            "taa",
            cfg,
            reference=g.name,
            meta={"text": text, "facts": facts},
            entity=f"group:{g.id}",
            provenance=f"{prov}, {g.id}",
        )
