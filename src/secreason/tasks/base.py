"""The task contract: one object builds a prompt, extracts an answer and scores it.

The same task object scores an evaluation, filters a teacher trace and computes an RL
reward, so training and evaluation can never disagree (the reward *is* the score).

Two extraction protocols exist:

* ``strict`` (default): only the answer region of the reasoning contract is read and
  the answer must stand on its LAST non-empty line as ``Answer: X``. A line naming
  more than one distinct candidate is invalid.
* ``official``: a benchmark's published extraction rule, reproduced exactly, so that
  published numbers can be reproduced. It still never reads inside the reasoning.
"""

from __future__ import annotations

import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from secreason.reasoning import THINK, FormatConfig, FormatVerdict, Split, Tags, check_format, split

Protocol = Literal["strict", "official"]
PROTOCOLS: tuple[Protocol, ...] = ("strict", "official")
ScoreStatus = Literal["correct", "incorrect", "invalid"]
Message = dict[str, str]


@dataclass
class Sample:
    """One item: a benchmark row, a synthesized training item or an RL prompt.

    ``messages`` are ready to send (system prompt included when the item has one);
    ``reference`` is the gold answer as a string; ``meta`` carries the task's extras
    (options, topic, provenance, ...).
    """

    id: str
    task: str
    messages: list[Message]
    reference: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Extraction:
    """What a task read from an answer: ``value`` is None when nothing valid was found."""

    value: Any
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.value is not None


@dataclass(frozen=True)
class Score:
    value: float
    status: ScoreStatus
    details: dict[str, Any] = field(default_factory=dict)


def invalid(error: str | None) -> Score:
    return Score(0.0, "invalid", {"error": error} if error else {})


@dataclass(frozen=True)
class Judgement:
    """Everything known about one completion: the split, its format, the answer, the score."""

    split: Split
    format: FormatVerdict
    extraction: Extraction
    score: Score

    def as_dict(self) -> dict[str, Any]:
        return {
            "answer": _jsonable(self.extraction.value),
            "score": self.score.value,
            "status": self.score.status,
            "details": self.score.details,
            "format": {
                "status": self.split.status,
                "ok": self.format.ok,
                "failed": list(self.format.failed),
                "reasoning_words": self.format.reasoning_words,
            },
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return value


# ------------------------------------------------------------------ answer-line helpers

_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"), "-")
#: Words that rule the candidate after them out ("B, not C", "rather than C").
RULING_OUT = r"(?:not|than|of|over|except|excluding|unlike|never|instead|without)\b"
#: Up to two words between a joiner and a second candidate ("B, or maybe C"), none of
#: them one that rules it out.
HEDGE_FILLER = rf"(?:(?!{RULING_OUT})[a-z]+\s+){{0,2}}"
_ANSWER_LINE = re.compile(r"^\W*(?:final\s+)?answer\s*(?:is)?\s*[:：=]\s*(.*)$", re.IGNORECASE)


def visible(text: str) -> str:
    """``text`` without invisible format characters (Unicode category Cf: zero-width
    spaces and joiners, word joiner, BOM, soft hyphen, bidi marks, tag characters). A
    model or a copy-paste leaves them after an honest ``Answer: B``; they carry no
    answer, and a hedge hidden behind one (``B\u200b, C``) shows once they are gone."""
    if text.isascii():
        return text
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def normalize(text: str) -> str:
    """Invisible characters dropped, NFKC, unicode dashes to '-', markdown emphasis and
    backticks removed (strict reading; official rules read the text as their authors did)."""
    text = unicodedata.normalize("NFKC", visible(text)).translate(_DASHES)
    return re.sub(r"[*_`]+", "", text)


def last_line(text: str) -> str:
    """The last line with something visible on it, stripped."""
    for line in reversed(text.splitlines()):
        if visible(line).strip():
            return line.strip()
    return ""


def strict_answer(answer_text: str) -> Extraction:
    """Read ``Answer: ...`` from the last non-empty line; return the payload as a string."""
    raw = last_line(answer_text)
    if not raw:
        return Extraction(None, "empty answer")
    line = normalize(raw).strip()
    match = _ANSWER_LINE.match(line)
    if not match:
        return Extraction(None, "last line is not 'Answer: ...'")
    payload = match.group(1).strip().strip(".").strip()
    if not payload:
        return Extraction(None, "empty 'Answer:' line")
    return Extraction(payload)


# ------------------------------------------------------------------------------ task


class Task(ABC):
    """A verifiable task. Subclasses define ``name``, the template and the three verbs."""

    name: str = ""
    prompt_version: str = "1"

    @abstractmethod
    def prompt(self, sample: Sample) -> list[Message]:
        """Messages for this task's own prompt template (strict protocol)."""

    @abstractmethod
    def extract(self, answer_text: str, protocol: Protocol = "strict") -> Extraction:
        """Read the answer from the answer region (never from the reasoning)."""

    @abstractmethod
    def score(self, extracted: Extraction, reference: str) -> Score:
        """Score an extraction against the gold reference string."""

    def aggregate(self, scores: Sequence[Score]) -> dict[str, float]:
        """The task's natural metrics over many items (default: mean score and rates)."""
        n = len(scores)
        if not n:
            return {"n": 0}
        correct = sum(s.status == "correct" for s in scores)
        valid = sum(s.status != "invalid" for s in scores)
        return {
            "n": n,
            "mean": sum(s.value for s in scores) / n,
            "accuracy": correct / n,
            "invalid_rate": (n - valid) / n,
            # CTIBench's notebooks divide by the parseable answers only: report both.
            "n_valid": valid,
            "accuracy_valid": correct / valid if valid else 0.0,
        }

    # The one path from a completion to a score, shared by evals, data filters and RL.
    def judge(
        self,
        completion: str,
        reference: str,
        *,
        protocol: Protocol = "strict",
        prefilled: bool = False,
        tags: Tags = THINK,
        format_config: FormatConfig = FormatConfig(),
    ) -> Judgement:
        parts = split(completion, prefilled=prefilled, tags=tags)
        verdict = check_format(parts, format_config)
        if protocol == "strict" and parts.status == "multiple":
            extraction = Extraction(None, "several reasoning blocks")
        elif not parts.has_answer_region:
            extraction = Extraction(None, "reasoning never closed")
        else:
            extraction = self.extract(parts.answer, protocol)
        return Judgement(parts, verdict, extraction, self.score(extraction, reference))

    def reward(self, completion: str, reference: str, *, prefilled: bool = False) -> float:
        """The RL reward: the strict score, nothing else (format is a separate reward)."""
        return self.judge(completion, reference, prefilled=prefilled).score.value


# -------------------------------------------------------------------------- registry

_REGISTRY: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    _REGISTRY[cls.name] = cls
    return cls


def get_task(name: str, **options: Any) -> Task:
    """Instantiate a registered task by name (options go to its constructor)."""
    from secreason import tasks as _tasks  # noqa: F401  (registers the built-in tasks)

    try:
        cls = _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown task {name!r}; known tasks: {known}") from None
    return cls(**options)


def task_names() -> list[str]:
    from secreason import tasks as _tasks  # noqa: F401

    return sorted(_REGISTRY)
