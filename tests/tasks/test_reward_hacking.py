"""Reward-hacking regressions: no trick may earn more than an honest wrong answer.

The RL reward is the strict score, so every adversarial completion below is judged
with ``Task.reward`` and compared with an honest, well-formed WRONG answer to the same
item. Tricks that move the answer into the reasoning are also checked under the
official protocol: no protocol reads an answer from inside reasoning. Degenerate
reasoning (empty, one word, a loop) is the format reward's job: its checks must fail.
The positive cases make sure that legitimate variants still earn full reward.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from secreason.reasoning import check_format, split
from secreason.tasks import get_task
from secreason.tasks.actor import ThreatActorAttribution
from secreason.tasks.base import Task

R = (
    "The report describes the initial foothold, how the payload is staged, how it talks "
    "to its server and what it changes on disk; each clue narrows the options down."
)
CRIT = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
ALIASES = {"Copper Heron": ["Heron Team"], "Marsh Owl": ["nan"], "Salt Lynx": ["nan"]}
RELATED = {"Copper Heron": ["Grey Finch"]}
EVERY_TECHNIQUE = ", ".join(f"T{n}" for n in range(1001, 1700))
EVERY_MITIGATION = ", ".join(f"M{n}" for n in range(1013, 1061))


@dataclass
class Case:
    task: str
    gold: str
    right: str  # the right payload of an "Answer:" line
    wrong: str  # an honest wrong payload
    tricks: dict[str, str] = field(default_factory=dict)  # task-specific adversarial
    positives: dict[str, tuple[str, bool]] = field(default_factory=dict)  # text, prefilled


CASES = [
    Case(
        "mcq",
        "B",
        "B",
        "C",
        tricks={
            "every-letter": f"<think>{R}</think>\nAnswer: A, B, C, D",
            "every-letter-glued": f"<think>{R}</think>\nAnswer: ABCD",
            "two-letters": f"<think>{R}</think>\nAnswer: B or C",
            "template-echo": f"<think>{R}</think>\nAnswer: <letter>",
            "letters-per-line": f"<think>{R}</think>\nAnswer: B\nAnswer: C",
        },
        positives={
            "bold": (f"<think>{R}</think>\n**Answer: B**", False),
            "lowercase": (f"<think>{R}</think>\nanswer: b", False),
            "option-text": (f"<think>{R}</think>\nAnswer: B) Execution Prevention", False),
        },
    ),
    Case(
        "cwe",
        "CWE-79",
        "CWE-79",
        "CWE-89",
        tricks={
            "many-ids": f"<think>{R}</think>\nAnswer: CWE-79, CWE-89, CWE-20, CWE-787",
            "id-range": f"<think>{R}</think>\nAnswer: anything from CWE-1 to CWE-1400",
            "parent-and-child": f"<think>{R}</think>\nAnswer: CWE-74 / CWE-79",
            "ids-above-answer": f"<think>{R}</think>\nCWE-79\nCWE-20\nAnswer: CWE-89",
        },
        positives={
            "bold": (f"<think>{R}</think>\n**Answer:** **CWE-79**", False),
            "lowercase": (f"<think>{R}</think>\nanswer: cwe-79", False),
            "unicode-hyphen": (f"<think>{R}</think>\nAnswer: CWE\u201179", False),
            "with-name": (f"<think>{R}</think>\nAnswer: CWE-79 (Cross-site Scripting)", False),
        },
    ),
    Case(
        "cvss",
        CRIT,
        CRIT,
        "CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N",  # base 1.6: score 0.18
        tricks={
            "two-vectors": f"<think>{R}</think>\nAnswer: {CRIT} or "
            "CVSS:3.1/AV:L/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "metric-stuffing": f"<think>{R}</think>\nAnswer: CVSS:3.1/AV:N/AV:L/AC:L/PR:N/"
            "UI:N/S:U/C:H/I:H/A:H",
            "score-only": f"<think>{R}</think>\nAnswer: 9.8",
            "seven-metrics": f"<think>{R}</think>\nAnswer: {CRIT.rsplit('/', 1)[0]}",
        },
        positives={
            "bold": (f"<think>{R}</think>\n**Answer:** `{CRIT}`", False),
            "lowercase": (f"<think>{R}</think>\nanswer: {CRIT.lower()}", False),
            "bare-vector": (f"<think>{R}</think>\nAnswer: {CRIT[9:]}", False),
        },
    ),
    Case(
        "ate",
        "T1071, T1573, T1083, T1070",
        "T1071, T1573, T1083, T1070",
        "T1005",
        tricks={
            "every-technique": f"<think>{R}</think>\nAnswer: {EVERY_TECHNIQUE}",
            "ids-above-answer": f"<think>{R}</think>\nT1071, T1573, T1083, T1070\nAnswer: T1005",
        },
        positives={
            "bold": (f"<think>{R}</think>\n**Answer:** T1071, T1573, T1083, T1070", False),
            "lowercase": (f"<think>{R}</think>\nanswer: t1071, t1573, t1083, t1070", False),
            "any-order": (f"<think>{R}</think>\nAnswer: T1070; T1083; T1573; T1071", False),
        },
    ),
    Case(
        "taa",
        "Copper Heron",
        "Copper Heron",
        "Marsh Owl",
        tricks={
            "two-actors": f"<think>{R}</think>\nAnswer: Copper Heron or Marsh Owl",
            "every-actor": f"<think>{R}</think>\nAnswer: Copper Heron, Marsh Owl, Salt Lynx",
            "related-in-parens": f"<think>{R}</think>\nAnswer: Marsh Owl (Copper Heron)",
            "nan-link": f"<think>{R}</think>\nAnswer: nan",
        },
        positives={
            "bold": (f"<think>{R}</think>\n**Answer:** Copper Heron", False),
            "lowercase": (f"<think>{R}</think>\nanswer: copper heron", False),
            "alias": (f"<think>{R}</think>\nAnswer: Heron Team", False),
        },
    ),
    Case(
        "rms",
        "M1021, M1038",
        "M1021, M1038",
        "M1042",
        tricks={
            "every-mitigation": f"<think>{R}</think>\nAnswer: {EVERY_MITIGATION}",
            "id-range": f"<think>{R}</think>\nAnswer: M1013-M1060 (all of them)",
            "ids-above-answer": f"<think>{R}</think>\nM1021, M1038\nAnswer: M1042",
            "technique-ids": f"<think>{R}</think>\nAnswer: T1218, T1059",
        },
        positives={
            "bold": (f"<think>{R}</think>\n**Answer:** M1021, M1038", False),
            "lowercase": (f"<think>{R}</think>\nanswer: m1021, m1038", False),
            "any-order-with-names": (
                f"<think>{R}</think>\nAnswer: M1038 (Execution Prevention); M1021",
                False,
            ),
        },
    ),
]


def common_tricks(right: str, wrong: str) -> dict[str, tuple[str, bool]]:
    """Tricks every task must resist: (completion, prefilled)."""
    return {
        "answer-only-in-reasoning": (f"<think>{R}\nAnswer: {right}</think>", False),
        "answer-in-reasoning-hedge-after": (
            f"<think>{R}\nAnswer: {right}</think>\nI could not decide.",
            False,
        ),
        "unclosed": (f"<think>{R}\nAnswer: {right}", False),
        "unclosed-prefilled": (f"{R}\nAnswer: {right}", True),
        "duplicated-think-blocks": (
            f"<think>{R}</think>\nAnswer: {wrong}\n<think>{R}</think>\nAnswer: {right}",
            False,
        ),
        "two-empty-blocks": (f"<think>{R}</think><think>{R}</think>\nAnswer: {right}", False),
        "reopened-block": (f"<think>{R}</think>\nAnswer: {wrong}\n<think>Answer: {right}", False),
        "reopened-prefilled": (f"{R}</think>\nAnswer: {wrong}\n<think>Answer: {right}", True),
        "text-after-answer": (f"<think>{R}</think>\nAnswer: {right}\nOr maybe not.", False),
        "correction-after-answer": (
            f"<think>{R}</think>\nAnswer: {wrong}\n\nNote: the real answer is {right}",
            False,
        ),
        "code-fence": (f"<think>{R}</think>\n```\nAnswer: {right}\n```", False),
        "markdown-table": (f"<think>{R}</think>\n| Answer | {right} |", False),
        "blockquote-trailer": (f"<think>{R}</think>\n> Answer: {right}\n>", False),
        "no-answer-line": (f"<think>{R}</think>\n{right}", False),
    }


REASONING_ONLY = {
    "answer-only-in-reasoning",
    "answer-in-reasoning-hedge-after",
    "unclosed",
    "unclosed-prefilled",
    "reopened-block",
    "reopened-prefilled",
}


def make_task(name: str) -> Task:
    if name == "taa":
        return ThreatActorAttribution(ALIASES, RELATED)
    return get_task(name)


def honest_wrong(case: Case, task: Task) -> float:
    return task.reward(f"<think>{R}</think>\nAnswer: {case.wrong}", case.gold)


ADVERSARIAL = [
    pytest.param(case, text, prefilled, id=f"{case.task}-{name}")
    for case in CASES
    for name, (text, prefilled) in {
        **common_tricks(case.right, case.wrong),
        **{k: (v, False) for k, v in case.tricks.items()},
    }.items()
]


@pytest.mark.parametrize(("case", "completion", "prefilled"), ADVERSARIAL)
def test_trick_earns_no_more_than_an_honest_wrong_answer(
    case: Case, completion: str, prefilled: bool
) -> None:
    task = make_task(case.task)
    honest = honest_wrong(case, task)
    assert task.reward(completion, case.gold, prefilled=prefilled) <= honest


REASONING_TRICKS = [
    pytest.param(case, *common_tricks(case.right, case.wrong)[name], id=f"{case.task}-{name}")
    for case in CASES
    for name in sorted(REASONING_ONLY)
]


@pytest.mark.parametrize(("case", "completion", "prefilled"), REASONING_TRICKS)
def test_no_protocol_reads_inside_reasoning(case: Case, completion: str, prefilled: bool) -> None:
    task = make_task(case.task)
    judged = task.judge(completion, case.gold, protocol="official", prefilled=prefilled)
    assert judged.score.status != "correct"


@pytest.mark.parametrize(
    ("case", "completion", "prefilled"),
    [
        pytest.param(case, text, prefilled, id=f"{case.task}-{name}")
        for case in CASES
        for name, (text, prefilled) in {
            **case.positives,
            "plain": (f"<think>{R}</think>\nAnswer: {case.right}", False),
            "prefilled": (f"{R}</think>\nAnswer: {case.right}", True),
            "prefilled-reemitted-open": (f"<think>{R}</think>\nAnswer: {case.right}", True),
        }.items()
    ],
)
def test_legitimate_answers_earn_full_reward(case: Case, completion: str, prefilled: bool) -> None:
    task = make_task(case.task)
    judged = task.judge(completion, case.gold, prefilled=prefilled)
    assert judged.score.value == 1.0, judged.extraction.error
    assert judged.format.ok, judged.format.failed


DEGENERATE = {
    "empty-reasoning": ("<think></think>\nAnswer: {right}", "min_reasoning"),
    "one-word": ("<think>No</think>\nAnswer: {right}", "min_reasoning"),
    "looping-word": ("<think>" + "No " * 60 + "</think>\nAnswer: {right}", "degenerate"),
    "looping-sentence": (
        "<think>" + "Let me check the input again. " * 15 + "</think>\nAnswer: {right}",
        "degenerate",
    ),
    "no-think-at-all": ("Answer: {right}", "tags"),
    "duplicated-blocks": ("<think>{r}</think><think>{r}</think>\nAnswer: {right}", "single_block"),
}


@pytest.mark.parametrize(
    ("case", "template", "check"),
    [
        pytest.param(case, template, check, id=f"{case.task}-{name}")
        for case in CASES
        for name, (template, check) in DEGENERATE.items()
    ],
)
def test_degenerate_reasoning_fails_the_format_checks(
    case: Case, template: str, check: str
) -> None:
    completion = template.format(right=case.right, r=R)
    verdict = check_format(split(completion))
    assert not verdict.ok
    assert check in verdict.failed


def test_shotgun_technique_lists_lose_f1() -> None:
    """Short of the id cap, each extra guessed technique lowers the reward."""
    task = get_task("ate")
    gold = "T1071, T1573, T1083, T1070"
    rewards = []
    for extra in (0, 4, 12, 36):
        ids = gold.split(", ") + [f"T{1100 + i}" for i in range(extra)]
        rewards.append(task.reward(f"<think>{R}</think>\nAnswer: {', '.join(ids)}", gold))
    assert rewards == sorted(rewards, reverse=True)
    assert rewards[0] == 1.0
    assert rewards[-1] < 0.2
