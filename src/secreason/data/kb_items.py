"""One generator per kind of knowledge-base item (the kinds listed in ``synthesize.KINDS``).

Each generator walks one knowledge base in a fixed order and yields Samples whose gold
answer comes straight from the knowledge base, with the facts that justify it (for the
template teacher) and the entity that decides its split:

* CWE items are split by CWE id; ATT&CK technique items by the parent technique (a
  held-out T1059 takes its sub-techniques with it); multi-technique report items and
  actor attribution items by group; CVSS items by vector.
* Multiple-choice distractors are knowledge-base siblings: CWE entries under the same
  parent in view 1000, other tactics of the matrix, neighbouring severity bands.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from typing import Any

from secreason.data.synthesize import SynthesisConfig, build_sample, entity_split
from secreason.tasks.base import Sample

LETTERS = "ABCD"
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def first_sentences(text: str, n: int = 2, limit: int = 400) -> str:
    parts = _SENTENCE.split(" ".join(text.split()))
    out = " ".join(parts[:n])
    return out if len(out) <= limit else out[: limit - 3].rsplit(" ", 1)[0] + "..."


def _split(entity: str, cfg: SynthesisConfig) -> str:
    return entity_split(entity, cfg.heldout_fraction, cfg.seed)


def _options(gold: str, distractors: list[str], rng: random.Random) -> tuple[dict[str, str], str]:
    opts = [gold, *distractors[:3]]
    rng.shuffle(opts)
    return dict(zip(LETTERS, opts, strict=False)), LETTERS[opts.index(gold)]


def _mcq(
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
    options, letter = _options(gold, distractors, rng)
    facts = [*facts, f"'{gold}' is option {letter}."]
    meta = {"question": question, "options": options, "facts": facts, **(extra or {})}
    return build_sample(
        "mcq",
        reference=letter,
        meta=meta,
        entity=entity,
        split=_split(entity, cfg),
        provenance=provenance,
    )


# ----------------------------------------------------------------------------- CWE


def _cwe_provenance() -> str:
    from secreason.kb import CWE_VERSION

    return f"CWE {CWE_VERSION} catalog"


def cve_to_cwe(cfg: SynthesisConfig, rng: random.Random) -> Iterator[Sample]:
    """A CVE's description as the catalog quotes it -> the CWE it exemplifies.

    Skipped: examples under a Prohibited entry, under several CWEs, or naming CWE ids.
    """
    from secreason.kb import load_cwe

    catalog = load_cwe()
    prov = _cwe_provenance()
    # A CVE listed under several CWEs (a chain, or a composite) has no single gold answer.
    owners: dict[str, set[int]] = {}
    for w in catalog.all(categories=True, deprecated=True):
        for cve, _ in w.examples:
            owners.setdefault(cve, set()).add(w.id)
    for w in catalog.all():
        if w.mapping_usage == "Prohibited":
            continue
        for cve, text in w.examples:
            # Texts that name CWE ids ("Chain: ... (CWE-20) leading to ... (CWE-78)") give
            # the answer away or have several; short ones say too little.
            if len(text.split()) < 6 or "CWE-" in text.upper() or len(owners[cve]) > 1:
                continue
            facts = [
                f"The description says: {text}",
                f"{w.cwe_id} ({w.name}) is defined as: {first_sentences(w.description, 1)}",
                f"The described flaw matches that definition, so the weakness is {w.cwe_id}.",
            ]
            yield build_sample(
                "cwe",
                reference=w.cwe_id,
                meta={"description": f"{cve}: {text}", "cves": [cve], "facts": facts},
                entity=w.cwe_id,
                split=_split(w.cwe_id, cfg),
                provenance=f"{prov}, observed example {cve} of {w.cwe_id}",
            )


def cwe_name_mcq(cfg: SynthesisConfig, rng: random.Random) -> Iterator[Sample]:
    """A weakness's definition -> its name, among siblings under the same parent."""
    from secreason.kb import load_cwe

    catalog = load_cwe()
    prov = _cwe_provenance()
    for w in catalog.all():
        siblings = {
            catalog.get(c).name
            for p in w.parents()
            for c in catalog.children(p)
            if c != w.id and c in catalog and not catalog.get(c).is_deprecated
        }
        if len(siblings) < 3:
            continue
        distractors = rng.sample(sorted(siblings), 3)
        question = (
            f"Which CWE weakness does this definition describe? {first_sentences(w.description, 2)}"
        )
        facts = [
            f"The definition is that of {w.cwe_id}, named '{w.name}'.",
            "The other options are sibling weaknesses under the same parent in CWE view 1000.",
        ]
        yield _mcq(
            question,
            w.name,
            distractors,
            facts,
            rng,
            entity=w.cwe_id,
            cfg=cfg,
            provenance=f"{prov}, {w.cwe_id}",
        )


