"""Items from the real knowledge bases: gold from the KB, verifiable, split by entity."""

from __future__ import annotations

from collections import defaultdict

import pytest

from secreason.data.synthesize import KINDS, SynthesisConfig, content_id, entity_split, synthesize
from secreason.data.template_teacher import template_trace
from secreason.tasks import get_task


@pytest.fixture(scope="module")
def items():
    cfg = SynthesisConfig(max_per_kind=150, cvss_vectors=150, heldout_fraction=0.2)
    return list(synthesize(cfg))


def test_every_kind_yields_items_with_provenance(items) -> None:
    kinds = defaultdict(int)
    for s in items:
        assert s.meta["provenance"] and s.meta["entity"] and s.meta["split"] in ("train", "heldout")
        assert s.id == content_id(s.task, s.messages, s.reference)
        kinds[s.task] += 1
    assert set(kinds) == {"cwe", "ate", "mcq", "cvss", "taa"}
    assert len(items) > 7 * 100


def test_template_traces_pass_the_task_verifiers(items) -> None:
    bad = []
    for s in items:
        j = get_task(s.task).judge(template_trace(s), s.reference)
        if not (j.score.status == "correct" and j.format.ok):
            bad.append((s.task, s.reference, j.as_dict()))
    assert not bad, bad[:3]


def test_split_by_entity(items) -> None:
    sides = defaultdict(set)
    for s in items:
        sides[s.meta["entity"]].add(s.meta["split"])
    assert all(len(v) == 1 for v in sides.values())
    assert {"train", "heldout"} <= {s.meta["split"] for s in items}
    # A held-out CWE never appears as a training item's gold answer.
    held = {s.reference for s in items if s.task == "cwe" and s.meta["split"] == "heldout"}
    assert not held & {s.reference for s in items if s.task == "cwe" and s.meta["split"] == "train"}


def test_entity_split_is_stable_and_roughly_the_fraction() -> None:
    splits = [entity_split(f"CWE-{i}", 0.1, seed=0) for i in range(5000)]
    assert splits == [entity_split(f"CWE-{i}", 0.1, seed=0) for i in range(5000)]
    assert 0.08 < splits.count("heldout") / 5000 < 0.12


def test_cwe_items_carry_their_cve(items) -> None:
    cwe = [s for s in items if s.task == "cwe"]
    assert cwe and all(s.meta["cves"][0] in s.meta["description"] for s in cwe)


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown synthesis kind"):
        list(synthesize(SynthesisConfig(kinds=["nope"])))
    assert len(KINDS) == 9
