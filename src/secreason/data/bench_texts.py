"""Benchmark items as plain text: what decontamination compares training items against.

Kept apart from the index because there are two readers with different trade-offs: a
generic one that reads every row and every string field of every file (nothing a
loader filters out escapes the check) and one that goes through the evaluation
harness's own loaders (the benchmark names and the text the model is really shown).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ANSWER_KEYS = {"gt", "answer", "answers_gt", "solution", "label", "gold", "target", "reference"}
SKIP_FILES = {"taa_alias_dict.json", "taa_related_dict.json"}


@dataclass(frozen=True)
class BenchmarkText:
    """One benchmark item as text: what the model is asked, and the gold answer."""

    benchmark: str
    index: int
    prompt: str
    answer: str = ""


def _flatten(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _flatten(v)]
    if isinstance(value, list):
        return [s for v in value for s in _flatten(v)]
    return []


def _rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix in (".tsv", ".csv"):
        csv.field_size_limit(1 << 28)
        with path.open(encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f, delimiter="\t" if path.suffix == ".tsv" else ","))
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            lists = [v for v in data.values() if isinstance(v, list)]
            data = max(lists, key=len) if lists else []
        return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []
    return []


def read_benchmark_folder(root: str | Path) -> list[BenchmarkText]:
    """Every item of every benchmark file under ``root`` (TSV, CSV, JSON, JSONL).

    A benchmark is named ``folder/file-stem``. The prompt text is every string field of
    a row; the answer text is the row's answer-like fields (GT, answer, solution, ...).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no benchmark folder here (set decontaminate.benchmarks)")
    out: list[BenchmarkText] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name in SKIP_FILES:
            continue
        name = f"{path.parent.relative_to(root)}/{path.stem}".lstrip("./")
        for i, row in enumerate(_rows(path)):
            answer_parts = [
                s for k, v in row.items() if str(k).lower() in ANSWER_KEYS for s in _flatten(v)
            ]
            prompt_parts = [
                s for k, v in row.items() if str(k).lower() not in ANSWER_KEYS for s in _flatten(v)
            ]
            out.append(BenchmarkText(name, i, "\n".join(prompt_parts), "\n".join(answer_parts)))
    return out


def harness_texts(
    root: str | Path, names: Sequence[str] | None = None
) -> tuple[list[BenchmarkText], dict[str, str]]:
    """Items of the evaluation harness's benchmarks, read by their own loaders.

    Each benchmark is looked for in ``root`` and in each of its sub-folders (the
    ``../shared/benchmarks`` layout); the text is every non-system turn, the reference
    and the string fields of ``meta`` (a row's URL names its CVE). Returns the texts and,
    per benchmark that could not be loaded, why.
    """
    from secreason.evals import benchmark_names, get_benchmark

    base = Path(root)
    folders = [base, *sorted(p for p in base.iterdir() if p.is_dir())]
    texts: list[BenchmarkText] = []
    missing: dict[str, str] = {}
    for name in names or benchmark_names():
        bench = get_benchmark(name)
        error = "no folder tried"
        for folder in folders:
            try:
                samples = bench.load(folder)
            except (FileNotFoundError, ValueError, KeyError) as err:
                error = str(err)
                continue
            for i, sample in enumerate(samples):
                turns = [m["content"] for m in sample.messages if m["role"] == "user"]
                extra = [v for v in sample.meta.values() if isinstance(v, str)]
                texts.append(BenchmarkText(name, i, "\n".join(turns + extra), sample.reference))
            break
        else:
            missing[name] = error
    return texts, missing


def benchmark_texts(folder: str | Path, *, harness: bool = False) -> list[BenchmarkText]:
    """The benchmark items to decontaminate against.

    By default every file under ``folder`` is read generically (all rows, all string
    fields: nothing a loader filters out escapes the check). ``harness=True`` uses the
    evaluation harness's loaders instead, with its benchmark names.
    """
    if harness:
        texts, _ = harness_texts(folder)
        if not texts:
            raise FileNotFoundError(f"{folder}: no benchmark of the evaluation harness found")
        return texts
    return read_benchmark_folder(folder)
