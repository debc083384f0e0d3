"""CTIBench-TAA: threat actor attribution, gold from a labels file, scored on the maps.

Why a module of its own: TAA is the one CTIBench task whose gold is not in its file
(``cti-taa-labels.tsv``, one actor per row of ``cti-taa.tsv``, in order) and whose
official score depends on two more files, the authors' alias and related-group maps
(``taa_alias_dict.json`` / ``taa_related_dict.json``), found beside the TSV or passed
as options. The official search never matches a name the maps do not list, so a run
without the alias map says so on stderr. Scoring itself is the ``taa`` task's.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from secreason.evals.base import ItemResult
from secreason.evals.ctibench_base import CTIBenchTask, final_line
from secreason.evals.sources import Row, limited, read_json, read_table
from secreason.tasks.base import Message, Protocol, Sample, Task, get_task

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
    strict_instruction = final_line("<threat actor name>")

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
