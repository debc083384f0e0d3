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

Inputs are checked here too, so that a misconfigured dataset fails loudly instead of
training on a reward of zero: the gold answer may come as text, a list (a parquet list
column arrives as a numpy array), a ``{"reference": ...}`` dict or a JSON label, and
it must be an answer the task can pay: its own ``Answer: <gold>`` line must score 1
(:meth:`Scorer.check_gold`, through the task itself, cached per gold).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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


def check_penalty(value: Any, where: str = "format_penalty") -> float:
    """A format penalty as a float: finite and not negative (a negative one would pay
    completions for failing the format checks)."""
    try:
        penalty = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {value!r} is not a number") from None
    if not math.isfinite(penalty) or penalty < 0:
        raise ValueError(f"{where}: {value!r}; expected a finite number >= 0 (1.0 as recipes)")
    return penalty


@dataclass(frozen=True)
class RewardConfig:
    """What the TRL recipe calls ``format_penalty`` and the format check thresholds."""

    format_config: FormatConfig = FormatConfig()
    format_penalty: float = 1.0
    prefilled: bool = False
    task_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "format_penalty", check_penalty(self.format_penalty))


def format_config(options: Any, where: str = "format") -> FormatConfig:
    """:class:`FormatConfig` from a dict of its fields, each of its field's type."""
    if not isinstance(options, Mapping):
        raise TypeError(f"{where}: expected a dict, got {options!r}")
    defaults = FormatConfig()
    for key, value in options.items():
        if not hasattr(defaults, key):
            known = ", ".join(FormatConfig.__dataclass_fields__)
            raise TypeError(f"{where}: unknown field {key!r}; fields: {known}")
        default = getattr(defaults, key)
        kinds: tuple[type, ...] = (int, float)  # a float field takes an int
        if isinstance(default, int):  # bool is an int: a bool field takes only a bool
            kinds = (bool,) if isinstance(default, bool) else (int,)
        if isinstance(value, bool) != isinstance(default, bool) or not isinstance(value, kinds):
            raise TypeError(f"{where}.{key}: {value!r} is not of type {type(default).__name__}")
        if not isinstance(value, bool) and value < 0:
            raise ValueError(f"{where}.{key}: {value!r} is negative")
    return FormatConfig(**dict(options))


def _kind(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def as_text(value: Any, where: str) -> str:
    """A completion as text: bytes are decoded as UTF-8; anything else is a TypeError."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    raise TypeError(f"{where}: expected text, got {_kind(value)}")


def as_flag(value: Any, where: str) -> bool:
    """A yes/no setting from a config or a dataset row ("false" is False, not True)."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalars
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _FLAGS:
        return _FLAGS[value.strip().lower()]
    raise ValueError(f"{where}: {value!r} is not true or false")


_FLAGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def reference_text(value: Any, where: str) -> str:
    """The gold answer as text from the shapes trainers store it in: text, a number, a
    list or array (joined with ", ") or a dict holding ``reference``/``ground_truth``."""
    if isinstance(value, Mapping):
        for key in ("reference", "ground_truth"):
            if key in value:
                return reference_text(value[key], f"{where}.{key}")
        keys = ", ".join(map(repr, list(value)[:5])) or "none"
        raise ValueError(f"{where}: a dict without 'reference' or 'ground_truth' (keys: {keys})")
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()  # numpy arrays and scalars
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected text, got bool")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: {'NaN' if value != value else value} is not a gold answer")
    if isinstance(value, (list, tuple)):
        text = ", ".join(reference_text(v, f"{where}[{i}]") for i, v in enumerate(value))
    elif isinstance(value, (bytes, bytearray)):
        text = bytes(value).decode("utf-8", errors="replace")
    elif isinstance(value, (str, int, float)):
        text = str(value)
    elif value is None:
        text = ""
    else:
        raise ValueError(f"{where}: expected text, got {_kind(value)}")
    if not text.strip():
        raise ValueError(f"{where}: empty (no gold answer)")
    return text


def unpack_label(value: Any, where: str) -> tuple[str | None, str]:
    """(task or None, reference) of a label: a ``{"task", "reference"}`` dict or JSON
    object string (what ``data export`` writes), else a bare reference."""
    obj: Any = value
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            obj = json.loads(value)
        except (json.JSONDecodeError, RecursionError) as err:
            detail = getattr(err, "msg", "nested too deeply")
            raise ValueError(f"{where}: not a JSON object ({detail})") from None
    if not isinstance(obj, Mapping):
        return None, reference_text(value, where)
    task = obj.get("task")
    if task is not None and not (isinstance(task, str) and task.strip()):
        raise ValueError(f"{where}: 'task' must be a task name, got {task!r}")
    if task is not None and "reference" not in obj and "ground_truth" not in obj:
        raise ValueError(f"{where}: needs non-empty 'task' and 'reference'")
    return task, reference_text(obj, where)


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
