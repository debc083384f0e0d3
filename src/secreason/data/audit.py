"""Shortcut audit: can an item be answered by reading its prompt, with no model at all?

A data set teaches shortcuts when the gold answer is written in the prompt: the CVSS
metric definitions strung into a "description", an actor's malware left in an
attribution report, a technique's name beside the request for its id, an MCQ option
copied from the question. A model trained on such items learns to copy, and a held-out
score on them measures copying. This module runs a *no-model baseline* per task that
answers from the prompt alone by string and pattern matching (``data.shortcuts``),
scores it with the task's own scorer, and compares it with the task's *chance level*:
the best prompt-blind constant answer on the same items (the most common gold, the
most common letter, the per-metric majority vector), i.e. what a guess that never reads
the prompt earns.

The baseline is deliberately simple; it finds leaks, it is not a solver. Items it
solves are flagged with the reason (which name or phrase it matched), and a ceiling
(default: baseline score <= chance + 5 points on held-out) fails the run naming them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from secreason.data.shortcuts import Guess, Shortcuts
from secreason.tasks import get_task
from secreason.tasks.base import Extraction, Sample, Score


@dataclass
class AuditConfig:
    """Where the shortcut ceiling applies and how much above chance it allows."""

    #: the baseline may beat the task's chance level by at most this (0.05 = 5 points)
    margin: float = 0.05
    #: splits whose ceiling is enforced (the others are measured and reported)
    enforce: list[str] = field(default_factory=lambda: ["heldout"])
    #: fail the run when a ceiling is exceeded (False: report only)
    fail: bool = True
    #: splits with fewer items are reported, never enforced (too noisy to judge)
    min_items: int = 20
    #: solved examples kept per task and split in the report
    examples: int = 8


class ShortcutError(RuntimeError):
    """The shortcut baseline beat a ceiling; the message names the offending items."""


@dataclass
class SplitAudit:
    task: str
    split: str
    n: int
    baseline: float
    chance: float
    chance_answer: str
    solved: int
    ceiling: float
    enforced: bool
    passed: bool
    reasons: dict[str, int]
    examples: list[dict[str, str]]
    #: every item the baseline solved (the flags), for review or filtering
    solved_ids: list[str] = field(default_factory=list)


def _score(task_name: str, answer: str, reference: str) -> Score:
    task = get_task(task_name)
    extracted: Extraction = task.extract(f"Answer: {answer}")
    return task.score(extracted, reference)


def _chance(task: str, items: Sequence[Sample], extra: Sequence[str]) -> tuple[float, str]:
    """The best constant answer's mean score among the most common golds and ``extra``."""
    common = [r for r, _ in Counter(s.reference for s in items).most_common(10)]
    best, best_answer = 0.0, ""
    for answer in dict.fromkeys([*common, *extra]):
        mean = sum(_score(task, answer, s.reference).value for s in items) / len(items)
        if mean > best:
            best, best_answer = mean, answer
    return best, best_answer


def audit_split(
    task: str, split: str, items: Sequence[Sample], shortcuts: Shortcuts, config: AuditConfig
) -> SplitAudit:
    """Baseline and chance for one task's items of one split.

    The chance level is measured on the items the shortcut does *not* solve: leaking
    items that share one gold (a template that always writes "CWE-79") would otherwise
    raise the majority constant and hide themselves behind it."""
    extra = shortcuts.constants(task, items)
    guesses: list[tuple[Guess | None, float]] = []
    for s in items:
        guess: Guess | None = shortcuts.guess(s)
        value = _score(task, guess.answer, s.reference).value if guess else 0.0
        guesses.append((guess, value))
    clean = [s for s, (g, v) in zip(items, guesses, strict=True) if g is None or v < 1.0]
    chance, chance_answer = _chance(task, clean, extra) if clean else (0.0, "")
    total = 0.0
    solved = 0
    reasons: Counter[str] = Counter()
    examples: list[dict[str, str]] = []
    solved_ids: list[str] = []
    for s, (guess, value) in zip(items, guesses, strict=True):
        answer = guess.answer if guess else chance_answer
        score = value if guess else _score(task, answer, s.reference).value
        total += score
        if guess is not None and score >= 1.0:
            solved += 1
            solved_ids.append(s.id)
            reasons[guess.reason] += 1
            if len(examples) < config.examples:
                examples.append(
                    {"id": s.id, "reference": s.reference, "answer": answer, "why": guess.why}
                )
    baseline = total / len(items)
    ceiling = min(1.0, chance + config.margin)
    enforced = split in config.enforce and len(items) >= config.min_items
    return SplitAudit(
        task=task,
        split=split,
        n=len(items),
        baseline=round(baseline, 4),
        chance=round(chance, 4),
        chance_answer=chance_answer,
        solved=solved,
        ceiling=round(ceiling, 4),
        enforced=enforced,
        passed=not enforced or baseline <= ceiling + 1e-9,
        reasons=dict(reasons),
        examples=examples,
        solved_ids=solved_ids,
    )


