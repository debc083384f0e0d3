"""ATT&CK technique extraction (CTIBench-ATE): the set of techniques a text describes.

The answer is a SET of ids ``T####`` / ``T####.###``; per item we report precision,
recall, F1 and Jaccard, and the item's value is its F1, so naming extra techniques
costs precision. Status is ``correct`` only when the sets are equal.

* ``strict`` reads ``Answer: T1071, T1573`` on the last line of the answer region
  (several ids are expected here). Naming more than ``max_ids`` distinct techniques
  is invalid: listing the catalogue is not an answer, and without the cap it would
  still earn a small F1 where an honest wrong answer earns 0.
* ``official``: CTIBench's authors published no ATE extraction code (their notebook
  covers MCQ, RCM, VSP and TAA only), so we reproduce FAITH's rule, the harness
  Foundation-Sec-8B-Reasoning was evaluated with: every match of
  ``(?i)\\banswer\\s*:\\s*((?:t\\d+,\\s*)*t\\d+)\\b`` in the answer, kept only when all
  matches give the same list ("match if unique"). Its quirks are kept: a sub-technique
  cuts the list short (``Answer: T1071.001, T1573`` reads ``T1071``) and a space
  before a comma ends it.

``collapse_subtechniques`` maps ``T1059.001`` to ``T1059`` on both sides (CTIBench asks
for main techniques only). :meth:`TechniqueExtraction.aggregate` returns micro-F1 over
pooled counts (the paper's figure), macro-F1 (mean of per-item F1) and mean Jaccard.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence

from secreason.tasks.base import (
    Extraction,
    Message,
    Protocol,
    Sample,
    Score,
    ScoreStatus,
    Task,
    register,
    strict_answer,
)

PROMPT_V1 = (
    "Read the threat report below and find every MITRE ATT&CK technique it describes. "
    "For each behaviour, say which technique it is and why. Finish with one last line "
    "listing the technique ids, comma-separated, as 'Answer: T1234, T5678'."
    "\n\nReport: {description}"
)

_ID = re.compile(r"\bT(\d{4})(\.\d{3})?\b", re.IGNORECASE)
_FAITH = re.compile(r"(?i)\banswer\s*:\s*((?:t\d+,\s*)*t\d+)\b")


def _canonical(ids: frozenset[str], collapse: bool) -> frozenset[str]:
    return frozenset(i.split(".", 1)[0] for i in ids) if collapse else ids


def _technique_ids(text: str) -> frozenset[str]:
    return frozenset(f"T{main}{sub or ''}" for main, sub in _ID.findall(text))


@functools.lru_cache(maxsize=4096)
def technique_set(reference: str) -> frozenset[str]:
    """The ids of a gold label (``"T1071, T1573"``); ValueError when it has none."""
    ids = _technique_ids(reference)
    if not ids:
        raise ValueError(f"reference {reference[:60]!r} holds no ATT&CK technique id")
    return ids


def set_metrics(pred: frozenset[str], gold: frozenset[str]) -> dict[str, float]:
    """Counts and precision, recall, F1, Jaccard of one predicted set against the gold."""
    tp = len(pred & gold)
    fp = len(pred) - tp
    fn = len(gold) - tp
    precision = tp / len(pred) if pred else 0.0
    recall = tp / len(gold) if gold else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    union = len(pred | gold)
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "jaccard": tp / union if union else 1.0,
    }


def strict_ids(
    answer_text: str, read: Callable[[str], frozenset[str]], kind: str, max_ids: int
) -> Extraction:
    """The id set on the strict ``Answer:`` line: invalid with none or more than ``max_ids``."""
    got = strict_answer(answer_text)
    if not got.ok:
        return got
    ids = read(str(got.value))
    if not ids:
        return Extraction(None, f"no {kind} id in {str(got.value)[:40]!r}")
    if len(ids) > max_ids:
        return Extraction(None, f"{len(ids)} {kind} ids named; at most {max_ids}")
    return Extraction(ids)


def set_score(pred: frozenset[str] | None, gold: frozenset[str], error: str | None) -> Score:
    """F1 of an id set against the gold (``correct`` only when equal); ``None`` is invalid."""
    if pred is None:
        details: dict[str, object] = {"error": error}
        details.update(set_metrics(frozenset(), gold))
        return Score(0.0, "invalid", details)
    metrics = set_metrics(pred, gold)
    status: ScoreStatus = "correct" if pred == gold else "incorrect"
    return Score(metrics["f1"], status, dict(metrics))


def pooled_counts(scores: Sequence[Score]) -> tuple[int, int, int]:
    """True positives, false positives and false negatives summed over the items."""
    tp, fp, fn = (sum(int(s.details.get(k, 0)) for s in scores) for k in ("tp", "fp", "fn"))
    return tp, fp, fn


@register
class TechniqueExtraction(Task):
    """ATT&CK technique set extraction; see the module docstring."""

    name = "ate"
    prompt_version = "ate-v1"

    def __init__(self, collapse_subtechniques: bool = False, max_ids: int = 40) -> None:
        self.collapse = collapse_subtechniques
        self.max_ids = max_ids

    def prompt(self, sample: Sample) -> list[Message]:
        description = sample.meta.get("description") or sample.meta.get("text", "")
        return [{"role": "user", "content": PROMPT_V1.format(description=description)}]

    def extract(self, answer_text: str, protocol: Protocol = "strict") -> Extraction:
        if protocol == "official":
            return self._official(answer_text)
        return strict_ids(answer_text, _technique_ids, "technique", self.max_ids)

    @staticmethod
    def _official(answer_text: str) -> Extraction:
        lists = {
            tuple(i.strip().upper() for i in found.split(","))
            for found in _FAITH.findall(answer_text)
        }
        if not lists:
            return Extraction(None, "no 'Answer: T..., T...' list in the answer")
        if len(lists) > 1:
            return Extraction(None, "several different 'Answer:' lists")
        return Extraction(frozenset(lists.pop()))

    def score(self, extracted: Extraction, reference: str) -> Score:
        gold = _canonical(technique_set(reference), self.collapse)
        pred = _canonical(frozenset(extracted.value), self.collapse) if extracted.ok else None
        return set_score(pred, gold, extracted.error)

    def aggregate(self, scores: Sequence[Score]) -> dict[str, float]:
        """Micro-F1 over pooled counts, macro-F1, mean Jaccard, exact-set accuracy."""
        out = super().aggregate(scores)
        if not scores:
            return out
        tp, fp, fn = pooled_counts(scores)
        out["micro_precision"] = tp / (tp + fp) if tp + fp else 0.0
        out["micro_recall"] = tp / (tp + fn) if tp + fn else 0.0
        out["micro_f1"] = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        out["macro_f1"] = sum(float(s.details.get("f1", 0.0)) for s in scores) / len(scores)
        out["mean_jaccard"] = sum(float(s.details.get("jaccard", 0.0)) for s in scores) / len(
            scores
        )
        return out
