"""CyberMetric (80 / 500 / 2000 / 10000): four-option security knowledge questions.

Files: ``CyberMetric-<N>-v1.json`` = ``{"questions": [{"question", "answers": {"A".."D"},
"solution"}]}`` (GitHub cybermetric/CyberMetric).

Official protocol, as the authors' evaluator runs it: the prompt shows the question, the
options inline as ``A) ..., B) ...`` and asks for the reply ``ANSWER: X``; the answer is
the FIRST match of ``ANSWER:?\\s*([A-D])`` (case-insensitive) in the response; a
response without one is re-asked, up to 5 attempts, and an item that never yields a
letter counts as wrong. Accuracy = correct / all questions. The re-ask is a flag the
runner honours (``reask=5``); it is off for the strict protocol and by default here so
that a run is one generation per item unless asked otherwise.

Strict protocol: the same prompt plus a final-line ``Answer: X`` instruction.
"""

from __future__ import annotations

import re
from pathlib import Path

from secreason.backends.base import SamplingParams
from secreason.evals.base import Reference
from secreason.evals.choice import ChoiceBenchmark
from secreason.evals.sources import hub_rows, limited, local_file, read_json, required
from secreason.tasks.base import Extraction, Sample

SIZES = (80, 500, 2000, 10000)
_RULE = re.compile(r"ANSWER:?\s*([A-D])", re.IGNORECASE)

PROMPT = (
    "Question: {question}\nOptions: {options}\n\n"
    "Pick the one correct option (A, B, C or D). Reply in the form 'ANSWER: X'."
)


def cybermetric_official(text: str) -> Extraction:
    """The evaluator's rule: first ``ANSWER: X`` anywhere, letter upper-cased."""
    if not text.strip():
        return Extraction(None, "empty response")
    match = _RULE.search(text)
    if match is None:
        return Extraction(None, "no 'ANSWER: X' in the response")
    return Extraction(match.group(1).upper())


class CyberMetric(ChoiceBenchmark):
    default_template = PROMPT
    system_prompt = "You are a cybersecurity expert. Answer the question asked."
    sampling = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=2048, seed=42)

    def __init__(
        self, size: int = 2000, *, reask: int = 0, template: str | Path | None = None
    ) -> None:
        if size not in SIZES:
            raise ValueError(f"CyberMetric size {size} unknown; choose one of {SIZES}")
        self.size = size
        self.name = f"cybermetric-{size}"
        self.default_source = f"CyberMetric-{size}-v1.json"
        self.reask = reask
        super().__init__(template=template)
        if size == 2000:
            self.references = (Reference("Foundation-Sec-8B-Reasoning", "accuracy", 0.843),)

    @staticmethod
    def rule(text: str) -> Extraction:
        return cybermetric_official(text)

    def options_text(self, options: dict[str, str]) -> str:
        return ", ".join(f"{k}) {v}" for k, v in options.items())

    def load(self, source: str | Path | None = None, limit: int | None = None) -> list[Sample]:
        source = source or self.default_source
        path = local_file(source, self.default_source)
        if path is not None:
            data = read_json(path)
            rows = required(data, "questions", str(path)) if isinstance(data, dict) else data
            if not isinstance(rows, list) or not rows:
                raise ValueError(f"{path}: expected a non-empty list under 'questions'")
        else:
            rows = hub_rows(str(source))
        samples = []
        for index, row in enumerate(limited(rows, self.rows_limit(limit))):
            at = f"{path or source}: question {index}"
            answers = required(row, "answers", at)
            if not isinstance(answers, dict):
                raise ValueError(f"{at}: 'answers' must map letters to options")
            options = {k: str(v) for k, v in answers.items()}
            gold = str(required(row, "solution", at)).strip().upper()
            if gold not in options:
                raise ValueError(f"{at}: solution {gold!r} is none of {', '.join(options)}")
            samples.append(
                self.make_sample(index, str(required(row, "question", at)), options, gold)
            )
        return self.finish(samples, limit)
