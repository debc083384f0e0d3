"""SecBench MCQ, English single-answer subset (595 questions on ``MCQs_2730.jsonl``).

File: ``MCQs_2730.jsonl`` (GitHub secbench-git/SecBench); keys question, answers (a list
of 4 options, 7 rows have 5), label ("B", or several letters like "ABD"), language,
ability, domain (Chinese names).

The subset the paper scores (FAITH's ``secbench-mcqa-eng``): ``language == "English"``,
no CJK ideograph (U+4E00..U+9FFF) in the question (some rows labelled English are not),
and a label that is one of A-D after stripping and upper-casing. ``dedup=True`` further
drops repeated questions (same question and options; the first occurrence stays), which
the published number does not do.

SecBench has no published generative extraction rule; the official protocol here is
the paper's harness convention: an ``Answer: X`` statement anywhere in the answer
region, counted only when every such statement names the same letter. Strict: the same
prompt plus a final-line ``Answer: X`` instruction, read from the last line only.
"""

from __future__ import annotations

import re
from pathlib import Path

from secreason.backends.base import SamplingParams
from secreason.evals.base import Reference
from secreason.evals.choice import ChoiceBenchmark, answer_statement
from secreason.evals.sources import hub_rows, local_file, read_jsonl
from secreason.tasks.base import Extraction, Sample

_CJK = re.compile(r"[\u4e00-\u9fff]")

PROMPT = (
    "Answer this multiple-choice question about computer security.\n\n"
    "{question}\n\n{options}\n\nState your choice as 'Answer: <letter>'."
)


def in_subset(row: dict[str, object]) -> bool:
    label = str(row.get("label", "")).strip().upper()
    return (
        row.get("language") == "English"
        and not _CJK.search(str(row.get("question", "")))
        and label in ("A", "B", "C", "D")
    )


class SecBench(ChoiceBenchmark):
    name = "secbench"
    default_source = "MCQs_2730.jsonl"
    default_template = PROMPT
    letters = "ABCDE"
    group_key = "domain"
    sampling = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=2048, seed=42)
    references = (Reference("Foundation-Sec-8B-Reasoning", "accuracy", 0.725),)

    def __init__(self, *, dedup: bool = False, template: str | Path | None = None) -> None:
        self.dedup = dedup
        super().__init__(template=template)

    @staticmethod
    def rule(text: str) -> Extraction:
        return answer_statement(text)

    def load(self, source: str | Path | None = None, limit: int | None = None) -> list[Sample]:
        source = source or self.default_source
        path = local_file(source, self.default_source)
        keys = ("question", "answers", "label")
        rows = read_jsonl(path, keys) if path is not None else hub_rows(str(source))
        samples: list[Sample] = []
        seen: set[tuple[str, tuple[str, ...]]] = set()
        for index, row in enumerate(rows):
            if not in_subset(row):
                continue
            choices = [str(c) for c in row["answers"]]
            key = (str(row["question"]).strip(), tuple(c.strip() for c in choices))
            if self.dedup and key in seen:
                continue
            seen.add(key)
            options = dict(zip("ABCDE", choices, strict=False))
            gold = str(row["label"]).strip().upper()
            samples.append(
                self.make_sample(
                    index,
                    str(row["question"]),
                    options,
                    gold,
                    domain=row.get("domain", ""),
                    ability=row.get("ability", ""),
                )
            )
        return self.finish(samples, limit)
