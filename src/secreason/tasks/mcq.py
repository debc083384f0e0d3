"""Multiple choice: one letter (A-D, or A-E), or a set of letters (SecEval-style).

Strict reading accepts ``Answer: B``, ``Answer: (b)``, ``**Answer:** B) text``; a line
that offers two different letters is invalid when one answer is expected, so listing
every option can never earn more than a wrong answer (a letter the line rules out,
``B) Phishing, not C.``, is not offered).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from secreason.tasks.base import (
    HEDGE_FILLER,
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
_AND = re.compile(r"\b(?:and|or)\b", re.IGNORECASE)
_MULTI_NOTE = " (several letters are possible, e.g. 'Answer: A, C')"


def ctibench_official(text: str) -> Extraction:
    """CTIBench-MCQ's published rule, on the last line of the response.

    Starts with ``A)``..``D)``: first character; else ends with A-D: last character;
    else ends with ``**``: third character from the end. An empty last line falls back
    to the line before it. With no rule met, the notebook keeps the whole response
    (lines joined by spaces), which its scorer accepts when it is one letter A-D or X
    in any case: a bare ``b`` answers B.
    """
    lines = text.split("\n")
    line = lines[-1].rstrip()
    if not line and len(lines) > 1:
        line = lines[-2].rstrip()
    if re.match(r"^[A-D]\)", line):
        return Extraction(line[0])
    if line and line[-1] in "ABCD":
        return Extraction(line[-1])
    if line.endswith("**") and len(line) >= 3 and line[-3].upper() in "ABCDX":
        # The notebook then keeps only A-D and X ("no answer") as valid predictions.
        return Extraction(line[-3])
    whole = " ".join(text.split("\n"))
    if whole.upper() in ("A", "B", "C", "D", "X"):
        return Extraction(whole)
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
        # For one letter, each letter is a token of its own: "D) Add" and "C) DAC" restate
        # an option's text (a multi-answer set may be written "AC").
        one = rf"\(?{cls}\)?" + ("" if multi else "(?![a-z])")
        self._set = re.compile(rf"^{one}(?:\s*(?:[,;/&+]|and|or)?\s*{one})*$", re.I)
        # The chosen option's own text may open with a list of letters ("C) Both A and B",
        # "D) A, B and C each ..."): read as text, unless it names the chosen letter.
        self._quoted = re.compile(
            r"^\s*[).:\-]\s*(?:(?:both|options?|only|all of|either|neither)\s+)?"
            rf"\b{cls}\b(?:\s*(?:[,;/&+]\s*)?(?:\b(?:and|or|nor)\b\s*)?\b{cls}\b)+",
            re.I,
        )
        # A second letter standing alone after a joiner ("B) Phishing, or C.") is a hedge.
        # Up to two words may stand between ("B, or maybe C"), unless one rules it out.
        self._hedge = re.compile(
            rf"(?:\bor\b|\band\b|[,;/&+])\s*{HEDGE_FILLER}\(?({cls})\)?(?=\s*(?:[),.;]|$))",
            re.I,
        )
        # ... or joined to the chosen letter itself by a verb that makes both letters the
        # subject ("B and C are"). Anchored at the chosen letter: an option whose own text
        # names letters ("C) Both A and B are correct") is an answer, not a hedge.
        self._hedge_verb = re.compile(
            rf"^\)?\s*(?:(?:\bor\b|\band\b|[,;/&+])\s*)+\(?({cls})\)?\s+"
            r"(?:are|is|both|also|too|could|might|may|would|seems?)\b",
            re.I,
        )

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
        # Quotes or brackets around the letter are wrapping, not content ('B', [B]).
        payload = normalize(str(got.value)).strip().strip("'\"[]\u2018\u2019\u201c\u201d").strip()
        if self._set.match(payload):
            # Drop the joining words first: the D of "and" is not an answer.
            joined = _AND.sub(" ", payload).upper()
            letters = frozenset(c for c in joined if c in self.letters)
            if self.multi:
                return Extraction("".join(sorted(letters)))
            if len(letters) == 1:
                return Extraction(next(iter(letters)))
            return Extraction(None, "several candidate letters")
        match = self._single.match(payload)
        if match:
            letter = match.group(1).upper()
            rest = payload[match.end(1) :]
            rest = self._quoted.sub(lambda m: m[0] if self._names(m[0], letter) else "", rest)
            hedged = self._hedge.findall(rest) + self._hedge_verb.findall(rest)
            others = {c.upper() for c in hedged} - {letter}
            if others and not self.multi:
                return Extraction(None, "several candidate letters")
            return Extraction(letter)
        return Extraction(None, f"no option letter in {payload[:40]!r}")

    def _names(self, listed: str, letter: str) -> bool:
        """Whether a list of letters ("A, B and C") names ``letter`` as a token."""
        return letter in {t.upper() for t in re.findall(r"\b\w\b", listed)}

    def score(self, extracted: Extraction, reference: str) -> Score:
        if not extracted.ok:
            return invalid(extracted.error)
        gold = "".join(sorted(set(reference.strip().upper())))
        pred = "".join(sorted(set(str(extracted.value).upper())))
        return Score(1.0 if pred == gold else 0.0, "correct" if pred == gold else "incorrect")
