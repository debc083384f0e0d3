"""MMLU computer_security: 100 four-option test questions (the paper's "MMLU-Security").

Sources: a CSV with header ``question, choice0..choice3, answer`` (answer 0-3, the
re-export in ``../shared/benchmarks``), a folder holding ``computer_security_test.csv``,
or the hub id ``cais/mmlu`` (config ``computer_security``, split ``test``; columns
question, choices, answer as an integer). The integer answer becomes its letter.

MMLU was published as a log-likelihood benchmark, so it has no generative extraction
rule; the official protocol here is the paper's harness convention (``Answer: X``
statements anywhere in the answer region must agree), the strict protocol reads the
final line only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from secreason.backends.base import SamplingParams
from secreason.evals.base import Reference
from secreason.evals.choice import ChoiceBenchmark, answer_statement
from secreason.evals.sources import hub_rows, limited, local_file, read_table, required
from secreason.tasks.base import Extraction, Sample

PROMPT = (
    "The following is a multiple-choice question about computer security.\n\n"
    "{question}\n\n{options}\n\nGive your choice as 'Answer: <letter>'."
)


class MMLUSecurity(ChoiceBenchmark):
    name = "mmlu-security"
    default_source = "cais/mmlu"
    default_template = PROMPT
    sampling = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=2048, seed=42)
    references = (Reference("Foundation-Sec-8B-Reasoning", "accuracy", 0.782),)

    @staticmethod
    def rule(text: str) -> Extraction:
        return answer_statement(text, "ABCD")

    def load(self, source: str | Path | None = None, limit: int | None = None) -> list[Sample]:
        source = source or self.default_source
        path = local_file(source, ["computer_security_test.csv", "test.csv"])
        if path is not None:
            rows = read_table(path, None, ("question", "answer"))
        else:
            rows = hub_rows(str(source), "computer_security", "test")
        samples = self._samples(rows, str(source), limit)
        pool = None
        if self.fewshot:  # MMLU's own 5-question dev split, when it is there
            dev = path.parent / "computer_security_dev.csv" if path is not None else None
            if dev is not None and dev.is_file():
                rows_dev = read_table(dev, None, ("question", "answer"))
                pool = self._samples(rows_dev, str(dev), None, "dev")
            elif path is None:
                pool = self._samples(
                    hub_rows(str(source), "computer_security", "dev"), "", None, "dev"
                )
        return self.finish(samples, limit, pool)

    def _samples(
        self, rows: list[dict[str, Any]], where: str, limit: int | None, split: str = ""
    ) -> list[Sample]:
        samples = []
        for index, row in enumerate(limited(rows, self.rows_limit(limit))):
            at = f"{where}: row {index}"
            choices = row.get("choices")
            if choices is None:
                choices = [required(row, f"choice{i}", at) for i in range(4)]
            raw = str(required(row, "answer", at)).strip()
            if not raw.isdigit() or not 0 <= int(raw) < len(choices):
                raise ValueError(f"{at}: answer {raw!r} is not a choice number 0..3")
            answer = int(raw)
            options = dict(zip("ABCD", (str(c) for c in choices), strict=False))
            sample = self.make_sample(index, str(row["question"]), options, "ABCD"[answer])
            if split:
                sample.id = f"{self.name}-{split}-{index}"
            samples.append(sample)
        return samples