# ---------------------------------------------------------------------------- ATT&CK


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
        facts = [
            f"The text describes {t.name}.",
            f"In ATT&CK, {t.name} is {t.id}"
            + (f", a sub-technique of {t.parent}." if t.parent else "."),
        ]
        yield build_sample(
            "ate",
            reference=t.id,
            meta={"description": text, "facts": facts},
            entity=_root(t.id),
            split=_split(_root(t.id), cfg),
            provenance=f"{prov}, {t.id}",
        )


def procedure_to_technique(cfg: SynthesisConfig, rng: random.Random) -> Iterator[Sample]:
    """A procedure example (what a group or tool did) -> the technique it used."""
    from secreason.kb import load_attack

    kb = load_attack()
    prov = _attack_provenance()
    techniques = {t.id: t for t in kb.techniques()}
    actors = [g.id for g in kb.groups()] + [s.id for s in kb.software()]
    for actor in actors:
        for use in kb.uses(actor):
            t = techniques.get(use.target)
            if t is None or len(use.description.split()) < 6:
                continue
            facts = [
                f"The report says: {use.description}",
                f"That behaviour is {t.name}, ATT&CK technique {t.id}.",
            ]
            yield build_sample(
                "ate",
                reference=t.id,
                meta={"description": use.description, "facts": facts},
                entity=_root(t.id),
                split=_split(_root(t.id), cfg),
                provenance=f"{prov}, {actor} uses {t.id}",
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
        facts = [
            f"{t.id} is {t.name}: {first_sentences(t.description, 1)}",
            f"ATT&CK lists {t.id} under the {gold} tactic.",
        ]
        yield _mcq(
            question,
            gold,
            rng.sample(others, 3),
            facts,
            rng,
            entity=_root(t.id),
            cfg=cfg,
            provenance=f"{prov}, {t.id}",
        )


def group_report_to_techniques(cfg: SynthesisConfig, rng: random.Random) -> Iterator[Sample]:
    """A report-style paragraph from a group's procedures -> the set of techniques."""
    from secreason.kb import load_attack

    kb = load_attack()
    prov = _attack_provenance()
    for g in kb.groups():
        uses = [
            u for u in kb.uses(g.id) if u.target.startswith("T") and len(u.description.split()) >= 6
        ]  # noqa: E501
        by_target: dict[str, str] = {}
        for u in uses:
            by_target.setdefault(u.target, u.description)
        if len(by_target) < 2:
            continue
        targets = sorted(by_target)
        rng.shuffle(targets)
        for start in range(0, len(targets) - 1, 3):
            chosen = sorted(targets[start : start + 3])
            if len(chosen) < 2:
                continue
            paragraph = " ".join(by_target[t] for t in chosen)
            facts = []
            for tid in chosen:
                t = kb.technique(tid)
                facts.append(f"'{first_sentences(by_target[tid], 1, 160)}' is {t.name}, {tid}.")
            yield build_sample(
                "ate",
                reference=", ".join(chosen),
                meta={"description": paragraph, "facts": facts},
                entity=f"group:{g.id}",
                split=_split(f"group:{g.id}", cfg),
                provenance=f"{prov}, procedures of {g.id} ({g.name})",
            )


def group_profile_to_actor(cfg: SynthesisConfig, rng: random.Random) -> Iterator[Sample]:
    """A group's profile with its names replaced by [PLACEHOLDER] -> the group (TAA)."""
    from secreason.kb import load_attack

    kb = load_attack()
    prov = _attack_provenance()
    for g in kb.groups():
        text = g.description
        for name in sorted({g.name, *g.aliases}, key=len, reverse=True):
            text = re.sub(rf"\b{re.escape(name)}\b", "[PLACEHOLDER]", text, flags=re.IGNORECASE)
        text = first_sentences(text, 4, 800)
        if len(text.split()) < 12 or "[PLACEHOLDER]" not in text:
            continue
        aliases = [a for a in g.aliases if a != g.name]
        facts = [
            f"The profile matches the ATT&CK group {g.id}, {g.name}"
            + (f" (also known as {', '.join(aliases[:4])})." if aliases else "."),
            f"{g.name} is described as: {first_sentences(g.description, 1, 240)}",
        ]
        yield build_sample(
            "taa",
            reference=g.name,
            meta={"text": text, "facts": facts},
            entity=f"group:{g.id}",
            split=_split(f"group:{g.id}", cfg),
            provenance=f"{prov}, {g.id}",
        )


# ----------------------------------------------------------------------------- CVSS

_V31_CHOICES = {
    "AV": "NALP",
    "AC": "LH",
    "PR": "NLH",
    "UI": "NR",
    "S": "UC",
    "C": "NLH",
    "I": "NLH",
    "A": "NLH",
}


def _random_vector(rng: random.Random) -> str:
    parts = [f"{m}:{rng.choice(values)}" for m, values in _V31_CHOICES.items()]
    return "CVSS:3.1/" + "/".join(parts)


def _vectors(cfg: SynthesisConfig, rng: random.Random) -> list[str]:
    seen: dict[str, None] = {}
    while len(seen) < cfg.cvss_vectors:
        seen.setdefault(_random_vector(rng))
    return list(seen)


def cvss_description_to_vector(cfg: SynthesisConfig, rng: random.Random) -> Iterator[Sample]:
    """A description stating each base metric in plain words -> the CVSS v3.1 vector.

    The words and the reasoning both come from ``secreason.kb.cvss.describe``: the
    description keeps only each metric's meaning, the reasoning names metric and value.
    """
    from secreason.kb.cvss import describe_vector

    for vector in _vectors(cfg, rng):
        facts = describe_vector(vector)
        metric_facts = facts[:8]
        meanings = [f.split(": ", 1)[1].rstrip(".") for f in metric_facts]
        text = "A vulnerability was reported: " + "; ".join(meanings) + "."
        yield build_sample(
            "cvss",
            reference=vector,
            meta={"description": text, "facts": [*metric_facts, f"The vector is {vector}."]},
            entity=f"cvss:{vector}",
            split=_split(f"cvss:{vector}", cfg),
            provenance="CVSS v3.1 specification (metric definitions), generated vector",
        )


def cvss_vector_to_severity(cfg: SynthesisConfig, rng: random.Random) -> Iterator[Sample]:
    """A vector -> its qualitative severity (scored by ``secreason.kb.cvss``)."""
    from secreason.kb.cvss import describe_vector, parse

    bands = ["Low", "Medium", "High", "Critical"]
    for vector in _vectors(cfg, random.Random(f"{cfg.seed}:severity")):
        result = parse(vector)
        if result.severity not in bands:
            continue
        distractors = [b for b in bands if b != result.severity]
        question = f"What is the severity of the CVSS vector {vector}?"
        facts = [
            *describe_vector(vector),
            f"A base score of {result.base_score:.1f} falls in the {result.severity} band.",
        ]
        yield _mcq(
            question,
            result.severity,
            distractors,
            facts,
            rng,
            entity=f"cvss:{vector}",
            cfg=cfg,
            provenance="CVSS v3.1 base score via the cvss package",
            extra={"score": result.base_score},
        )
