"""The reasoning contract: how a completion splits into reasoning and answer.

Every stage of secreason (evaluation, teacher filtering, RL rewards, serving) reads
completions through this one module, so they can never disagree about where the
answer is. The rules:

* The answer is the text after the LAST closing tag. An answer is never read from
  inside reasoning: a completion whose reasoning never closes has an EMPTY answer, and
  a block reopened after the last closing tag ends the answer (status ``multiple``).
* Some chat templates (Foundation-Sec-8B-Reasoning's among them) end the prompt with
  ``<think>\\n``; the completion then starts inside the reasoning (``prefilled``).
* Some tokenizers make the tags special tokens that decoding drops, so the split can
  also be done on token ids (:func:`split_ids`).

The format checks here are what the RL format penalty uses to stop a model from
learning to skip its reasoning (``<think> No</think>`` for everything).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["closed", "unclosed", "no_reasoning", "multiple", "prefilled"]
STATUSES: tuple[Status, ...] = ("closed", "unclosed", "no_reasoning", "multiple", "prefilled")


@dataclass(frozen=True)
class Tags:
    """The reasoning delimiters, as strings."""

    open: str = "<think>"
    close: str = "</think>"


THINK = Tags()

# Token ids of Foundation-Sec-8B-Reasoning's reasoning delimiters (special tokens).
FOUNDATION_SEC_THINK_IDS = (128267, 128268)


@dataclass(frozen=True)
class Split:
    """The contract's verdict on one completion.

    ``leading`` is any text before the opening tag (a well-formed completion has none).
    ``blocks`` counts the reasoning blocks seen (closing tags, or one unclosed block).
    """

    reasoning: str
    answer: str
    status: Status
    leading: str = ""
    blocks: int = 0

    @property
    def has_answer_region(self) -> bool:
        """True when there is a place an answer may be read from."""
        return self.status != "unclosed"


def split(text: str, *, prefilled: bool = False, tags: Tags = THINK) -> Split:
    """Split a decoded completion into reasoning and answer.

    ``prefilled`` says the prompt already ended with the opening tag, so the completion
    starts inside the reasoning.
    """
    n_open = text.count(tags.open)
    n_close = text.count(tags.close)
    if n_close == 0:
        if n_open == 0 and not prefilled:
            return Split("", text.strip(), "no_reasoning")
        start = text.find(tags.open)
        leading = text[:start].strip() if start >= 0 else ""
        body = text[start + len(tags.open) :] if start >= 0 else text
        return Split(body.strip(), "", "unclosed", leading=leading, blocks=max(1, n_open))

    last = text.rfind(tags.close)
    answer = text[last + len(tags.close) :]
    head = text[:last]
    first_open = head.find(tags.open)
    leading = head[:first_open].strip() if first_open >= 0 else ""
    body_start = first_open + len(tags.open) if first_open >= 0 else 0
    reasoning = head[body_start:].replace(tags.open, " ").replace(tags.close, " ").strip()
    blocks = n_close

    reopen = answer.find(tags.open)
    if reopen >= 0:
        # A block reopened after the last closing tag never closes: what follows it is
        # reasoning, never answer ("...</think>Answer: B <think>Answer: C").
        tail = answer[reopen + len(tags.open) :].replace(tags.open, " ").strip()
        reasoning = f"{reasoning} {tail}".strip()
        return Split(reasoning, answer[:reopen].strip(), "multiple", leading, blocks + 1)
    answer = answer.strip()
    if n_close > 1 or n_open > 1:
        return Split(reasoning, answer, "multiple", leading=leading, blocks=blocks)
    if n_open == 0:
        # Only a closing tag: the prompt opened the reasoning, flagged or not.
        return Split(reasoning, answer, "prefilled", blocks=1)
    if prefilled:
        # The model re-emitted the prefilled opening tag: tolerated.
        return Split(reasoning, answer, "prefilled", leading=leading, blocks=1)
    return Split(reasoning, answer, "closed", leading=leading, blocks=1)


@dataclass(frozen=True)
class IdSplit:
    """A split on token ids, for tokenizers whose delimiters are special tokens."""

    reasoning_ids: list[int]
    answer_ids: list[int]
    status: Status
    leading_ids: list[int] = field(default_factory=list)


def split_ids(
    ids: Sequence[int], open_id: int, close_id: int, *, prefilled: bool = False
) -> IdSplit:
    """Split a completion's token ids; same rules as :func:`split`."""
    ids = list(ids)
    n_open = ids.count(open_id)
    n_close = ids.count(close_id)
    if n_close == 0:
        if n_open == 0 and not prefilled:
            return IdSplit([], ids, "no_reasoning")
        start = ids.index(open_id) if n_open else -1
        return IdSplit(ids[start + 1 :], [], "unclosed", leading_ids=ids[: max(start, 0)])
    last = len(ids) - 1 - ids[::-1].index(close_id)
    answer = ids[last + 1 :]
    head = ids[:last]
    first_open = head.index(open_id) if open_id in head else -1
    reasoning = [t for t in head[first_open + 1 :] if t not in (open_id, close_id)]
    leading = head[:first_open] if first_open >= 0 else []
    if open_id in answer:
        # Reopened after the last closing tag: the rest is reasoning, as in split().
        reopen = answer.index(open_id)
        reasoning += [t for t in answer[reopen + 1 :] if t != open_id]
        return IdSplit(reasoning, answer[:reopen], "multiple", leading_ids=leading)
    if n_close > 1 or n_open > 1:
        status: Status = "multiple"
    elif n_open == 0 or prefilled:
        status = "prefilled"
    else:
        status = "closed"
    return IdSplit(reasoning, answer, status, leading_ids=leading)


