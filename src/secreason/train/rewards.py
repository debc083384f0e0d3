"""RL rewards: the task scorers and the format penalty, as TRL reward functions.

The reward *is* the task's strict score (``Task.judge``), so RL optimises exactly what
the evaluation measures. One reward function per task, routed by the dataset's
``task`` column: a function returns ``None`` for rows of other tasks, which TRL reads
as "does not apply". A row that no function applies to would train on a reward of
NaN-then-zero without anyone noticing, so :func:`check_reward_coverage` refuses such a
dataset before training starts.

The format penalty is a separate reward (last in the list, weighted by the recipe):
``-1`` when the completion fails the reasoning contract's format checks (tags, one
block, minimum reasoning length, repetition, a non-empty answer). Without it GRPO
learns to drop its reasoning, since the verifier only reads the answer (arXiv
2601.21051). With weight 0 (the ablation) it still runs, so that the per-task format
rate and reasoning length are logged and a collapse is visible.

Per-task metrics (reward, format-valid rate, reasoning and answer length in words,
truncation rate) and the time spent computing rewards are gathered here and flushed
once per optimiser step by :class:`RewardMetricsCallback`.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from secreason.integrations.inputs import check_penalty
from secreason.integrations.scoring import strip_end_markers
from secreason.reasoning import THINK, FormatConfig, FormatVerdict, check_format, split
from secreason.tasks import get_task
from secreason.tasks.base import Task

RewardFn = Callable[..., list[float | None]]


class RewardCoverageError(ValueError):
    """Some training rows have no reward that applies to them."""


def completion_text(completion: Any) -> str:
    """The completion as the reasoning contract reads it, whatever shape TRL passes.

    A string (standard data) or a list of messages (conversational). TRL parses
    conversational completions with the tokenizer's response schema when it has one, and
    the reasoning then arrives in its own field (``reasoning_content`` or ``thinking``):
    it is put back between the think tags, so the format checks see it. Content given as
    parts is joined. Trailing end-of-turn markers are cut as for verl and OpenRLHF, so a
    completion earns the same reward under each trainer.
    """
    if isinstance(completion, str):
        return strip_end_markers(completion)
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return strip_end_markers("".join(_message_text(m) for m in completion))
    return strip_end_markers(str(completion))


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        content = "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    text = str(content or "")
    for key in ("reasoning_content", "thinking"):
        if key in message:
            reasoning = str(message.get(key) or "").strip()
            return f"{THINK.open}\n{reasoning}\n{THINK.close}\n{text.lstrip()}"
    return text


def check_reward_coverage(
    rows: Iterable[Mapping[str, Any]],
    tasks: Iterable[str],
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> int:
    """Refuse a dataset in which a row has no applicable reward; return the row count.

    A row is covered when its ``task`` names a reward function and it has a non-empty
    ``reference`` that the task can pay: its own ``Answer: <reference>`` line scores 1
    (checked with the tasks built from ``options``, as verl and OpenRLHF check it).
    """
    from secreason.integrations.scoring import RewardConfig, Scorer

    golds = Scorer(RewardConfig(task_options=dict(options or {})))
    known = set(tasks)
    problems: list[str] = []
    n = 0
    for i, row in enumerate(rows):
        n += 1
        task, reference = row.get("task"), row.get("reference")
        ident = f"row {i}" + (f" (id={row['id']!r})" if row.get("id") is not None else "")
        if not task:
            problems.append(f"{ident}: no 'task' column value")
        elif task not in known:
            problems.append(f"{ident}: task {task!r} has no reward function")
        elif reference is None or not str(reference).strip():
            problems.append(f"{ident}: task {task!r} but an empty 'reference' (gold answer)")
        else:
            try:
                golds.check_gold(str(task), str(reference))
            except (KeyError, ValueError) as err:
                problems.append(f"{ident}: {err}")
    if problems:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise RewardCoverageError(
            f"{len(problems)} of {n} RL rows have no applicable reward "
            f"(rewards exist for: {', '.join(sorted(known)) or 'none'}):\n  {shown}{more}\n"
            "Fix: drop or relabel these rows, or add the task to the recipe's rewards."
        )
    return n


@dataclass
class _TaskStats:
    n: int = 0
    reward: float = 0.0
    format_ok: int = 0
    reasoning_words: int = 0
    answer_words: int = 0
    truncated: int = 0

    def as_dict(self) -> dict[str, float]:
        n = max(self.n, 1)
        return {
            "n": self.n,
            "reward": self.reward / n,
            "format_valid": self.format_ok / n,
            "reasoning_words": self.reasoning_words / n,
            "answer_words": self.answer_words / n,
            "truncation": self.truncated / n,
        }


@dataclass
class RewardSuite:
    """The reward functions of one RL run, plus the per-task metrics they gather."""

    tasks: dict[str, Task]
    format_config: FormatConfig = FormatConfig()
    format_penalty: float = 1.0
    prefilled: bool = False
    eos_token_ids: tuple[int, ...] = ()
    _scores: dict[int, float] = field(default_factory=dict, repr=False)
    _stats: dict[str, _TaskStats] = field(default_factory=lambda: defaultdict(_TaskStats))
    _reward_seconds: float = 0.0

    def __post_init__(self) -> None:
        # A negative weight would pay completions for failing the format checks.
        self.format_penalty = check_penalty(self.format_penalty)

    @classmethod
    def from_names(
        cls, names: Iterable[str], options: Mapping[str, Mapping[str, Any]] | None = None, **kw: Any
    ) -> RewardSuite:
        options = options or {}
        return cls({n: get_task(n, **dict(options.get(n, {}))) for n in sorted(set(names))}, **kw)

    # ------------------------------------------------------------------ reward functions
    def functions(self) -> list[RewardFn]:
        """One reward per task, then the format reward (its order matters: it runs last)."""
        return [*(self._task_reward(n) for n in self.tasks), self._format_reward()]

    def weights(self) -> list[float]:
        return [1.0] * len(self.tasks) + [float(self.format_penalty)]

    def _task_reward(self, name: str) -> RewardFn:
        scorer = self.tasks[name]

        def reward(
            prompts: Sequence[Any],
            completions: Sequence[Any],
            task: Sequence[str],
            reference: Sequence[str],
            **_: Any,
        ) -> list[float | None]:
            start = time.perf_counter()
            out: list[float | None] = []
            for i, (completion, row_task, gold) in enumerate(
                zip(completions, task, reference, strict=True)
            ):
                if row_task != name:
                    out.append(None)
                    continue
                judged = scorer.judge(
                    completion_text(completion),
                    str(gold),
                    prefilled=self.prefilled,
                    format_config=self.format_config,
                )
                self._scores[i] = judged.score.value
                out.append(judged.score.value)
            self._reward_seconds += time.perf_counter() - start
            return out

        reward.__name__ = f"{name}_reward"
        return reward

    def _format_reward(self) -> RewardFn:
        def format_reward(
            prompts: Sequence[Any],
            completions: Sequence[Any],
            task: Sequence[str] | None = None,
            completion_ids: Sequence[Sequence[int]] | None = None,
            log_metric: Callable[[str, float], None] | None = None,
            **_: Any,
        ) -> list[float | None]:
            start = time.perf_counter()
            tasks = list(task) if task is not None else ["all"] * len(completions)
            out: list[float | None] = []
            batch: dict[str, _TaskStats] = defaultdict(_TaskStats)
            for i, completion in enumerate(completions):
                parts = split(completion_text(completion), prefilled=self.prefilled)
                verdict: FormatVerdict = check_format(parts, self.format_config)
                out.append(0.0 if verdict.ok else -1.0)
                ids = list(completion_ids[i]) if completion_ids is not None else []
                truncated = bool(ids and self.eos_token_ids) and ids[-1] not in self.eos_token_ids
                for stats in (batch[tasks[i]], self._stats[tasks[i]]):
                    stats.n += 1
                    stats.reward += self._scores.get(i, 0.0)
                    stats.format_ok += verdict.ok
                    stats.reasoning_words += verdict.reasoning_words
                    stats.answer_words += len(parts.answer.split())
                    stats.truncated += bool(truncated)
            self._scores.clear()
            self._reward_seconds += time.perf_counter() - start
            if log_metric is not None:
                for name, stats in batch.items():
                    for key, value in stats.as_dict().items():
                        if key != "n":
                            log_metric(f"task/{name}/{key}", value)
            return out

        return format_reward

    # ------------------------------------------------------------------------- metrics
    def drain(self) -> tuple[dict[str, dict[str, float]], float]:
        """Per-task metrics and reward seconds since the last drain; resets both."""
        stats = {name: s.as_dict() for name, s in sorted(self._stats.items())}
        seconds = self._reward_seconds
        self._stats = defaultdict(_TaskStats)
        self._reward_seconds = 0.0
        return stats, seconds


class RewardMetricsCallback(TrainerCallback):
    """Writes one JSONL line per optimiser step: per-task metrics and reward time share.

    Lines are appended, so a resumed run continues the same file.
    """

    def __init__(self, suite: RewardSuite, path: str | Path) -> None:
        self.suite = suite
        self.path = Path(path)
        self._start = 0.0

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._start = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            self.suite.drain()
            return
        seconds = time.perf_counter() - self._start
        tasks, reward_seconds = self.suite.drain()
        if not tasks:
            return
        record = {
            "step": state.global_step,
            "step_seconds": round(seconds, 4),
            "reward_seconds": round(reward_seconds, 5),
            "reward_time_share": reward_seconds / seconds if seconds > 0 else 0.0,
            "tasks": tasks,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as fh:
            cut = fh.tell() > 0 and _last_byte(self.path) != b"\n"  # a kill cut the last line
            fh.write(("\n" if cut else "").encode() + (json.dumps(record) + "\n").encode())


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as fh:
        fh.seek(-1, 2)
        return fh.read(1)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The per-step records, the last one kept when a resumed run repeated a step; a
    line a kill cut short is skipped."""
    by_step: dict[int, dict[str, Any]] = {}
    p = Path(path)
    if p.is_file():
        for line in p.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
                by_step[int(record["step"])] = record
            except (ValueError, TypeError, KeyError):
                continue
    return [by_step[k] for k in sorted(by_step)]
