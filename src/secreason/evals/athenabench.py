"""AthenaBench (arXiv 2511.01144): CKT/MCQ, ATE, RCM, RMS, VSP and TAA, CTIBench's successor.

Files (GitHub Athena-Software-Group/athenabench; mini split in ``benchmark-mini/``, full
split by request, same names): JSON lines ``athena-cti-{mcq-3k,ate,rcm,rms,vsp,taa}.jsonl``
with a ready ``prompt`` and a gold ``answer``. Licence: academic, non-commercial; the
project reads them from the user's ``--data DIR`` (the file, a folder holding it, or
the repository root with ``benchmark/`` or ``benchmark-mini/``) and ships none.

Both protocols send the row's ``prompt`` as the only user turn (it already asks for a
final ``Answer:`` line), so one generation serves both; decoding is greedy (2048 new
tokens) unless the run says otherwise. Official = the authors' scorer
(``athena_eval/evaluate.py`` and ``answer_extractors.py``), reproduced rule for rule on
the answer region (as everywhere here, nothing is read inside a reasoning block; the
authors' models write none, so for them the answer region is the whole response):

* reading: the last non-empty line with a match, after one leading ``Answer:``-style
  label is dropped (``tasks.mitigation.athena_last_match``); MCQ: first standalone
  letter A-E on it, case-insensitive (so a stray "a" counts); RCM ``CWE-\\d+``; ATE
  ``T\\d{4}(.\\d{3})?`` cut to the main technique; VSP ``CVSS:3.1/\\S+``; TAA and RMS
  the whole line (quotes stripped, spaces collapsed; RMS keeps its ``M\\d{4}`` ids).
* scoring: MCQ, RCM: case-insensitive string equality; ATE: main technique equality;
  RMS: mean per-row F1 of the id sets; VSP: ``|base(pred) - base(gold)|`` by the
  ``cvss`` package over rows whose vector parses (the others leave the mean, and with
  none at all the mean is 0), ``accuracy = 1 - MAD / 7.7``; TAA: a breadth-first
  search FROM THE GOLD name (lower-cased) over the alias graph (reached, the gold itself
  included: correct) and over alias + related edges (plausible); ``accuracy``,
  ``plausible_accuracy`` (correct or plausible) and ``combined_accuracy`` (1 / 0.5 / 0).
  The alias and related maps are the authors' ``aliases.csv`` (ThreatActor, Alias) and
  ``related_groups.csv`` (ThreatActor, RelatedGroup): found beside the TAA file or
  given as options; without them only the exact name (up to case) is correct.
  Every row counts in every denominator except VSP's unparseable ones.

Strict = the project's tasks on the same completions (``Answer: X`` on the last line of
the answer region, hedges invalid, invalid = wrong in every denominator): ``mcq`` A-E,
``cwe``, ``ate`` with sub-techniques collapsed (accuracy = exact set), ``cvss``
(``accuracy`` = mean of ``max(0, 1 - |d| / 7.7)``, invalid = 0), ``taa`` on the same
maps, ``rms``.

MCQ also reports the one-pass measures of ``evals.choice_measures``, accuracy per
``source_type``, and takes ``shuffle=K`` / ``fewshot=N`` (``evals.shuffle``,
``evals.fewshot``; ``--shuffle-options`` / ``--fewshot`` on the command line).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from secreason.backends.base import SamplingParams
from secreason.evals.athenabench_rules import (
    ALIAS_FILE,
    RELATED_FILE,
    VSP_DENOMINATOR,
    AthenaTask,
    Graph,
    exact,
    line_reader,
    read_pairs,
    taa_connection,
    technique,
    vsp,
)
from secreason.evals.base import ItemResult
from secreason.evals.choice import accuracy_by
from secreason.evals.choice_measures import choice_measures
from secreason.evals.row_prompt import ChoiceVariants, RowPromptBenchmark
from secreason.evals.shuffle import shuffle_measures
from secreason.evals.sources import Row, limited, local_file, read_jsonl
from secreason.tasks.actor import ThreatActorAttribution
from secreason.tasks.attack import TechniqueExtraction
from secreason.tasks.base import Protocol, Sample, Score, Task, get_task
from secreason.tasks.mcq import MCQ
from secreason.tasks.mitigation import athena_freeform


class AthenaBenchTask(RowPromptBenchmark):
    """One AthenaBench file: JSONL loader, the row's prompt, both protocols."""

    file = ""
    columns: tuple[str, ...] = ()  # extra columns kept in ``meta``
    sampling = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=2048, seed=42)

    def __init__(self) -> None:
        super().__init__()
        self.folder: Path | None = None

    def load(self, source: str | Path | None = None, limit: int | None = None) -> list[Sample]:
        names = [self.file, f"benchmark/{self.file}", f"benchmark-mini/{self.file}"]
        path = local_file(source, names) if source else None
        if path is None:
            raise FileNotFoundError(
                f"{self.name}: AthenaBench is read from local files only (its licence "
                f"forbids redistribution); pass --data DIR holding {self.file} "
                "(or the repository root with benchmark/ or benchmark-mini/)"
            )
        self.folder = path.parent
        rows = read_jsonl(path, ("prompt", "answer"))
        return [self.sample(i, row, path) for i, row in enumerate(limited(rows, limit))]

    def sample(self, index: int, row: Row, path: Path) -> Sample:
        for key in ("prompt", "answer"):
            if not str(row.get(key) or "").strip():
                raise ValueError(f"{path}: row {index}: empty or missing {key!r}")
        return Sample(
            id=f"{self.name}-{index}",
            task=self.task.name,
            messages=[{"role": "user", "content": str(row["prompt"])}],
            reference=str(row["answer"]).strip(),
            meta={"index": index, **{c: row.get(c) for c in self.columns if c in row}},
        )

    def metrics(
        self, samples: Sequence[Sample], results: Sequence[ItemResult], protocol: Protocol
    ) -> dict[str, float]:
        scores = [r.judgement.score for r in results]
        out = dict(self.task.aggregate(scores))
        if protocol == "official" and scores:
            out["accuracy"] = sum(s.value for s in scores) / len(scores)
        return out