# ---------------------------------------------------------------------------- format


@dataclass(frozen=True)
class FormatConfig:
    """Thresholds of the format checks; each check can be switched off.

    ``max_repeat_ratio`` bounds the share of repeated word n-grams in the reasoning
    ("No No No ..." or a looping sentence scores near 1).
    """

    require_tags: bool = True
    require_single_block: bool = True
    min_reasoning_words: int = 5
    max_repeat_ratio: float = 0.5
    repeat_ngram: int = 3
    require_answer: bool = True


@dataclass(frozen=True)
class FormatVerdict:
    ok: bool
    failed: tuple[str, ...]
    reasoning_words: int
    repeat_ratio: float


CHECKS = ("tags", "single_block", "min_reasoning", "degenerate", "answer")


def repeat_ratio(text: str, n: int = 3) -> float:
    """Share of word n-grams that repeat an earlier one (0 = none, ->1 = a loop)."""
    return _repeat_ratio(text.lower().split(), n)


def _repeat_ratio(words: list[str], n: int) -> float:
    # str.split() and zip() rather than a regex and tuple slices: this runs on every
    # completion an RL step or a benchmark scores (~6x faster on 300 words).
    if len(words) < n + 1:
        # Too short for n-grams: judge single-word repetition instead.
        if len(words) < 2:
            return 0.0
        return 1.0 - len(set(words)) / len(words)
    grams = set(zip(*(words[i:] for i in range(n)), strict=False))  # shifted views
    return 1.0 - len(grams) / (len(words) - n + 1)


def check_format(s: Split, config: FormatConfig = FormatConfig()) -> FormatVerdict:
    """Run the format checks on a split; report every check that failed, by name."""
    failed: list[str] = []
    tokens = s.reasoning.lower().split()
    words = len(tokens)
    ratio = _repeat_ratio(tokens, config.repeat_ngram)
    if config.require_tags and (
        s.status in ("no_reasoning", "unclosed", "multiple") or bool(s.leading)
    ):
        failed.append("tags")
    if config.require_single_block and s.status == "multiple":
        failed.append("single_block")
    if words < config.min_reasoning_words:
        failed.append("min_reasoning")
    if words and ratio > config.max_repeat_ratio:
        failed.append("degenerate")
    if config.require_answer and not s.answer.strip():
        failed.append("answer")
    return FormatVerdict(not failed, tuple(failed), words, ratio)