def audit(
    splits: Mapping[str, Sequence[Sample]], config: AuditConfig | None = None
) -> dict[str, Any]:
    """Audit every task of every split; ``{"passed", "rows": [...], "config"}``."""
    cfg = config or AuditConfig()
    shortcuts = Shortcuts()
    rows: list[SplitAudit] = []
    for split, items in splits.items():
        by_task: dict[str, list[Sample]] = {}
        for s in items:
            if shortcuts.covers(s.task):
                by_task.setdefault(s.task, []).append(s)
        for task, group in sorted(by_task.items()):
            rows.append(audit_split(task, split, group, shortcuts, cfg))
    from secreason.data.consistency import split_leaks

    leaks = split_leaks(splits)
    return {
        "passed": all(r.passed for r in rows) and not leaks,
        "config": asdict(cfg),
        "rows": [asdict(r) for r in rows],
        "leaks": leaks,
    }


def failure_message(report: dict[str, Any]) -> str:
    """What failed, with the offending items' ids and what the baseline matched."""
    lines = [
        "shortcut audit failed: a no-model baseline answers from the prompt alone, "
        "or a prompt leaks across splits"
    ]
    for r in report["rows"]:
        if r["passed"]:
            continue
        lines.append(
            f"- {r['task']} / {r['split']}: baseline {100 * r['baseline']:.1f} > ceiling "
            f"{100 * r['ceiling']:.1f} (chance {100 * r['chance']:.1f}); {r['solved']} of "
            f"{r['n']} items solved from the prompt"
        )
        lines += [f"    {e['id']}: {e['why']} -> {e['answer']}" for e in r["examples"]]
        shown = {e["id"] for e in r["examples"]}
        rest = [i for i in r.get("solved_ids", []) if i not in shown]
        if rest:
            more = f" (+{len(rest) - 200} more)" if len(rest) > 200 else ""
            lines.append(f"    also solved: {', '.join(rest[:200])}{more}")
    for leak in report.get("leaks", []):
        lines.append(f"- {leak['task']}: {leak['kind']}: {', '.join(leak['ids'])}")
    return "\n".join(lines)


def check(report: dict[str, Any], config: AuditConfig) -> None:
    """Raise :class:`ShortcutError` when the report failed and the config says to fail."""
    if config.fail and not report["passed"]:
        raise ShortcutError(failure_message(report))


def load_splits(out_dir: str | Path) -> dict[str, list[Sample]]:
    """The exported splits of a pipeline run (``sft``, ``rl``, ``heldout``) as Samples."""
    from secreason.data.export import samples_from_rows

    root = Path(out_dir)
    found: dict[str, list[Sample]] = {}
    for name in ("sft", "rl", "heldout"):
        path = root / name / "train.jsonl"
        if path.is_file():
            with path.open(encoding="utf-8") as f:
                found[name] = samples_from_rows(json.loads(line) for line in f if line.strip())
    if not found:
        raise FileNotFoundError(f"{root}: no sft/, rl/ or heldout/train.jsonl (not a data run?)")
    return found
