"""Invisible format characters in an answer line (the one task layer, strict reading).

A zero-width space after an honest ``Answer: B`` made it invalid (found by the reward
hostile review); every task reads its answer line through ``tasks.base.normalize``, so
the rows below hold for all six. Invisible characters are dropped, never read as a
separator: a hedge hidden behind one (``B\\u200b, C``) stays a hedge, two letters glued by
one (``B\\u200bC``) stay invalid. Official rules read the text as their authors' code did
and are pinned unchanged.
"""

from __future__ import annotations

import pytest

from secreason.tasks import get_task

V = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
HONEST = {
    "mcq": "Answer: B",
    "cwe": "Answer: CWE-79",
    "ate": "Answer: T1059.001, T1071",
    "cvss": f"Answer: {V}",
    "taa": "Answer: APT29",
    "rms": "Answer: M1038, M1042",
}
# zero-width space, joiner, word joiner, BOM, soft hyphen, left-to-right mark, tag 'A'
INVISIBLE = ["\u200b", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e", "\U000e0041"]


def _placed(answer: str, mark: str) -> dict[str, str]:
    head, payload = answer.split(": ", 1)
    return {
        "after": answer + mark,
        "after, then a period": answer + mark + ".",
        "before the payload": f"{head}: {mark}{payload}",
        "inside the payload": f"{head}: {payload[:2]}{mark}{payload[2:]}",
        "inside 'Answer'": f"Ans{mark}wer: {payload}",
        "on a line of its own after": answer + "\n" + mark,
    }


ROWS = [
    (task, where, mark)
    for task in HONEST
    for where in _placed(HONEST[task], "x")
    for mark in INVISIBLE
]


@pytest.mark.parametrize(("task", "where", "mark"), ROWS, ids=lambda v: repr(v)[1:-1][:24])
def test_an_invisible_character_does_not_change_a_strict_answer(
    task: str, where: str, mark: str
) -> None:
    t = get_task(task)
    clean = t.extract(HONEST[task], "strict")
    assert clean.ok, clean.error
    got = t.extract(_placed(HONEST[task], mark)[where], "strict")
    assert got.ok, got.error
    assert t.score(got, str(clean.value)).status == "correct"
    assert got.value == clean.value


@pytest.mark.parametrize(
    ("task", "answer", "expected"),
    [
        ("mcq", "Answer: B\u200b, C", None),
        ("mcq", "Answer: B\u200bC", None),
        ("mcq", "Answer: B\u2060 or\u200b C", None),
        ("mcq", "Answer: B\U000e0020\U000e0043\n\u200b", "B"),  # tag characters: no letter
        ("cwe", "Answer: CWE-79\u200b or CWE-89", None),
        ("taa", "Answer: APT29\u200b, APT28", None),
    ],
    ids=["hedge", "glued", "hedge with or", "tag characters", "cwe hedge", "actor hedge"],
)
def test_invisible_characters_never_hide_a_hedge(
    task: str, answer: str, expected: str | None
) -> None:
    assert get_task(task).extract(answer, "strict").value == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Reasoning.\nAnswer: B\u200b", None),  # last character is not A-D in their code
        ("Reasoning.\nAnswer: \u200bB", "B"),
        ("Reasoning.\nB\u200b) Execution Prevention", None),
    ],
)
def test_the_official_mcq_rule_reads_text_as_its_authors_did(
    text: str, expected: str | None
) -> None:
    assert get_task("mcq").extract(text, "official").value == expected
