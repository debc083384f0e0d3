"""Rows the trainers read: conversational SFT rows and RL prompt rows, on disk.

SFT rows are ``messages`` ending with the assistant's ``<think>...</think>`` trace and
answer; RL rows are ``prompt`` (the chat turns), ``task`` and ``reference`` (what the
reward functions route on and score against). Both keep ``id``, ``domain`` and
``source`` so a trained model can be traced back to its data. Item ``meta`` is kept
as a JSON string: its shape differs per task, which Arrow columns cannot hold.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from secreason.tasks.base import Sample

CYBER_TASKS = frozenset({"cwe", "cvss", "ate", "taa", "mcq"})


def domain_of(sample: Sample) -> str:
    """The mixing domain of an item: ``meta['domain']`` or ``cyber`` for cyber tasks."""
    domain = sample.meta.get("domain")
    if domain:
        return str(domain)
    return "cyber" if sample.task in CYBER_TASKS else sample.task


def _common(sample: Sample) -> dict[str, Any]:
    return {
        "id": sample.id,
        "task": sample.task,
        "reference": sample.reference,
        "domain": domain_of(sample),
        "source": str(sample.meta.get("provenance", "")),
        "meta": json.dumps(sample.meta, ensure_ascii=False, sort_keys=True, default=str),
    }


def sft_row(sample: Sample, trace: str) -> dict[str, Any]:
    """A conversational SFT row: the prompt turns plus the assistant's trace."""
    messages = [*sample.messages, {"role": "assistant", "content": trace}]
    return {"messages": messages, **_common(sample)}


def rl_row(sample: Sample) -> dict[str, Any]:
    """An RL prompt row: no assistant turn; the reward scores against ``reference``."""
    return {"prompt": list(sample.messages), **_common(sample)}


def save_rows(rows: Sequence[dict[str, Any]], out_dir: str | Path, split: str = "train") -> Path:
    """Save rows as a ``DatasetDict`` folder (``save_to_disk``) and as ``<split>.jsonl``."""
    from datasets import Dataset, DatasetDict

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not rows:
        raise ValueError(f"{out}: refusing to save an empty {split!r} split")
    DatasetDict({split: Dataset.from_list(list(rows))}).save_to_disk(str(out / "hf"))
    with (out / f"{split}.jsonl").open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return out


def samples_from_rows(rows: Iterable[dict[str, Any]]) -> list[Sample]:
    """Back from exported rows to Samples (for evaluation of held-out items)."""
    out = []
    for row in rows:
        turns = row.get("prompt") or row["messages"]
        while turns and turns[-1]["role"] == "assistant":  # the trace; earlier turns stay
            turns = turns[:-1]
        meta = json.loads(row["meta"]) if isinstance(row.get("meta"), str) else {}
        out.append(Sample(row["id"], row["task"], list(turns), row["reference"], meta))
    return out
