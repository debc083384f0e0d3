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
``shuffle=K`` / ``fewshot=N`` (``evals.shuffle``, ``evals.fewshot``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from secreason.backends.base import SamplingParams
from secreason.evals.base import ItemResult, Reference
from secreason.evals.choice_measures import choice_measures
from secreason.evals.row_prompt import ChoiceVariants, RowPromptBenchmark
from secreason.evals.shuffle import shuffle_measures
from secreason.evals.sources import Row, hub_rows, limited, local_file, read_json, read_table
from secreason.tasks.attack import technique_set
from secreason.tasks.base import Message, Protocol, Sample, Task, get_task
from secreason.tasks.cvss import gold_vector
from secreason.tasks.cwe import cwe_number
from secreason.tasks.mcq import MCQ

SYSTEM_PROMPT = "You are a cybersecurity expert specializing in cyberthreat intelligence."
HUB_ID = "AI4Sec/cti-bench"
OFFICIAL_SAMPLING = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=2048, seed=42)
PAPER_MODEL = "Foundation-Sec-8B-Reasoning"


def _final_line(payload: str) -> str:
    return (
        "Whatever the instructions above say about the last line, finish your response "
        f"with one final line of exactly this form: 'Answer: {payload}'."
    )


class CTIBenchTask(RowPromptBenchmark):
    """One CTIBench task file: the shared TSV loader and the official decoding."""

    file: str = ""
    task_name: str = ""
    #: header columns a local file must have (TAA's gold lives in its labels file)
    columns: tuple[str, ...] = ("Prompt", "GT")
    system_prompt = SYSTEM_PROMPT
    sampling = OFFICIAL_SAMPLING

    def __init__(self) -> None:
        super().__init__()
        self.default_source = HUB_ID

    def make_task(self) -> Task:
        return get_task(self.task_name)

    # ------------------------------------------------------------------ loading
    def read_rows(self, source: str | Path | None) -> tuple[list[Row], Path | None]:
        """The file's rows and, for a local source, the folder beside it."""
        source = source or self.default_source
        path = local_file(source, self.file)
        if path is not None:
            return read_table(path, "\t", self.columns), path.parent
        return hub_rows(str(source), Path(self.file).stem, "test"), None

    def row_meta(self, row: Row) -> dict[str, Any]:
        return {}

    def reference(self, index: int, row: Row) -> str:
        return str(row["GT"]).strip()

    def load(self, source: str | Path | None = None, limit: int | None = None) -> list[Sample]:
        rows, _ = self.read_rows(source)
        return [self.sample(index, row) for index, row in enumerate(limited(rows, limit))]

    def sample(self, index: int, row: Row) -> Sample:
        if not str(row.get("Prompt") or "").strip():
            raise ValueError(f"{self.file}: row {index}: empty 'Prompt' column")
        return Sample(
            id=f"{self.name}-{index}",
            task=self.task_name,
            messages=[
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": str(row["Prompt"])},
            ],
            reference=self.checked(index, self.reference(index, row)),
            meta={"index": index, "url": row.get("URL", ""), **self.row_meta(row)},
        )

    def checked(self, index: int, reference: str) -> str:
        """The gold answer, refused at load (naming the row) when it cannot be scored,
        rather than failing mid-run or making every answer silently wrong."""
        try:
            self.check_reference(reference)
        except ValueError as error:
            raise ValueError(f"{self.file}: row {index}: gold {reference!r}: {error}") from None
        return reference

    def check_reference(self, reference: str) -> None:
        if not reference:
            raise ValueError("empty")

    def metrics(
        self, samples: Sequence[Sample], results: Sequence[ItemResult], protocol: Protocol
    ) -> dict[str, float]:
        return dict(self.task.aggregate([r.judgement.score for r in results]))


# ----------------------------------------------------------------------- MCQ


class CTIBenchMCQ(ChoiceVariants, CTIBenchTask):
    name = "ctibench-mcq"
    file = "cti-mcq.tsv"
    task_name = "mcq"
    strict_instruction = _final_line("<letter>")
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
    strict_instruction = _final_line("CWE-<number>")
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
    strict_instruction = _final_line("CVSS:3.1/AV:_/AC:_/PR:_/UI:_/S:_/C:_/I:_/A:_")
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
    strict_instruction = _final_line("T1234, T5678, ...")
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


# ----------------------------------------------------------------------- TAA

