"""CTIBench (NeurIPS 2024 datasets track): MCQ, RCM, RCM-2021, VSP, ATE and TAA.

Files (GitHub xashru/cti-bench, same as HF ``AI4Sec/cti-bench``): tab-separated with a
header row; every file has the full zero-shot prompt in a ``Prompt`` column and, except
TAA, the gold answer in ``GT``. TAA's gold actors come from ``cti-taa-labels.tsv`` (one
per row of ``cti-taa.tsv``, in order) and its scoring from the authors' alias and
related-group maps ``taa_alias_dict.json`` / ``taa_related_dict.json``.

Official protocol (the authors' notebooks): system prompt "You are a cybersecurity
expert specializing in cyberthreat intelligence.", temperature 0, top_p 1, seed 42,
max_tokens 2048, the row's own ``Prompt``. Extraction rules live in the tasks (MCQ last
line; RCM last ``CWE-\\d+``; VSP last eight-metric vector read as ``CVSS:3.0/``).
Aggregates, as the notebooks compute them:

* MCQ: correct / all rows (the one lower-case GT, ``b``, is upper-cased). The notebook
  itself divides by rows whose prediction is a letter (or X, a refusal):
  ``accuracy_answered`` reports that figure beside it.
* RCM: correct / predictions that start with ``CWE-``: rows with no CWE id leave the
  denominator (``accuracy``); ``accuracy_all`` keeps them, for comparison.
* VSP: mean absolute deviation of the base score over parseable vectors only (``mad``).
* ATE: micro-F1 over pooled counts (the paper), macro-F1 (the CTIBench site), Jaccard.
  CTIBench published no ATE parser; the official rule is the paper harness's
  ``Answer: T..., T...`` reading, so ATE's prompt carries the final-line instruction
  under both protocols.
* TAA: correct % and correct+plausible % over all rows; the maps are used literally
  (the string "nan" links every actor listed with ``["nan"]``). The authors read
  the predicted actor by hand; the automatic rule is the paper harness's
  ``Threat Actor: <name>``, which the official prompt therefore asks for.

Strict protocol (FAITH-like, the paper's numbers): the same system prompt and row
prompt plus a final-line instruction (``Answer: ...``); invalid answers stay in every
denominator as wrong; VSP scores each item ``1 - |diff|/10`` with invalid = 0
(``score``). The paper's published numbers are strict: the references say so.

MCQ also reports the one-pass measures of ``evals.choice_measures`` and takes
``shuffle=K`` / ``fewshot=N`` (``evals.shuffle``, ``evals.fewshot``). The shared
loader is ``evals.ctibench_base``; TAA lives in ``evals.ctibench_taa``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from secreason.evals.base import ItemResult, Reference
from secreason.evals.choice_measures import choice_measures
from secreason.evals.ctibench_base import (
    PAPER_MODEL,
    SYSTEM_PROMPT,
    CTIBenchTask,
    final_line,
)
from secreason.evals.ctibench_taa import CTIBenchTAA
from secreason.evals.row_prompt import ChoiceVariants
from secreason.evals.shuffle import shuffle_measures
from secreason.evals.sources import Row
from secreason.tasks.attack import technique_set
from secreason.tasks.base import Message, Protocol, Sample, Task
from secreason.tasks.cvss import gold_vector
from secreason.tasks.cwe import cwe_number
from secreason.tasks.mcq import MCQ

__all__ = [
    "CTIBENCH",
    "PAPER_MODEL",
    "SYSTEM_PROMPT",
    "CTIBenchATE",
    "CTIBenchMCQ",
    "CTIBenchRCM",
    "CTIBenchRCM2021",
    "CTIBenchTAA",
    "CTIBenchTask",
    "CTIBenchVSP",
]


# ----------------------------------------------------------------------- MCQ


class CTIBenchMCQ(ChoiceVariants, CTIBenchTask):
    name = "ctibench-mcq"
    file = "cti-mcq.tsv"
    task_name = "mcq"
    strict_instruction = final_line("<letter>")
    references = (Reference(PAPER_MODEL, "accuracy", 0.691),)

    def make_task(self) -> Task:
        return MCQ()  # its official rule is CTIBench's

    def row_meta(self, row: Row) -> dict[str, Any]:
        # Empty options stay empty here; the row's prompt shows them as "nan".
        options = {c: str(row.get(f"Option {c}") or "") for c in "ABCD"}
        return {"question": row.get("Question", ""), "options": options}

    def reference(self, index: int, row: Row) -> str:
        return str(row["GT"]).strip().upper()

    def check_reference(self, reference: str) -> None:
        if reference not in ("A", "B", "C", "D"):
            raise ValueError("not one of the letters A-D")

    def metrics(
        self, samples: Sequence[Sample], results: Sequence[ItemResult], protocol: Protocol
    ) -> dict[str, float]:
        out = super().metrics(samples, results, protocol)
        answered = [r for r in results if r.judgement.score.status != "invalid"]
        if answered:
            correct = sum(r.judgement.score.status == "correct" for r in answered)
            out["accuracy_answered"] = correct / len(answered)
        out.update(choice_measures(self.task, samples, results))
        if self.shuffle > 1:
            out.update(shuffle_measures(samples, results))
        return out


# ----------------------------------------------------------------------- RCM


class CTIBenchRCM(CTIBenchTask):
    name = "ctibench-rcm"
    file = "cti-rcm.tsv"
    task_name = "cwe"
    strict_instruction = final_line("CWE-<number>")
    references: tuple[Reference, ...] = (Reference(PAPER_MODEL, "accuracy", 0.753),)

    def row_meta(self, row: Row) -> dict[str, Any]:
        return {"description": row.get("Description", "")}

    def check_reference(self, reference: str) -> None:
        cwe_number(reference)

    def metrics(
        self, samples: Sequence[Sample], results: Sequence[ItemResult], protocol: Protocol
    ) -> dict[str, float]:
        scores = [r.judgement.score for r in results]
        out = dict(self.task.aggregate(scores))
        correct = sum(s.status == "correct" for s in scores)
        valid = sum(s.status != "invalid" for s in scores)
        out["accuracy_all"] = correct / len(scores) if scores else 0.0
        if protocol == "official":
            # The notebook's denominator: only predictions that are CWE ids.
            out["accuracy"] = correct / valid if valid else 0.0
        else:
            out["accuracy"] = out["accuracy_all"]
        out["n_valid"] = float(valid)
        return out


class CTIBenchRCM2021(CTIBenchRCM):
    name = "ctibench-rcm-2021"
    file = "cti-rcm-2021.tsv"
    references = ()


# ----------------------------------------------------------------------- VSP


class CTIBenchVSP(CTIBenchTask):
    name = "ctibench-vsp"
    file = "cti-vsp.tsv"
    task_name = "cvss"
    headline = "score"
    strict_instruction = final_line("CVSS:3.1/AV:_/AC:_/PR:_/UI:_/S:_/C:_/I:_/A:_")
    references = (Reference(PAPER_MODEL, "score", 0.856),)

    def row_meta(self, row: Row) -> dict[str, Any]:
        return {"description": row.get("Description", "")}

    def check_reference(self, reference: str) -> None:
        gold_vector(reference)

    def metrics(
        self, samples: Sequence[Sample], results: Sequence[ItemResult], protocol: Protocol
    ) -> dict[str, float]:
        # The cvss task already aggregates both rules: official MAD over parseable
        # vectors only (``mad``), strict per-item 1-|d|/10 with invalid = 0 (``mean``).
        out = dict(self.task.aggregate([r.judgement.score for r in results]))
        out["score"] = out.get("mean", 0.0)
        return out


# ----------------------------------------------------------------------- ATE


class CTIBenchATE(CTIBenchTask):
    name = "ctibench-ate"
    file = "cti-ate.tsv"
    task_name = "ate"
    headline = "micro_f1"
    strict_instruction = final_line("T1234, T5678, ...")
    references = (Reference(PAPER_MODEL, "micro_f1", 0.491),)

    def row_meta(self, row: Row) -> dict[str, Any]:
        return {"platform": row.get("Platform", ""), "description": row.get("Description", "")}

    def check_reference(self, reference: str) -> None:
        technique_set(reference)

    def messages(self, sample: Sample, protocol: Protocol) -> list[Message]:
        # CTIBench published no ATE extraction code; the official rule is the paper
        # harness's, which reads an 'Answer: T..., T...' line, so both protocols ask
        # for one (the row's own prompt asks for bare ids, which that rule cannot read).
        return super().messages(sample, "strict")


CTIBENCH: dict[str, type[CTIBenchTask]] = {
    cls.name: cls
    for cls in (CTIBenchMCQ, CTIBenchRCM, CTIBenchRCM2021, CTIBenchVSP, CTIBenchATE, CTIBenchTAA)
}
