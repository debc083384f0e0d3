"""The reasoning contract: splitting by strings and by token ids, and the format checks."""

from __future__ import annotations

import pytest

from secreason.reasoning import (
    FOUNDATION_SEC_THINK_IDS,
    FormatConfig,
    Split,
    Tags,
    check_format,
    repeat_ratio,
    split,
    split_ids,
)

GOOD = "The input is echoed into the page without encoding, so stored script executes."


@pytest.mark.parametrize(
    ("text", "prefilled", "status", "reasoning", "answer", "blocks"),
    [
        (f"<think>{GOOD}</think>\nAnswer: B", False, "closed", GOOD, "Answer: B", 1),
        (f"  <think>\n{GOOD}\n</think>  \n\nAnswer: B \n", False, "closed", GOOD, "Answer: B", 1),
        ("Answer: B", False, "no_reasoning", "", "Answer: B", 0),
        ("", False, "no_reasoning", "", "", 0),
        (f"<think>{GOOD}\nAnswer: B", False, "unclosed", f"{GOOD}\nAnswer: B", "", 1),
        (f"{GOOD}\nAnswer: B", True, "unclosed", f"{GOOD}\nAnswer: B", "", 1),
        (f"{GOOD}</think>Answer: B", True, "prefilled", GOOD, "Answer: B", 1),
        (f"{GOOD}</think>Answer: B", False, "prefilled", GOOD, "Answer: B", 1),
        (f"<think>{GOOD}</think>Answer: B", True, "prefilled", GOOD, "Answer: B", 1),
        ("<think>a</think><think>b</think>Answer: C", False, "multiple", "a  b", "Answer: C", 2),
        (
            "<think>a</think>Answer: B<think>b</think>Answer: C",
            False,
            "multiple",
            None,
            "Answer: C",
            2,
        ),
        ("<think>a<think>b</think>Answer: C", False, "multiple", "a b", "Answer: C", 1),
        # Reopened after the last close: the tail is reasoning, never answer.
        ("a</think>Answer: B\n<think>Answer: C", True, "multiple", "a Answer: C", "Answer: B", 2),
        ("<think>a</think>B<think>Answer: C", False, "multiple", "a Answer: C", "B", 2),
    ],
    ids=[
        "closed",
        "closed-whitespace",
        "no-reasoning",
        "empty",
        "unclosed",
        "unclosed-prefilled",
        "prefilled",
        "close-only-unflagged",
        "prefilled-reemitted-open",
        "two-blocks",
        "answer-between-blocks",
        "nested-open",
        "reopened-prefilled",
        "reopened",
    ],
)
def test_split(
    text: str,
    prefilled: bool,
    status: str,
    reasoning: str | None,
    answer: str,
    blocks: int,
) -> None:
    got = split(text, prefilled=prefilled)
    assert got.status == status
    assert got.answer == answer
    assert got.blocks == blocks
    if reasoning is not None:
        assert got.reasoning == reasoning


def test_unclosed_answer_is_empty_never_the_reasoning() -> None:
    got = split("<think>Answer: A\nAnswer: B")
    assert got.answer == ""
    assert not got.has_answer_region


def test_answer_is_after_the_last_close() -> None:
    got = split("<think>x</think>Answer: A</think>Answer: D")
    assert (got.status, got.answer) == ("multiple", "Answer: D")


def test_leading_text_is_kept_apart() -> None:
    got = split(f"Sure!<think>{GOOD}</think>Answer: B")
    assert (got.status, got.leading, got.answer) == ("closed", "Sure!", "Answer: B")


def test_custom_tags() -> None:
    tags = Tags("<reasoning>", "</reasoning>")
    got = split(f"<reasoning>{GOOD}</reasoning>Answer: B", tags=tags)
    assert (got.status, got.reasoning) == ("closed", GOOD)
    assert split(f"<think>{GOOD}</think>Answer: B", tags=tags).status == "no_reasoning"


OPEN, CLOSE = FOUNDATION_SEC_THINK_IDS  # 128267, 128268


