"""AthenaBench's official rules: the authors' reader and per-task scorers, in one place.

Why a module of its own: ``evals.athenabench`` loads the six files and aggregates; what
decides a single official score lives here, so it can be read against the authors'
``athena_eval/answer_extractors.py`` and ``evaluate.py`` side by side (rules restated in
``evals.athenabench``'s docstring). Each scorer takes the string the authors' reader
returned ('' when it found nothing) and the gold answer; :class:`AthenaTask` puts a
project task (strict protocol) and these rules (official protocol) behind one
:class:`~secreason.tasks.base.Task`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from secreason.evals.sources import read_table
from secreason.tasks.base import Extraction, Protocol, Sample, Score, ScoreStatus, Task
from secreason.tasks.cvss import parse_vector
from secreason.tasks.mitigation import athena_last_match

VSP_DENOMINATOR = 7.7
ALIAS_FILE = "aliases.csv"
RELATED_FILE = "related_groups.csv"
Graph = dict[str, set[str]]


@dataclass(frozen=True)
class AthenaPrediction(Extraction):
    """What the authors' reader returned (``raw``, '' when it found nothing)."""

    raw: str = ""


def _same(pred: str, gold: str) -> bool:
    return pred.strip().lower() == gold.strip().lower()


def exact(pred: str, gold: str) -> Score:
    """MCQ and RCM: the strings equal up to case and surrounding space."""
    hit = _same(pred, gold)
    return Score(float(hit), "correct" if hit else ("incorrect" if pred else "invalid"))


def technique(pred: str, gold: str) -> Score:
    """ATE: the main techniques (before any '.') equal, and not empty."""
    p, a = pred.strip().split(".")[0].upper(), gold.strip().split(".")[0].upper()
    hit = bool(p) and p == a
    return Score(float(hit), "correct" if hit else ("incorrect" if pred else "invalid"))


def vsp(pred: str, gold: str) -> Score:
    """VSP: value 1 - |d|/7.7 of the base scores; 'success' False when either fails to parse."""
    try:
        p, a = parse_vector(pred.strip()), parse_vector(gold.strip())
    except Exception as error:  # the authors count any failure as "not scored"
        return Score(0.0, "invalid", {"success": False, "error": str(error)})
    if p.base_score is None or a.base_score is None:
        return Score(0.0, "invalid", {"success": False, "error": p.error or a.error})
    deviation = abs(p.base_score - a.base_score)
    value = 1.0 - deviation / VSP_DENOMINATOR
    status: ScoreStatus = "correct" if deviation == 0 else "incorrect"
    return Score(value, status, {"success": True, "deviation": deviation})


def _reaches(start: str, target: str, graphs: Sequence[Graph]) -> bool:
    seen, queue = {start}, deque([start])
    while queue:
        node = queue.popleft()
        if node == target:
            return True
        for graph in graphs:
            for nxt in graph.get(node, ()):
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
    return False


def read_pairs(path: Path, column: str) -> Graph:
    """An authors' CSV (``ThreatActor``, ``column``) as a symmetric lower-cased graph."""
    graph: Graph = {}
    for number, row in enumerate(read_table(path, ","), 2):
        if "ThreatActor" not in row or column not in row:
            raise ValueError(f"{path}: line {number}: needs columns ThreatActor and {column}")
        a, b = str(row["ThreatActor"]).strip().lower(), str(row[column] or "").strip().lower()
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set()).add(a)
    return graph


class AthenaTask(Task):
    """Strict: a project task. Official: the authors' reader and scorer (see module)."""

    def __init__(
        self, strict: Task, read: Callable[[str], str], mark: Callable[[str, str], Score]
    ) -> None:
        self.strict, self.read, self.mark = strict, read, mark
        self.name = strict.name

    def prompt(self, sample: Sample) -> list[dict[str, str]]:
        return self.strict.prompt(sample)

    def extract(self, answer_text: str, protocol: Protocol = "strict") -> Extraction:
        if protocol != "official":
            return self.strict.extract(answer_text, protocol)
        raw = self.read(answer_text)
        error = None if raw else "the authors' reader found nothing"
        return AthenaPrediction(raw or None, error, raw)

    def score(self, extracted: Extraction, reference: str) -> Score:
        if isinstance(extracted, AthenaPrediction):
            return self.mark(extracted.raw, reference)
        return self.strict.score(extracted, reference)

    def aggregate(self, scores: Sequence[Score]) -> dict[str, float]:
        return self.strict.aggregate(scores)


def line_reader(pattern: str, transform: Callable[[str], str]) -> Callable[[str], str]:
    return lambda text: athena_last_match(text, pattern, transform)


def taa_connection(pred: str, gold: str, alias: Graph, related: Graph) -> Score:
    """Correct: reached from the gold over alias edges; plausible: alias + related edges."""
    a, b = gold.strip().lower(), pred.strip().lower()
    if _reaches(a, b, [alias]):
        return Score(1.0, "correct", {"label": "correct"})
    if _reaches(a, b, [alias, related]):
        return Score(0.5, "incorrect", {"label": "plausible"})
    return Score(0.0, "incorrect" if pred else "invalid", {"label": "incorrect"})
