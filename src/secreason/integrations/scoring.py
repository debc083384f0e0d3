"""The one reward every trainer adapter calls: task score plus the format penalty.

TRL (``secreason.train.rewards``) gets the task score and the format penalty as two
weighted reward functions; verl and OpenRLHF want one number per completion. Both read
the completion through :meth:`Task.judge` (the reasoning contract's split, its format
checks, the task's strict extraction and score), so the total here equals TRL's
weighted sum for the same completion: ``task_score - format_penalty`` when the format
checks fail, ``task_score`` otherwise.

Trainers hand the text over in different shapes, and the differences are handled here
once, never by a second parser:

* a template that prefills ``<think>``: the completion has only ``</think>``; the
  contract reads that as reasoning closed by the prompt (``prefilled`` is only needed
  to tell an unclosed block from a completion without reasoning);
* a completion decoded with its special tokens (OpenRLHF): trailing end-of-turn and
  padding markers (``<|end|>``, ``</s>``, ``<|eot_id|>``...) are cut before scoring,
  since the answer must stand on the last line;
* think tags that are *special* tokens decoded with ``skip_special_tokens=True`` (verl's
  default): the tags are gone and no text rule can find the reasoning again. The task
  score still reads the last line; the format verdict then fails ``tags``. Decode with
  the tags kept, or make them ordinary tokens (as ``secreason.train.tiny`` does).

A gold answer must be one the task can pay: its own ``Answer: <gold>`` line must score 1
(:meth:`Scorer.check_gold`, through the task itself, cached per gold), so that a
misconfigured dataset fails loudly instead of training on a reward of zero. How the
trainers' odd input shapes are read is :mod:`secreason.integrations.inputs`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from secreason.integrations.inputs import as_text, check_penalty
from secreason.reasoning import FormatConfig
from secreason.tasks import get_task, task_names
from secreason.tasks.base import Task

# End-of-turn / padding markers as tokenizers spell them: <|...|>, DeepSeek's <｜...｜>,
# and the classic </s>, <eos>, <pad>, <end_of_turn>.
_MARKER = r"<\|[^<>|\s]{1,64}\|>|<｜[^<>｜]{1,64}｜>|</s>|<eos>|<pad>|<end_of_turn>"
_LAST_MARKER = re.compile(rf"(?:{_MARKER})\Z")

METRIC_KEYS = (
    "score",
    "acc",
    "task_score",
    "format_ok",
    "reasoning_words",
    "answer_words",
    "unclosed",
)


class RoutingError(ValueError):
    """A completion names no task secreason can score."""


@dataclass(frozen=True)
class RewardConfig:
    """What the TRL recipe calls ``format_penalty`` and the format check thresholds."""

    format_config: FormatConfig = FormatConfig()
    format_penalty: float = 1.0
    prefilled: bool = False
    task_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "format_penalty", check_penalty(self.format_penalty))


@dataclass(frozen=True)
class Reward:
    """One scored completion: the total and the per-check details trainers log."""

    task: str
    score: float
    task_score: float
    format_ok: bool
    failed: tuple[str, ...]
    status: str
    reasoning_words: int
    answer_words: int
    answer: Any

    def metrics(self) -> dict[str, float]:
        """Numbers only, always the same keys (verl stacks them per key)."""
        return {
            "score": self.score,
            "acc": float(self.task_score >= 1.0),
            "task_score": self.task_score,
            "format_ok": float(self.format_ok),
            "reasoning_words": float(self.reasoning_words),
            "answer_words": float(self.answer_words),
            "unclosed": float(self.status == "unclosed"),
        }


def strip_end_markers(text: str) -> str:
    """Cut trailing end-of-turn and padding markers a special-token decode leaves (and
    the whitespace around them); a text without them is returned unchanged."""
    out = text
    while True:
        trimmed = out.rstrip()
        # A marker is at most ~70 characters: only the tail is searched, never the text.
        match = _LAST_MARKER.search(trimmed, max(0, len(trimmed) - 72))
        if match is None:
            return text if out is text else trimmed
        out = trimmed[: match.start()]


class Scorer:
    """Scores completions for any registered task; tasks are built once and cached."""

    def __init__(self, config: RewardConfig | None = None) -> None:
        self.config = config or RewardConfig()
        self._tasks: dict[str, Task] = {}
        self._golds: set[tuple[str, str]] = set()

    def task(self, name: str) -> Task:
        if name not in self._tasks:
            options = self.config.task_options.get(name) or {}
            try:
                self._tasks[name] = get_task(name, **dict(options))
            except (TypeError, ValueError) as err:
                raise RoutingError(f"task_options[{name!r}]: {err}") from None
        return self._tasks[name]

    def score(
        self, completion: str, reference: str, task: str, *, prefilled: bool | None = None
    ) -> Reward:
        """The reward of one completion of ``task`` against the gold ``reference``."""
        if task not in task_names():
            raise RoutingError(f"unknown task {task!r}; known tasks: {', '.join(task_names())}")
        if reference is None or not str(reference).strip():
            raise RoutingError(f"task {task!r}: empty reference (gold answer)")
        gold = str(reference)
        self.check_gold(task, gold)
        text = strip_end_markers(as_text(completion, "completion"))
        pre = self.config.prefilled if prefilled is None else prefilled
        judged = self.task(task).judge(
            text, gold, prefilled=pre, format_config=self.config.format_config
        )
        task_score = float(judged.score.value)
        ok = judged.format.ok
        return Reward(
            task=task,
            score=task_score - (0.0 if ok else float(self.config.format_penalty)),
            task_score=task_score,
            format_ok=ok,
            failed=judged.format.failed,
            status=judged.split.status,
            reasoning_words=judged.format.reasoning_words,
            answer_words=len(judged.split.answer.split()),
            answer=judged.extraction.value,
        )

    def check_gold(self, task: str, reference: str) -> None:
        """Refuse a gold no completion can be paid for (``"Z"`` for a four-letter MCQ, a
        CWE name instead of an id): the task must pay its own ``Answer: <gold>`` line 1.
        Such a row would train on a reward of zero without anyone noticing."""
        if (task, reference) in self._golds:
            return
        why = ""
        scorer = self.task(task)
        try:
            own = scorer.judge(f"Answer: {reference}", reference).score.value
        except ValueError as err:
            own, why = 0.0, f" ({err})"
        if own < 1.0:
            raise ValueError(
                f"gold {reference!r} is not an answer task {task!r} can pay: its own answer "
                f"line scores {own:g}{why}"
            )
        if len(self._golds) > 200_000:  # one entry per distinct gold; bounded all the same
            self._golds.clear()
        self._golds.add((task, reference))


def route(data_source: Any, extra_info: Mapping[str, Any] | None = None) -> str:
    """The task of a row: ``extra_info['task']``, else ``data_source`` (``secreason/cwe``
    or a bare task name)."""
    if extra_info and extra_info.get("task"):
        task = extra_info["task"]
        if not isinstance(task, str):
            raise RoutingError(f"extra_info['task']: expected a task name, got {task!r}")
        return task
    if data_source is not None and not isinstance(data_source, str):
        raise RoutingError(
            f"data_source {data_source!r} is not text; expected 'secreason/<task>' with a "
            f"task among: {', '.join(task_names())}"
        )
    source = (data_source or "").strip()
    name = source.split("/", 1)[1] if source.startswith("secreason/") else source
    if name in task_names():
        return name
    raise RoutingError(
        f"data_source {data_source!r} names no secreason task and extra_info has no 'task'; "
        f"expected 'secreason/<task>' with a task among: {', '.join(task_names())}"
    )
