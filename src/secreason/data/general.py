"""General-domain prompts (math, code, instruction following, chat, science, safety).

The paper's SFT mix is only about a quarter cyber; the rest keeps the model generally
capable. Those prompts come from Hugging Face datasets the user names in the recipe
(nothing is downloaded unless a recipe names a dataset). Items keep the source's
prompt as the user turn and its reference answer when it has one.

Verification of the teacher's answers:

* ``math``: the final answer (the answer region, after ``</think>``) must equal the
  reference under ``math-verify`` (symbolic equality, LaTeX and plain numbers). If the
  task registry has a ``math`` task, that task is used instead.
* other domains have no verifier here: their traces are kept on the reasoning
  contract's format checks alone, and the card says so (``verifier: format-only``).
"""

from __future__ import annotations

from typing import Any

from secreason.data.synthesize import content_id
from secreason.reasoning import FormatConfig, check_format, split
from secreason.tasks.base import Sample

FORMAT_ONLY = "format-only"


def general_items(source: Any, *, seed: int = 0) -> list[Sample]:
    """Samples from one ``GeneralSource`` (a hub id or a local dataset folder / file)."""
    from pathlib import Path

    import datasets

    path = Path(source.path)
    if path.is_dir():
        data: Any = datasets.load_from_disk(str(path))
        if isinstance(data, datasets.DatasetDict):
            data = data[source.split]
    elif path.is_file():
        kind = "json" if path.suffix in (".json", ".jsonl") else path.suffix.lstrip(".")
        data = datasets.load_dataset(kind, data_files=str(path), split="train")
    else:
        data = datasets.load_dataset(source.path, source.name, split=source.split)
    if source.prompt_field not in data.column_names:
        raise KeyError(
            f"{source.path}: no column {source.prompt_field!r} (has {data.column_names}); "
            "set general[].prompt_field"
        )
    if source.limit is not None:
        data = data.shuffle(seed=seed).select(range(min(source.limit, len(data))))
    items = []
    for i, row in enumerate(data):
        prompt = row[source.prompt_field]
        if isinstance(prompt, list):  # already chat turns
            messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
        else:
            messages = [{"role": "user", "content": str(prompt)}]
        reference = str(row[source.answer_field]) if source.answer_field else ""
        task = "math" if source.domain == "math" else source.domain
        meta = {
            "domain": source.domain,
            "provenance": f"{source.path}:{source.split}#{i}",
            "entity": f"{source.path}#{i}",
            "split": "train",
        }
        items.append(Sample(content_id(task, messages, reference), task, messages, reference, meta))
    return items


def math_correct(completion: str, reference: str, *, prefilled: bool = False) -> bool:
    """math-verify equality of the completion's answer region and the reference."""
    from math_verify import parse, verify

    parts = split(completion, prefilled=prefilled)
    if not parts.answer.strip() or not reference.strip():
        return False
    gold = parse(reference)
    pred = parse(parts.answer)
    return bool(gold) and bool(pred) and bool(verify(gold, pred))


def general_rejection(
    sample: Sample, completion: str, cfg: FormatConfig, prefilled: bool
) -> str | None:  # noqa: E501
    """Why a general-domain completion is rejected (None: kept)."""
    verdict = check_format(split(completion, prefilled=prefilled), cfg)
    if not verdict.ok:
        return "format:" + "+".join(verdict.failed)
    if sample.task == "math" and not math_correct(
        completion, sample.reference, prefilled=prefilled
    ):
        return "verifier:math"
    return None
