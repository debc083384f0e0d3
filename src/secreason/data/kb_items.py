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

import functools
import random
import re
from collections.abc import Iterator
from typing import Any

from secreason.data import shortcuts
from secreason.data.phrases import overlap, quoted
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
    names = sorted({w.name for w in catalog.all()})
    for w in catalog.all():
        siblings = {
            catalog.get(c).name
            for p in w.parents()
            for c in catalog.children(p)
            if c != w.id and c in catalog and not catalog.get(c).is_deprecated
        }
        question = (
            f"Which CWE weakness does this definition describe? {first_sentences(w.description, 2)}"
        )
        distractors = pick_distractors(question, w.name, sorted(siblings), rng)
        if distractors is None:  # no sibling as close to the question: any weakness
            distractors = pick_distractors(question, w.name, names, rng)
        if distractors is None:
            continue
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
        if names_every_technique(text, [t.id]):
            continue
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
            key = " ".join(shortcuts.words(text))
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
        yield build_sample(
            "ate",
            reference=", ".join(gold),
            meta={"description": text, "facts": facts},
            entity=entity,
            split=_split(entity, cfg),
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
        yield _mcq(
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
            yield build_sample(
                "ate",
                reference=", ".join(gold),
                meta={"description": " ".join(chosen), "facts": facts},
                entity=f"group:{g.id}",
                split=_split(f"group:{g.id}", cfg),
                provenance=f"{prov}, procedures of {g.id} ({g.name})",
            )


def scrub_actor(text: str, group_id: str) -> str:
    """``text`` with every name ATT&CK links to the group replaced by a placeholder.

    The group's names and aliases (and every other group's) become ``[PLACEHOLDER]``,
    its campaigns and any "Operation X" ``[CAMPAIGN]``, the software it uses
    ``[SOFTWARE]`` (case-sensitive; short lower-case tool names such as ``at`` are
    ordinary words and stay).
    """
    from secreason.kb.actor_names import OPERATION_RE, actor_names, name_pattern

    names = actor_names()
    mine = names[group_id]
    software = [n for n in mine.software if scrubbable_software(n)]
    if software:
        alternatives = "|".join(re.escape(n) for n in sorted(software, key=len, reverse=True))
        text = re.sub(rf"(?<![\w-])(?:{alternatives})(?![\w-])", "[SOFTWARE]", text)
    campaigns = name_pattern(mine.campaigns)
    if campaigns is not None:
        text = campaigns.sub("[CAMPAIGN]", text)
    text = OPERATION_RE.sub("[CAMPAIGN]", text)
    return _all_actor_names().sub("[PLACEHOLDER]", text)


def scrubbable_software(name: str) -> bool:
    """Software names worth scrubbing: not short lower-case words such as ``at``, ``cmd``."""
    return len(name) >= 3 and not (name.islower() and len(name) <= 4)


@functools.lru_cache(maxsize=1)
def _all_actor_names() -> re.Pattern[str]:
    from secreason.kb.actor_names import actor_names, name_pattern

    pattern = name_pattern([n for a in actor_names().values() for n in a.actor])
    assert pattern is not None
    return pattern


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
    """A report-style vulnerability description -> the CVSS v3.1 vector it implies.

    The description is written by ``data.cvss_text`` from a CWE weakness's definition
    and wordings that imply each metric, never from the metric definitions themselves.
    """
    from secreason.data.cvss_text import describe_vulnerability
    from secreason.kb import load_cwe

    weaknesses = [
        w for w in load_cwe().all() if w.mapping_usage != "Prohibited" and len(w.description) > 40
    ]
    for vector in _vectors(cfg, rng):
        w = weaknesses[rng.randrange(len(weaknesses))]
        text, facts = describe_vulnerability(vector, w.description, rng)
        yield build_sample(
            "cvss",
            reference=vector,
            meta={"description": text, "facts": facts, "cwe": w.cwe_id},
            entity=f"cvss:{vector}",
            split=_split(f"cvss:{vector}", cfg),
            provenance=f"generated vector; flaw from the definition of {w.cwe_id}",
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
