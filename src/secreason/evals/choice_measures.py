"""More measures from one pass over multiple-choice answers: format class, per-letter F1.

Why: a single accuracy hides how it was earned. From the completions already scored under
one protocol, without generating again, this module adds

* a format class per answer: ``proper`` (the strict reading succeeds: a final
  ``Answer: X`` line after closed reasoning), ``improper`` (only the benchmark's
  lenient official reading finds a letter) or ``invalid`` (neither does), as rates
  ``format_proper`` / ``format_improper`` / ``format_invalid``;
* ``accuracy_proper`` (right and proper: the strict accuracy) and ``accuracy_lenient``
  (the strict letter when there is one, else the official one), whatever the protocol;
* per-letter precision, recall and F1 of the protocol's own letter (``f1/A`` ...),
  their macro mean over the letters that occur (``macro_f1``), and the confusion counts
  ``confusion/<gold>><predicted>`` (``-`` when no letter was read; zero cells omitted).

Every value is a fraction or a count, so the report's JSON and CSV carry them as they
carry any metric.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from secreason.evals.base import ItemResult
from secreason.tasks.base import Sample, Task

NONE = "-"


def _letter(value: object) -> str | None:
    text = str(value).strip().upper() if value is not None else ""
    return text or None


def format_class(task: Task, result: ItemResult) -> tuple[str, str | None]:
    """(``proper`` | ``improper`` | ``invalid``, the lenient letter or None)."""
    parts = result.judgement.split
    if not parts.has_answer_region:
        return "invalid", None
    strict = task.extract(parts.answer, "strict")
    if strict.ok and parts.status != "multiple":
        return "proper", _letter(strict.value)
    official = task.extract(parts.answer, "official")
    if official.ok:
        return "improper", _letter(official.value)
    return "invalid", None


def choice_measures(
    task: Task, samples: Sequence[Sample], results: Sequence[ItemResult]
) -> dict[str, float]:
    """The measures above for one protocol's results (empty when there are none)."""
    gold_of = {s.id: s.reference.strip().upper() for s in samples}
    n = len(results)
    if not n:
        return {}
    classes: Counter[str] = Counter()
    lenient_right = proper_right = 0
    pairs: Counter[tuple[str, str]] = Counter()
    for result in results:
        gold = gold_of.get(result.sample_id, "")
        kind, lenient = format_class(task, result)
        classes[kind] += 1
        lenient_right += lenient == gold
        proper_right += kind == "proper" and lenient == gold
        extraction = result.judgement.extraction
        predicted = _letter(extraction.value) if extraction.ok else None
        pairs[(gold, predicted or NONE)] += 1
    out: dict[str, float] = {
        f"format_{kind}": classes[kind] / n for kind in ("proper", "improper", "invalid")
    }
    out["accuracy_proper"] = proper_right / n
    out["accuracy_lenient"] = lenient_right / n
    letters = sorted({g for g, _ in pairs} | {p for _, p in pairs if p != NONE})
    f1s = []
    for letter in letters:
        tp = pairs[(letter, letter)]
        n_predicted = sum(c for (_, p), c in pairs.items() if p == letter)
        n_gold = sum(c for (g, _), c in pairs.items() if g == letter)
        precision = tp / n_predicted if n_predicted else 0.0
        recall = tp / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
        out[f"precision/{letter}"] = precision
        out[f"recall/{letter}"] = recall
        out[f"f1/{letter}"] = f1
        f1s.append(f1)
    out["macro_f1"] = sum(f1s) / len(f1s) if f1s else 0.0
    for (gold, predicted), count in sorted(pairs.items()):
        out[f"confusion/{gold}>{predicted}"] = float(count)
    return out