class AthenaMCQ(ChoiceVariants, AthenaBenchTask):
    name = "athenabench-mcq"
    file = "athena-cti-mcq-3k.jsonl"
    columns = ("question", "source_type", "url")
    option_count = 5

    def make_task(self) -> Task:
        read = line_reader(r"\b([A-E])\b", str.upper)
        return AthenaTask(MCQ(letters="ABCDE"), read, exact)

    def sample(self, index: int, row: Row, path: Path) -> Sample:
        out = super().sample(index, row, path)
        # Some rows' option columns repeat their own letter ("A. DS0015 ..."), which
        # the prompt does not show: the options are kept as the prompt shows them.
        options = {c: str(row.get(f"option_{c.lower()}") or "").strip() for c in "ABCDE"}
        out.meta["options"] = {c: re.sub(rf"^{c}[.)]\s+", "", text) for c, text in options.items()}
        return out

    def metrics(
        self, samples: Sequence[Sample], results: Sequence[ItemResult], protocol: Protocol
    ) -> dict[str, float]:
        out = super().metrics(samples, results, protocol)
        out.update(choice_measures(self.task, samples, results))
        out.update(accuracy_by(samples, results, "source_type", "source_type"))
        if self.shuffle > 1:
            out.update(shuffle_measures(samples, results))
        return out


class AthenaATE(AthenaBenchTask):
    name = "athenabench-ate"
    file = "athena-cti-ate.jsonl"
    columns = ("technique_id", "scenario")

    def make_task(self) -> Task:
        read = line_reader(r"(T\d{4}(?:\.\d{3})?)", lambda s: s.upper().split(".")[0])
        return AthenaTask(TechniqueExtraction(collapse_subtechniques=True), read, technique)


class AthenaRCM(AthenaBenchTask):
    name = "athenabench-rcm"
    file = "athena-cti-rcm.jsonl"
    columns = ("cve_id", "description")

    def make_task(self) -> Task:
        return AthenaTask(get_task("cwe"), line_reader(r"(CWE-\d+)", str.upper), exact)


