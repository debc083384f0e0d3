"""MCQ: strict letter reading, letter sets, and CTIBench-MCQ's official last-line rule."""

from __future__ import annotations

import csv

import pytest

from secreason.tasks import get_task
from secreason.tasks.base import Extraction, Sample
from secreason.tasks.mcq import MCQ, ctibench_official

THINK = "<think>Option B names the control that blocks unsigned downloads.</think>\n"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Answer: B", "B"),
        ("answer: b", "B"),
        ("Answer: (B)", "B"),
        ("**Answer:** B", "B"),
        ("**Answer: B**", "B"),
        ("Answer: B) Execution Prevention", "B"),
        ("Answer: B. Execution Prevention", "B"),
        ("Answer: B and B", "B"),
        ("Answer: B) A firewall, or a proxy", "B"),  # a lone article is not a letter
        ("Answer: B) Use A/B testing", "B"),
        ("Answer: B, B", "B"),  # one distinct letter
        # a letter ruled out is not a second candidate
        ("Answer: B) Phishing, not C.", "B"),
        ("Answer: B) Phishing, rather than C.", "B"),
        ("Answer: B) Phishing, and not D.", "B"),
        ("Answer: B) Phishing, instead of A.", "B"),
        ("Final Answer: D", "D"),
    ],
    ids=lambda v: repr(v)[:30],
)
def test_strict_single_letter(answer: str, expected: str) -> None:
    got = MCQ().extract(answer, "strict")
    assert got.value == expected, got.error


@pytest.mark.parametrize(
    "answer",
    [
        "B",
        "Answer: A, B",
        "Answer: A and C",
        "Answer: B or C",
        "Answer: B) Phishing, or C.",
        "Answer: B, possibly D",
        "Answer: B) Phishing, or maybe C.",
        "Answer: ABCD",
        "Answer: E",  # not an option of a four-letter question
        "Answer: Execution Prevention",
        "Answer: B\nbecause it blocks downloads",
        "",
    ],
    ids=lambda v: repr(v)[:30],
)
def test_strict_invalid(answer: str) -> None:
    assert MCQ().extract(answer, "strict").value is None


def test_five_letters() -> None:
    assert MCQ(letters="ABCDE").extract("Answer: E", "strict").value == "E"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Answer: A, C", "AC"),
        ("Answer: C and A", "AC"),
        ("Answer: (A) (C)", "AC"),
        ("Answer: B", "B"),
        ("Answer: A/B/D", "ABD"),
        ("Answer: A and B", "AB"),
    ],
)
def test_multi_answer_sets(answer: str, expected: str) -> None:
    assert MCQ(multi=True).extract(answer, "strict").value == expected


def test_multi_answer_is_an_exact_set_match() -> None:
    task = MCQ(multi=True)
    assert task.score(Extraction("AC"), "CA").status == "correct"
    assert task.score(Extraction("A"), "AC").status == "incorrect"
    assert task.score(Extraction("ABC"), "AC").status == "incorrect"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Reasoning.\nB) Execution Prevention", "B"),  # starts with a letter and ')'
        ("Reasoning.\nThe answer is B", "B"),  # ends with the letter
        ("Reasoning.\n**Answer: C**", "C"),  # ends with ** -> third from the end
        ("Reasoning.\nAnswer: D\n", "D"),  # empty last line -> the line before
        ("Reasoning.\nAnswer: D   ", "D"),  # trailing whitespace stripped
        ("Answer: B\nHope that helps.", None),
        ("Reasoning.\nAnswer: b", None),  # case-sensitive
        ("Reasoning.\n**:**", None),  # ** with a non-letter third from the end
        ("Reasoning.\nI cannot answer. X**", "X"),  # X counts as a (wrong) answer
        ("Reasoning.\nAnswer: A\n\n", None),  # two empty lines: no fallback that far
        ("B", "B"),
    ],
    ids=lambda v: repr(v)[:30],
)
def test_ctibench_official_rule(text: str, expected: str | None) -> None:
    assert ctibench_official(text).value == expected
    assert MCQ().extract(text, "official").value == expected


@pytest.mark.parametrize(
    ("completion", "protocol", "status"),
    [
        (THINK + "Answer: B", "strict", "correct"),
        (THINK + "Answer: C", "strict", "incorrect"),
        (THINK + "B", "strict", "invalid"),
        (THINK + "B", "official", "correct"),
        ("<think>Answer: B</think>", "official", "invalid"),
        ("<think>Answer: B", "official", "invalid"),
        ("<think>a</think>Answer: A<think>b</think>Answer: B", "strict", "invalid"),
        ("<think>a</think>Answer: A<think>b</think>Answer: B", "official", "correct"),
    ],
)
def test_judge(completion: str, protocol: str, status: str) -> None:
    score = MCQ().judge(completion, "B", protocol=protocol).score  # type: ignore[arg-type]
    assert score.status == status


def test_lower_case_gold_is_upper_cased() -> None:
    """CTIBench-MCQ has one lower-case gold label ('b')."""
    assert MCQ().judge(THINK + "Answer: B", "b").score.status == "correct"
    assert MCQ().judge(THINK + "B", "b", protocol="official").score.status == "correct"


def test_reward_is_the_strict_score() -> None:
    task = get_task("mcq")
    assert task.reward(THINK + "Answer: B", "B") == 1.0
    assert task.reward(THINK + "B", "B") == 0.0


def test_prompt_lists_options() -> None:
    sample = Sample(
        "1", "mcq", [], "B", {"question": "Which control?", "options": {"A": "x", "B": "y"}}
    )
    (message,) = MCQ().prompt(sample)
    assert "Which control?" in message["content"]
    assert "A) x\nB) y" in message["content"]


def test_real_mcq_labels(shared_benchmarks) -> None:
    path = shared_benchmarks / "ctibench" / "cti-mcq.tsv"
    if not path.is_file():
        pytest.skip("cti-mcq.tsv is absent")
    csv.field_size_limit(1 << 30)
    with path.open(encoding="utf-8") as handle:
        golds = [row["GT"] for row in csv.DictReader(handle, delimiter="\t")]
    task = MCQ()
    assert any(g.islower() for g in golds)  # the quirk this task handles
    for gold in golds:
        reply = f"{THINK}Answer: {gold.upper()}"
        assert task.judge(reply, gold).score.status == "correct"
