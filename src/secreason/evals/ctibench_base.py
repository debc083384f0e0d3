"""CTIBench's shared loader: the TSV files, the authors' decoding, the gold checks.

Why a module of its own: the six CTIBench tasks (``evals.ctibench`` and TAA's
``evals.ctibench_taa``) read the same kind of file the same way: a ``Prompt`` column
sent as is after the authors' system prompt, a ``GT`` column checked at load so a
gold answer that cannot be scored is refused naming its row, and the notebooks'
decoding (temperature 0, top_p 1, seed 42, 2048 new tokens). A task adds its file
name, its columns, its gold check and its aggregates.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from secreason.backends.base import SamplingParams
from secreason.evals.base import ItemResult
from secreason.evals.row_prompt import RowPromptBenchmark
from secreason.evals.sources import Row, hub_rows, limited, local_file, read_table
from secreason.tasks.base import Protocol, Sample, Task, get_task

SYSTEM_PROMPT = "You are a cybersecurity expert specializing in cyberthreat intelligence."
HUB_ID = "AI4Sec/cti-bench"
OFFICIAL_SAMPLING = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=2048, seed=42)
PAPER_MODEL = "Foundation-Sec-8B-Reasoning"


def final_line(payload: str) -> str:
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
