"""SecEval: 2189 security questions whose answer is a SET of letters, scored per topic.

File: ``questions.json`` (XuanwuAI/SecEval), a list of items with id, source, question,
choices (``"A: ..."``), answer (one or several letters, e.g. ``"AC"``), topics (a list),
keyword. Quirks: 7 items have an empty answer and 2 have ``"AA"``.

Official protocol, as the authors' evaluator runs it: the question goes on one line as
``Question: <question> A: ... B: ...`` (newlines turned to spaces) after an instruction
to reply with letters only and one worked example; the parse removes every
``Answer:`` and takes the sorted set of every upper-case letter A-D left in the output;
an item is correct when that string equals the gold answer string (case-insensitive),
so the two ``"AA"`` items can never be correct and an empty gold matches an output with
no letter at all (an output with no letter is reported ``invalid`` beside it, with the
same zero). Overall accuracy = correct / all items; per topic, an item counts once for
each of its topics. (The authors' ``eval.py`` adds to its overall sum inside the topic
loop, so an item counts once per topic there: a perfect run would score 3979 / 2189 =
182 % on this file; that figure is not reproduced.) On a reasoning model the parse
reads the answer region only, never the reasoning.

``subset="single"`` keeps the 1255 items whose answer is one letter, the subset the
paper's harness scores (the published 0.848 is on it); ``subset="all"`` keeps all 2189.

Strict protocol: the same prompt plus a final-line ``Answer: <letters>`` instruction;
exact set match, a line without letters is invalid.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from secreason.backends.base import Backend, SamplingParams
from secreason.evals.base import Reference
from secreason.evals.choice import ChoiceBenchmark, render
from secreason.evals.sources import hub_rows, local_file, read_json, required
from secreason.tasks.base import Extraction, Judgement, Message, Protocol, Sample, Score

Subset = Literal["all", "single"]
_CHOICE_PREFIX = re.compile(r"^\s*([A-D])\s*:\s*")

SYSTEM = (
    "Each message is a multiple-choice cybersecurity question; one or more options may "
    "be correct. Reply with the letters (A-D) of every correct option and nothing else."
)
PROMPT = "Question: {question} {options}"
# One worked example in this project's words, placed before the question as the
# authors' chat protocol places theirs.
EXAMPLE: list[Message] = [
    {"role": "user", "content": "Question: Which of these numbers are prime? A: 2 B: 4 C: 7 D: 9"},
    {"role": "assistant", "content": "Answer: AC"},
]


def seceval_official(text: str) -> Extraction:
    """The authors' parse: sorted set of the letters A-D once ``Answer:`` is removed."""
    letters = sorted(set(re.findall(r"[A-D]", text.replace("Answer:", ""))))
    return Extraction("".join(letters))


class SecEval(ChoiceBenchmark):
    default_source = "questions.json"
    default_template = PROMPT
    system_prompt = SYSTEM
    group_key = "topics"
    sampling = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=2048, seed=42)

    def __init__(self, subset: Subset = "all", *, template: str | Path | None = None) -> None:
        if subset not in ("all", "single"):
            raise ValueError(f"SecEval subset {subset!r} unknown; choose 'all' or 'single'")
        self.subset = subset
        self.multi = subset == "all"
        self.name = "seceval" if subset == "all" else "seceval-single"
        if subset == "single":
            self.references = (Reference("Foundation-Sec-8B-Reasoning", "accuracy", 0.848),)
        super().__init__(template=template)

    @staticmethod
    def rule(text: str) -> Extraction:
        return seceval_official(text)

    def options_text(self, options: dict[str, str]) -> str:
        return " ".join(f"{k}: {v}" for k, v in options.items())

    def build_messages(self, question: str, options: dict[str, str]) -> list[Message]:
        body = render(self.template, question, self.options_text(options)).replace("\n", " ")
        return [
            {"role": "system", "content": self.system_prompt or ""},
            *[dict(m) for m in EXAMPLE],
            {"role": "user", "content": body},
        ]

    def load(self, source: str | Path | None = None, limit: int | None = None) -> list[Sample]:
        source = source or self.default_source
        path = local_file(source, self.default_source)
        rows = read_json(path) if path is not None else hub_rows(str(source), split="train")
        if not isinstance(rows, list) or not rows:
            raise ValueError(f"{path or source}: expected a non-empty JSON list of questions")
        samples: list[Sample] = []
        for index, row in enumerate(rows):
            at = f"{path or source}: item {index}"
            if not isinstance(row, dict):
                raise ValueError(f"{at}: expected an object, got {type(row).__name__}")
            gold = str(row.get("answer") or "")
            if self.subset == "single" and gold not in ("A", "B", "C", "D"):
                continue
            options: dict[str, str] = {}
            for position, choice in enumerate(required(row, "choices", at)):
                match = _CHOICE_PREFIX.match(str(choice))
                letter = match.group(1) if match else "ABCD"[position]
                options[letter] = str(choice)[match.end() :] if match else str(choice)
            samples.append(
                self.make_sample(
                    index,
                    str(required(row, "question", at)),
                    options,
                    gold,
                    topics=list(row.get("topics") or []),
                    source=row.get("source", ""),
                )
            )
        return self.finish(samples, limit)

    def judge(
        self,
        sample: Sample,
        completion: str,
        protocol: Protocol,
        *,
        prefilled: bool = False,
        judge_backend: Backend | None = None,
    ) -> Judgement:
        verdict = super().judge(sample, completion, protocol, prefilled=prefilled)
        gold = sample.reference
        if protocol == "official" and verdict.extraction.value == "" and gold:
            # No letter at all: scored as the authors score it (0), but counted as an
            # invalid answer, not hidden among the wrong ones.
            note = {"error": "no letter A-D in the answer"}
            return Judgement(
                verdict.split, verdict.format, verdict.extraction, Score(0.0, "invalid", note)
            )
        canonical = "".join(sorted(set(gold.upper())))
        if (
            protocol == "official"
            and verdict.score.status == "correct"
            and gold.upper() != canonical
        ):
            # The authors compare strings: a gold like "AA" is never matched by a set.
            note = {"note": f"gold {gold!r} is not a sorted letter set; official compare fails"}
            return Judgement(
                verdict.split, verdict.format, verdict.extraction, Score(0.0, "incorrect", note)
            )
        return verdict
