"""The demo world: deterministic, entity-disjoint, small vocabulary, traces the tasks accept."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from secreason.data import demo_corpus, make_demo_items, template_trace
from secreason.data.template_teacher import UNCOVERED, TemplateTeacher
from secreason.tasks import get_task

TASKS = ("cwe", "cvss", "ate", "mcq")


@pytest.fixture(scope="module")
def items():
    return make_demo_items(120, seed=0)


def test_counts_determinism_and_unique_ids(items) -> None:
    train, heldout = items
    assert Counter(s.task for s in train + heldout) == dict.fromkeys(TASKS, 120)
    ids = [s.id for s in train + heldout]
    assert len(ids) == len(set(ids))
    again = make_demo_items(120, seed=0)
    assert [s.id for s in again[0]] == [s.id for s in train]
    assert [s.id for s in make_demo_items(120, seed=1)[0]] != [s.id for s in train]


def test_heldout_is_entity_disjoint_and_nonempty(items) -> None:
    train, heldout = items
    for task in TASKS:
        held = {s.meta["entity"] for s in heldout if s.task == task}
        assert held, task
        assert not held & {s.meta["entity"] for s in train if s.task == task}

    # Hold out combinations, not words: every held-out word is seen in training.
    def words(ss):
        return {w for s in ss for m in s.messages for w in re.findall(r"[A-Za-z]+", m["content"])}

    assert words(heldout) <= words(train)


@pytest.mark.parametrize("task", TASKS)
def test_template_traces_are_correct_and_well_formed(items, task: str) -> None:
    train, heldout = items
    judge = get_task(task)
    for s in [x for x in train + heldout if x.task == task]:
        trace = template_trace(s)
        j = judge.judge(trace, s.reference)
        assert j.score.status == "correct", (s.meta, trace)
        assert j.format.ok, j.format.failed
        # The tiny model's chat template prefills "<think>\n": the same trace minus the
        # opening tag must read the same way.
        j2 = judge.judge(trace.removeprefix("<think>\n"), s.reference, prefilled=True)
        assert j2.score.status == "correct" and j2.format.ok


def test_teacher_share_controls_coverage(items) -> None:
    train, _ = items
    share = sum(s.meta["teacher_seen"] for s in train) / len(train)
    assert 0.2 < share < 0.8
    assert all(s.meta["teacher_seen"] for s in make_demo_items(40, 0, teacher_share=1.0)[0])
    unseen = next(s for s in train if not s.meta["teacher_seen"])
    assert TemplateTeacher().complete(unseen, 2) == [UNCOVERED, UNCOVERED]
    assert get_task(unseen.task).judge(UNCOVERED, unseen.reference).score.status != "correct"


def test_vocabulary_is_small(items) -> None:
    train, heldout = items
    texts = demo_corpus(train + heldout)
    vocab = {w for t in texts for w in re.findall(r"[A-Za-z]+", t)}
    assert len(vocab) < 600, len(vocab)


def test_unknown_task() -> None:
    with pytest.raises(ValueError, match="unknown demo task"):
        make_demo_items(1, tasks=("nope",))