class AthenaRMS(AthenaBenchTask):
    name = "athenabench-rms"
    file = "athena-cti-rms.jsonl"
    headline = "f1"
    columns = ("technique_id", "scenario")

    def make_task(self) -> Task:
        return get_task("rms")  # its official rule is AthenaBench's

    def metrics(
        self, samples: Sequence[Sample], results: Sequence[ItemResult], protocol: Protocol
    ) -> dict[str, float]:
        return dict(self.task.aggregate([r.judgement.score for r in results]))


class AthenaVSP(AthenaBenchTask):
    name = "athenabench-vsp"
    file = "athena-cti-vsp.jsonl"
    columns = ("cve_id", "description", "vector_score", "severity")

    def make_task(self) -> Task:
        return AthenaTask(get_task("cvss"), line_reader(r"(CVSS:3\.1/[^\s]+)", str.strip), vsp)

    def metrics(
        self, samples: Sequence[Sample], results: Sequence[ItemResult], protocol: Protocol
    ) -> dict[str, float]:
        scores = [r.judgement.score for r in results]
        n = len(scores)
        found = [float(s.details["deviation"]) for s in scores if "deviation" in s.details]
        mad = sum(found) / len(found) if found else 0.0
        out: dict[str, float] = {"n": n, "n_valid": len(found), "mad": mad}
        if protocol == "official":
            out["accuracy"] = 1.0 - mad / VSP_DENOMINATOR
        else:
            per_item = [max(0.0, 1.0 - d / VSP_DENOMINATOR) for d in found]
            out["accuracy"] = sum(per_item) / n if n else 0.0
        return out


class AthenaTAA(AthenaBenchTask):
    name = "athenabench-taa"
    file = "athena-cti-taa.jsonl"
    columns = ("url", "timestamp", "description")

    def __init__(self, *, aliases: str | Path | None = None, related: str | Path | None = None):
        super().__init__()
        self.alias_path, self.related_path = aliases, related
        self.alias: Graph = {}
        self.related: Graph = {}

    def load(self, source: str | Path | None = None, limit: int | None = None) -> list[Sample]:
        samples = super().load(source, limit)
        for attr, given, name, column in (
            ("alias", self.alias_path, ALIAS_FILE, "Alias"),
            ("related", self.related_path, RELATED_FILE, "RelatedGroup"),
        ):
            path = Path(given).expanduser() if given else (self.folder or Path()) / name
            if given and not path.is_file():
                raise FileNotFoundError(f"{self.name}: {attr} map {path} does not exist")
            setattr(self, attr, read_pairs(path, column) if path.is_file() else {})
        self._task = None  # rebuilt on the maps just read
        return samples

    def make_task(self) -> Task:
        strict = ThreatActorAttribution(
            aliases={k: sorted(v) for k, v in self.alias.items()},
            related={k: sorted(v) for k, v in self.related.items()},
        )
        return AthenaTask(strict, line_reader(r"(.+)", athena_freeform), self._connection)

    def _connection(self, pred: str, gold: str) -> Score:
        return taa_connection(pred, gold, self.alias, self.related)

    def metrics(
        self, samples: Sequence[Sample], results: Sequence[ItemResult], protocol: Protocol
    ) -> dict[str, float]:
        scores = [r.judgement.score for r in results]
        n = len(scores) or 1
        labels = [s.details.get("label") for s in scores]
        correct = labels.count("correct") / n
        plausible = labels.count("plausible") / n
        return {
            "n": len(scores),
            "accuracy": correct,
            "plausible_accuracy": correct + plausible,
            "combined_accuracy": (correct + 0.5 * plausible),
            "invalid_rate": sum(s.status == "invalid" for s in scores) / n,
        }


ATHENABENCH: dict[str, type[AthenaBenchTask]] = {
    cls.name: cls for cls in (AthenaMCQ, AthenaATE, AthenaRCM, AthenaRMS, AthenaVSP, AthenaTAA)
}
