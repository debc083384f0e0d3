"""The knowledge-base generators leave no answer in the prompt: scrubbed actor reports,
vulnerability-style CVSS text, one complete technique set per ATE prompt."""

from __future__ import annotations

import random
import re

import pytest

from secreason.data import kb_items
from secreason.data.consistency import one_gold_per_prompt, prompt_key
from secreason.data.synthesize import SynthesisConfig, build_sample
from secreason.tasks.attack import technique_set


@pytest.fixture(scope="module")
def cfg() -> SynthesisConfig:
    return SynthesisConfig(cvss_vectors=300, heldout_fraction=0.3)


def test_actor_reports_carry_no_name_linked_to_the_actor(cfg) -> None:
    from secreason.kb import load_attack
    from secreason.kb.actor_names import actor_names

    kb = load_attack()
    names = actor_names()
    items = list(kb_items.group_profile_to_actor(cfg, random.Random(0)))
    assert len(items) > 100 and any(s.meta["split"] == "heldout" for s in items)
    leaks = []
    for s in items:
        group = kb.group(s.reference)
        linked = names[group.id]
        text = s.meta["text"]
        for name in (*linked.actor, *linked.campaigns):
            if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text, re.IGNORECASE):
                leaks.append((s.reference, name))
        for name in linked.software:
            if kb_items.scrubbable_software(name) and re.search(
                rf"(?<![\w-]){re.escape(name)}(?![\w-])", text
            ):
                leaks.append((s.reference, name))
        assert not re.search(r"\bOperation [A-Z]", text), text
    assert not leaks, leaks[:10]


def test_scrub_replaces_each_kind_of_name() -> None:
    from secreason.kb import load_attack

    gid = load_attack().group("Indrik Spider").id
    text = "Evil Corp ran WastedLocker in Operation Nightfall; Fancy Bear at dawn."
    out = kb_items.scrub_actor(text, gid)
    assert out == "[PLACEHOLDER] ran [SOFTWARE] in [CAMPAIGN]; [PLACEHOLDER] at dawn."


def test_cvss_descriptions_are_vulnerabilities_not_metric_definitions(cfg) -> None:
    from secreason.data.phrases import words
    from secreason.kb.cvss import metric_meanings

    phrases = [" ".join(words(t)) for t in metric_meanings().values()]
    items = list(kb_items.cvss_description_to_vector(cfg, random.Random(0)))
    assert len(items) == 300
    for s in items:
        text = " ".join(words(s.meta["description"]))
        assert not [p for p in phrases if p in text], s.meta["description"]
        assert not re.search(r"\b(AV|AC|PR|UI)\s*:", s.meta["description"])
        assert "It can be exploited by" in s.meta["description"]
    # The wording follows the vector: a physical-access flaw names a device in hand.
    physical = [s for s in items if "/AV:P/" in s.reference]
    assert physical and all(
        any(
            w in s.meta["description"]
            for w in ("in hand", "connector", "at the terminal", "at the device")
        )
        for s in physical
    )


@pytest.mark.parametrize("kind", ["procedure_to_technique", "group_report_to_techniques"])
def test_ate_items_have_one_complete_gold_per_prompt(cfg, kind: str) -> None:
    from secreason.kb import load_attack

    kb = load_attack()
    items = list(getattr(kb_items, kind)(cfg, random.Random(0)))
    keys = [prompt_key(s) for s in items]
    assert len(keys) == len(set(keys))
    # Every technique a quoted procedure is filed under (by the item's actor) is in the gold.
    by_text: dict[str, list] = {}
    for actor in [g.id for g in kb.groups()] + [x.id for x in kb.software()]:
        for u in kb.uses(actor):
            if kb.has_technique(u.target):
                by_text.setdefault(u.description, []).append(u)
    checked = 0
    for s in items[:300]:
        gold = technique_set(s.reference)
        actors = [s.meta["entity"].removeprefix("group:")] if kind.startswith("group") else None
        if actors:
            uses = [
                u
                for u in kb.uses(actors[0])
                if kb.has_technique(u.target) and u.description in s.meta["description"]
            ]
        else:
            uses = by_text.get(s.meta["description"], [])
        texts = {u.description for u in uses}
        for u in uses:  # a sentence inside a longer quoted procedure is not quoted itself
            if not any(u.description != t and u.description in t for t in texts):
                assert u.target in gold, (s.meta["description"][:80], u.target, gold)
                checked += 1
    assert checked > 100


def _ate(text: str, gold: str, split: str, entity: str = "e"):
    return build_sample(
        "ate",
        reference=gold,
        meta={"description": text, "facts": [f"fact {gold}"]},
        entity=entity,
        split=split,
        provenance="test",
    )


def test_one_gold_per_prompt_unions_sets_drops_conflicts_and_cross_split() -> None:
    from secreason.data.synthesize import build_sample as b

    items = [
        _ate("They dumped LSASS memory.", "T1003", "train"),
        _ate("they dumped lsass memory!", "T1003.001", "train"),  # same normalised prompt
        _ate("They listed shares.", "T1135", "train"),
        _ate("They listed shares.", "T1135", "heldout"),  # held-out wins
        b(
            "cwe",
            reference="CWE-79",
            meta={"description": "x y z"},
            entity="a",
            split="train",
            provenance="t",
        ),
        b(
            "cwe",
            reference="CWE-80",
            meta={"description": "x y z"},
            entity="b",
            split="train",
            provenance="t",
        ),
    ]
    out, report = one_gold_per_prompt(items)
    refs = sorted((s.task, s.reference, s.meta["split"]) for s in out)
    assert refs == [("ate", "T1003, T1003.001", "train"), ("ate", "T1135", "heldout")]
    assert report.resolved_by_union == 1 and report.dropped_conflicts == 2
    assert report.cross_split_dropped == 1 and report.conflicting_prompts == 2
    merged = next(s for s in out if "T1003" in s.reference)
    assert merged.meta["facts"] == ["fact T1003", "fact T1003.001"]
