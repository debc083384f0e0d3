"""secreason's rewards in OpenRLHF's conventions: a ``--remote_rm_url`` Python file.

OpenRLHF calls ``reward_func(queries, prompts, labels)`` where each query is the prompt
*and* the response, decoded with special tokens (end-of-turn markers included), each
prompt is the templated prompt and each label is the dataset's ``--label_key`` column.
It wants ``{"rewards", "scores", "extra_logs"}``: rewards drive the advantages, scores
(0..1) feed dynamic filtering, extra_logs are logged. Use it as::

    --remote_rm_url $(python -m secreason.integrations.openrlhf)
    --label_key label        # rows written by `secreason data export --format openrlhf`

or over HTTP with ``secreason reward-server`` (same function, same numbers).

A label is ``{"task": ..., "reference": ...}`` as a JSON string (what the export writes),
or a bare reference when ``$SECREASON_TASK`` names the task of every row. The prompt is
cut from the query by prefix; a prompt ending in ``<think>`` marks the response as
prefilled. ``$SECREASON_FORMAT_PENALTY`` (1.0) sets the format penalty.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from secreason.integrations.inputs import check_penalty, unpack_label
from secreason.integrations.scoring import (
    METRIC_KEYS,
    Reward,
    RewardConfig,
    Scorer,
    strip_end_markers,
)
from secreason.reasoning import THINK

_DEFAULT: Scorer | None = None


def label_for(task: str, reference: str) -> str:
    """The label string of one row (the export writes this)."""
    return json.dumps({"task": task, "reference": reference}, ensure_ascii=False)


def parse_label(label: Any, index: int, default_task: str | None = None) -> tuple[str, str]:
    """(task, reference) of one label; ValueError naming the row otherwise. A label
    without a task (a bare reference, a list, ``{"reference": ...}``) takes
    ``default_task``."""
    where = f"labels[{index}]"
    task, reference = unpack_label(label, where)
    task = task or default_task
    if not task:
        raise ValueError(
            f'{where}: expected \'{{"task": ..., "reference": ...}}\' '
            "(or set $SECREASON_TASK for bare references)"
        )
    return task, reference


def response_of(query: str, prompt: str, index: int) -> str:
    """The response part of ``query`` (prompt + response); the prompt must be in it."""
    if query.startswith(prompt):
        return query[len(prompt) :]
    at = query.find(prompt)  # left padding or a BOS the prompt string lacks
    if prompt and at >= 0:
        return query[at + len(prompt) :]
    raise ValueError(
        f"queries[{index}] does not contain prompts[{index}]: pass the templated prompt "
        "that the query starts with"
    )


def is_prefilled(prompt: str) -> bool:
    """True when the templated prompt ends inside an opened reasoning block."""
    return strip_end_markers(prompt).rstrip().endswith(THINK.open)


def check_lengths(queries: Sequence[Any], prompts: Sequence[Any], labels: Sequence[Any]) -> None:
    if not (len(queries) == len(prompts) == len(labels)):
        raise ValueError(
            f"queries, prompts and labels differ in length "
            f"({len(queries)}, {len(prompts)}, {len(labels)})"
        )


def score_rows(
    queries: Sequence[Any],
    prompts: Sequence[Any],
    labels: Sequence[Any],
    scorer: Scorer,
    default_task: str | None = None,
    start: int = 0,
) -> tuple[list[Reward], list[str]]:
    """Score rows ``start...`` of a batch (lists of equal length): the rewards of the
    good rows and one message per bad row, naming it."""
    out, problems = [], []
    for i, (query, prompt, label) in enumerate(zip(queries, prompts, labels, strict=True), start):
        try:
            out.append(_score_row(i, query, prompt, label, scorer, default_task))
        except (TypeError, ValueError) as err:
            problems.append(str(err))
    return out, problems


def batch_problem(problems: Sequence[str], n: int) -> str:
    """One message for a batch's bad rows: how many, and the first few by name."""
    shown = "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
    return f"{len(problems)} of {n} rows cannot be scored: {shown}"


def score_batch(
    queries: Sequence[str],
    prompts: Sequence[str],
    labels: Sequence[Any],
    scorer: Scorer,
    default_task: str | None = None,
) -> list[Reward]:
    """Score one OpenRLHF batch. Any bad row fails the batch, every bad row named: a
    label the reward cannot read is a data or configuration mistake, and scoring the
    other rows would hide it behind a plausible curve."""
    check_lengths(queries, prompts, labels)
    out, problems = score_rows(queries, prompts, labels, scorer, default_task)
    if problems:
        raise ValueError(batch_problem(problems, len(labels)))
    return out


def _score_row(
    i: int, query: Any, prompt: Any, label: Any, scorer: Scorer, default_task: str | None
) -> Reward:
    if not isinstance(query, str) or not isinstance(prompt, str):
        raise ValueError(f"queries[{i}] and prompts[{i}] must be strings")
    task, reference = parse_label(label, i, default_task)
    response = response_of(query, prompt, i)
    try:
        return scorer.score(response, reference, task, prefilled=is_prefilled(prompt))
    except ValueError as err:
        raise ValueError(f"labels[{i}]: {err}") from None


def as_lists(rewards: Sequence[Reward]) -> dict[str, Any]:
    """The JSON body: rewards, scores (task score, 0..1) and per-check extra_logs."""
    metrics = [r.metrics() for r in rewards]
    return {
        "rewards": [m["score"] for m in metrics],
        "scores": [m["task_score"] for m in metrics],
        "extra_logs": {k: [m[k] for m in metrics] for k in METRIC_KEYS if k != "score"},
    }


def default_scorer() -> Scorer:
    global _DEFAULT
    if _DEFAULT is None:
        penalty = os.environ.get("SECREASON_FORMAT_PENALTY", "1.0")
        _DEFAULT = Scorer(
            RewardConfig(format_penalty=check_penalty(penalty, "$SECREASON_FORMAT_PENALTY"))
        )
    return _DEFAULT


def reward_func(
    queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any], **kwargs: Any
) -> dict[str, Any]:
    """OpenRLHF's custom reward function: tensors of rewards, scores and extra logs."""
    import torch

    rewards = score_batch(
        queries, prompts, labels, default_scorer(), os.environ.get("SECREASON_TASK")
    )
    body = as_lists(rewards)
    return {
        "rewards": torch.tensor(body["rewards"], dtype=torch.float32),
        "scores": torch.tensor(body["scores"], dtype=torch.float32),
        "extra_logs": {
            k: torch.tensor(v, dtype=torch.float32) for k, v in body["extra_logs"].items()
        },
    }


def export_openrlhf(splits: dict[str, list[dict[str, Any]]], out_dir: Any) -> list[Any]:
    """Write ``<out_dir>/<split>.jsonl``: ``prompt`` (chat turns, for
    ``--input_key prompt --apply_chat_template``) and ``label`` (for ``--label_key``)."""
    from pathlib import Path

    from secreason.integrations.verl import verl_row

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, rows in splits.items():
        converted = [verl_row(r, i, split) for i, r in enumerate(rows)]  # same checks
        if not converted:
            raise ValueError(f"split {split!r} is empty")
        path = out / f"{split}.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for row in converted:
                info = row["extra_info"]
                label = label_for(info["task"], row["reward_model"]["ground_truth"])
                record = {"id": info["id"], "prompt": row["prompt"], "label": label}
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        paths.append(path)
    return paths


if __name__ == "__main__":
    print(__file__)  # the path --remote_rm_url wants