ALIAS_FILE = "taa_alias_dict.json"
RELATED_FILE = "taa_related_dict.json"
LABELS_FILE = "cti-taa-labels.tsv"
OFFICIAL_TAA_LINE = (
    "Finish your response with one final line of exactly this form: "
    "'Threat Actor: <threat actor name>'."
)


class CTIBenchTAA(CTIBenchTask):
    """Attribution: gold actors from the labels file, scored through the authors' maps."""

    name = "ctibench-taa"
    file = "cti-taa.tsv"
    task_name = "taa"
    columns = ("Prompt",)
    headline = "correct"
    strict_instruction = _final_line("<threat actor name>")

    def __init__(
        self,
        *,
        labels: str | Path | None = None,
        aliases: str | Path | None = None,
        related: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.labels_path = labels
        self.alias_path = aliases
        self.related_path = related
        self.aliases: dict[str, list[str]] | None = None
        self.related: dict[str, list[str]] | None = None

    def make_task(self) -> Task:
        options: dict[str, Any] = {}
        if self.aliases is not None:
            options["aliases"] = self.aliases
        if self.related is not None:
            options["related"] = self.related
        return get_task("taa", **options)

    def _beside(self, given: str | Path | None, folder: Path | None, name: str) -> Path | None:
        if given is not None:
            return Path(given).expanduser()
        if folder is not None and (folder / name).is_file():
            return folder / name
        return None

    def load(self, source: str | Path | None = None, limit: int | None = None) -> list[Sample]:
        rows, folder = self.read_rows(source)
        labels_path = self._beside(self.labels_path, folder, LABELS_FILE)
        if labels_path is None:
            raise FileNotFoundError(
                f"CTIBench TAA needs its gold labels: put {LABELS_FILE} beside {self.file} "
                "or pass labels=PATH (the authors' evaluation files hold them)"
            )
        labels = [str(r["GT"]).strip() for r in read_table(labels_path, "\t", ("GT",))]
        if len(labels) != len(rows):
            raise ValueError(f"{labels_path}: {len(labels)} labels for {len(rows)} TAA rows")
        for attr, given, name in (
            ("aliases", self.alias_path, ALIAS_FILE),
            ("related", self.related_path, RELATED_FILE),
        ):
            path = self._beside(given, folder, name)
            if path is not None:
                setattr(
                    self, attr, {str(k): [str(v) for v in vs] for k, vs in read_json(path).items()}
                )
            elif attr == "aliases":
                print(
                    f"warning: {self.name}: no {ALIAS_FILE} beside {self.file}; the official "
                    "TAA score only matches names through the authors' maps, so without "
                    "them every official answer is incorrect (strict still matches names)",
                    file=sys.stderr,
                )
        self._task = None  # rebuilt with the maps just read
        self._labels = labels
        return [self.sample(index, row) for index, row in enumerate(limited(rows, limit))]

    def reference(self, index: int, row: Row) -> str:
        return self._labels[index]

    def row_meta(self, row: Row) -> dict[str, Any]:
        return {"text": row.get("Text", "")}

    def messages(self, sample: Sample, protocol: Protocol) -> list[Message]:
        if protocol == "strict":
            return super().messages(sample, protocol)
        # The authors read TAA answers by hand; the automatic official rule (the paper
        # harness's) reads 'Threat Actor: <name>', so the official prompt asks for it.
        out = [dict(m) for m in sample.messages]
        out[-1]["content"] = f"{out[-1]['content'].rstrip()}\n\n{OFFICIAL_TAA_LINE}"
        return out

    def metrics(
        self, samples: Sequence[Sample], results: Sequence[ItemResult], protocol: Protocol
    ) -> dict[str, float]:
        scores = [r.judgement.score for r in results]
        out = dict(self.task.aggregate(scores))
        n = len(scores)
        labels = [str(s.details.get("label", s.status)) for s in scores]
        correct = sum(label == "correct" for label in labels)
        plausible = sum(label == "plausible" for label in labels)
        out["correct"] = correct / n if n else 0.0
        out["correct_plausible"] = (correct + plausible) / n if n else 0.0
        return out


CTIBENCH: dict[str, type[CTIBenchTask]] = {
    cls.name: cls
    for cls in (CTIBenchMCQ, CTIBenchRCM, CTIBenchRCM2021, CTIBenchVSP, CTIBenchATE, CTIBenchTAA)
}
