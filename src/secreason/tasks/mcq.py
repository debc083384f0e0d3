"""Multiple choice: one letter (A-D, or A-E), or a set of letters (SecEval-style).

Strict reading accepts ``Answer: B``, ``Answer: (b)``, ``**Answer:** B) text``; a line
that names two different letters is invalid when one answer is expected, so listing
every option can never earn more than a wrong answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from secreason.tasks.base import (
    Extraction,
    Message,
    Protocol,
    Sample,
    Score,
    Task,
    invalid,
    normalize,
    register,
    strict_answer,
)

OfficialRule = Callable[[str], Extraction]

PROMPT_V1 = (
    "Answer the multiple-choice question below. Think it through first, then give your "
    "choice on the last line as 'Answer: <letter>'{multi}.\n\n{question}\n\n{options}"
)
_MULTI_NOTE = " (several letters are possible, e.g. 'Answer: A, C')"


def ctibench_official(text: str) -> Extraction:
    """CTIBench-MCQ's published rule, on the last line of the response.

    Starts with ``A)``..``D)``: first character; else ends with A-D: last character;
    else ends with ``**``: third character from the end. An empty last line falls back
    to the line before it.
    """
    lines = text.split("\n")
    line = lines[-1].rstrip()
    if not line and len(lines) > 1:
        line = lines[-2].rstrip()
    if re.match(r"^[A-D]\)", line):
        return Extraction(line[0])
    if line and line[-1] in "ABCD":
        return Extraction(line[-1])
    if line.endswith("**") and len(line) >= 3:
        return Extraction(line[-3])
    return Extraction(None, "no option letter on the last line")


@register
class MCQ(Task):
    name = "mcq"
    prompt_version = "mcq-v1"

    def __init__(
        self, letters: str = "ABCD", multi: bool = False, official: OfficialRule | None = None
    ) -> None:
        self.letters = letters.upper()
        self.multi = multi
        self.official = official or ctibench_official
        cls = f"[{self.letters}]"
        self._single = re.compile(rf"^\(?({cls})\)?(?:[\s.:)\-]\s*.*)?$", re.IGNORECASE)
        self._set = re.compile(rf"^\(?{cls}\)?(?:\s*(?:[,;/&+]|and)?\s*\(?{cls}\)?)*$", re.I)

    def prompt(self, sample: Sample) -> list[Message]:
        options = sample.meta.get("options") or {}
        rendered = "\n".join(f"{k}) {v}" for k, v in sorted(options.items()))
        text = PROMPT_V1.format(
            multi=_MULTI_NOTE if self.multi else "",
            question=sample.meta.get("question", ""),
            options=rendered,
        )
        return [{"role": "user", "content": text}]

    def extract(self, answer_text: str, protocol: Protocol = "strict") -> Extraction:
        if protocol == "official":
            return self.official(answer_text)
        got = strict_answer(answer_text)
        if not got.ok:
            return got
        payload = normalize(str(got.value)).strip()
        if self._set.match(payload):
            letters = frozenset(c for c in payload.upper() if c in self.letters)
            if self.multi:
                return Extraction("".join(sorted(letters)))
            if len(letters) == 1:
                return Extraction(next(iter(letters)))
            return Extraction(None, "several candidate letters")
        match = self._single.match(payload)
        if match:
            return Extraction(match.group(1).upper())
        return Extraction(None, f"no option letter in {payload[:40]!r}")

    def score(self, extracted: Extraction, reference: str) -> Score:
        if not extracted.ok:
            return invalid(extracted.error)
        gold = "".join(sorted(set(reference.strip().upper())))
        pred = "".join(sorted(set(str(extracted.value).upper())))
        return Score(1.0 if pred == gold else 0.0, "correct" if pred == gold else "incorrect")