@pytest.mark.parametrize(
    ("ids", "prefilled", "status", "reasoning", "answer"),
    [
        ([OPEN, 1, 2, CLOSE, 3, 4], False, "closed", [1, 2], [3, 4]),
        ([1, 2, CLOSE, 3], True, "prefilled", [1, 2], [3]),
        ([1, 2, CLOSE, 3], False, "prefilled", [1, 2], [3]),
        ([OPEN, 1, 2], False, "unclosed", [1, 2], []),
        ([1, 2], True, "unclosed", [1, 2], []),
        ([1, 2, 3], False, "no_reasoning", [], [1, 2, 3]),
        ([OPEN, 1, CLOSE, OPEN, 2, CLOSE, 3], False, "multiple", [1, 2], [3]),
        ([OPEN, 1, CLOSE, 3, OPEN, 4], False, "multiple", [1, 4], [3]),
        ([9, OPEN, 1, CLOSE, 3], False, "closed", [1], [3]),
    ],
    ids=[
        "closed",
        "prefilled",
        "close-only",
        "unclosed",
        "unclosed-prefilled",
        "no-reasoning",
        "multiple",
        "reopened",
        "leading",
    ],
)
def test_split_ids(
    ids: list[int], prefilled: bool, status: str, reasoning: list[int], answer: list[int]
) -> None:
    got = split_ids(ids, OPEN, CLOSE, prefilled=prefilled)
    assert (got.status, got.reasoning_ids, got.answer_ids) == (status, reasoning, answer)


def test_split_ids_leading_ids() -> None:
    assert split_ids([9, 8, OPEN, 1, CLOSE, 3], OPEN, CLOSE).leading_ids == [9, 8]


def test_string_split_misses_dropped_special_tokens_but_id_split_does_not() -> None:
    """Why split_ids exists: decoding that skips special tokens erases the delimiters."""
    decoded_without_specials = "reasoning words here Answer: B"
    assert split(decoded_without_specials).status == "no_reasoning"
    assert split_ids([5, 6, CLOSE, 7], OPEN, CLOSE, prefilled=True).status == "prefilled"


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("", 0.0, 0.0),
        ("one", 0.0, 0.0),
        ("No No No No No No No No No No", 0.8, 1.0),
        ("the cat sat. " * 20, 0.8, 1.0),
        (GOOD, 0.0, 0.0),
        ("A a A", 0.6, 0.7),  # short and case-folded: single-word repetition
    ],
)
def test_repeat_ratio(text: str, low: float, high: float) -> None:
    assert low <= repeat_ratio(text) <= high


def _split(reasoning: str, answer: str = "Answer: B", status: str = "closed") -> Split:
    return Split(reasoning, answer, status, blocks=1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("parts", "failed"),
    [
        (_split(GOOD), ()),
        (_split(GOOD, status="prefilled"), ()),
        (_split(GOOD, status="no_reasoning"), ("tags",)),
        (_split(GOOD, answer="", status="unclosed"), ("tags", "answer")),
        (Split(GOOD, "Answer: B", "closed", leading="Hi", blocks=1), ("tags",)),
        (_split(GOOD, status="multiple"), ("tags", "single_block")),
        (_split("Too short."), ("min_reasoning",)),
        (_split("loop " * 40), ("degenerate",)),
        (_split("I check the input. " * 10), ("degenerate",)),
        (_split(GOOD, answer="   "), ("answer",)),
        (_split(""), ("min_reasoning",)),
    ],
    ids=[
        "ok",
        "prefilled-ok",
        "no-tags",
        "unclosed",
        "leading-text",
        "multiple",
        "short",
        "one-word-loop",
        "sentence-loop",
        "blank-answer",
        "empty-reasoning",
    ],
)
def test_each_format_check_fails_alone(parts: Split, failed: tuple[str, ...]) -> None:
    verdict = check_format(parts)
    assert verdict.failed == failed
    assert verdict.ok is (not failed)


@pytest.mark.parametrize(
    ("config", "parts"),
    [
        (FormatConfig(require_tags=False), _split(GOOD, status="no_reasoning")),
        (FormatConfig(min_reasoning_words=0), _split("Too short.")),
        (FormatConfig(max_repeat_ratio=1.0), _split("loop " * 40)),
        (FormatConfig(require_answer=False), _split(GOOD, answer="")),
    ],
    ids=["tags-off", "min-words-off", "degenerate-off", "answer-off"],
)
def test_checks_can_be_switched_off(config: FormatConfig, parts: Split) -> None:
    assert check_format(parts, config).ok


def test_verdict_reports_counts() -> None:
    verdict = check_format(_split(GOOD))
    assert verdict.reasoning_words == len(GOOD.split())
    assert verdict.repeat_ratio == 0.0
