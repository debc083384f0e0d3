"""CVSS v3.x vector prediction (CTIBench-VSP): write the base vector of a vulnerability.

The vector is validated and scored by the ``cvss`` package (``CVSS3``); this module
never computes a CVSS score itself. Per item the value is ``1 - |base_pred - base_gold|
/ 10`` and an invalid vector earns 0; ``details["deviation"]`` holds the absolute
difference of the base scores, so :meth:`CVSSVector.aggregate` reports both the mean
score (invalid = 0) and CTIBench's mean absolute deviation over valid vectors only.

Status is ``correct`` when the deviation is 0, i.e. when the *base scores* match: two
different vectors can share a score, so ``details["exact_vector"]`` says whether the
eight base metrics match as well.

* ``strict`` reads ``Answer: CVSS:3.1/AV:N/AC:L/...`` on the last line of the answer
  region (lower case tolerated). A bare eight-metric vector without prefix is accepted
  and read as ``CVSS:3.1/`` - the version CTIBench's gold labels and prompts use; v3.0
  and v3.1 differ only in the rounding of a few scores. Two different vectors on the
  line are invalid, and so is a metric named again with another value (``(or AV:L)``).
* ``official`` is CTIBench-VSP's rule from the authors' notebook: the LAST match of the
  eight-metric pattern ``AV:../AC:../PR:../UI:../S:../C:../I:../A:..`` (letters, keys
  case-sensitive) anywhere in the answer text, upper-cased and scored as ``CVSS:3.0/`` +
  match, whatever prefix the model wrote.

Parsing a vector costs ~35 us, far more than reading the answer, and benchmarks and RL
see the same few thousand vectors again and again, so parses are cached.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import NamedTuple

from cvss import CVSS3, CVSSError

from secreason.tasks.base import (
    RULING_OUT,
    Extraction,
    Message,
    Protocol,
    Sample,
    Score,
    ScoreStatus,
    Task,
    invalid,
    register,
    strict_answer,
)

PROMPT_V1 = (
    "Assess the vulnerability described below with CVSS v3.1. Work out each base metric "
    "in turn - Attack Vector (AV), Attack Complexity (AC), Privileges Required (PR), User "
    "Interaction (UI), Scope (S), and the Confidentiality (C), Integrity (I) and "
    "Availability (A) impacts - and say why. Finish with one last line of the form "
    "'Answer: CVSS:3.1/AV:_/AC:_/PR:_/UI:_/S:_/C:_/I:_/A:_'.\n\nVulnerability: {description}"
)

STRICT_DEFAULT_PREFIX = "CVSS:3.1/"
OFFICIAL_PREFIX = "CVSS:3.0/"

_OFFICIAL = re.compile(
    r"AV:[A-Za-z]+/AC:[A-Za-z]+/PR:[A-Za-z]+/UI:[A-Za-z]+/S:[A-Za-z]+/C:[A-Za-z]+/I:[A-Za-z]+/A:[A-Za-z]+"
)
# On the upper-cased answer line: an optional version prefix, then AV first and any
# further KEY:VALUE pairs (the package validates which keys and values exist).
_STRICT = re.compile(r"(CVSS:[0-9.]+/)?(AV:[A-Z]+(?:/[A-Z]+:[A-Z]+)+)")
_BASE_KEYS = ("AV", "AC", "PR", "UI", "S", "C", "I", "A")
# A base metric named again beside the vector, unless a word rules it out ("not AV:L").
_LOOSE_METRIC = re.compile(r"\b(AV|AC|PR|UI|S|C|I|A):([A-Z])\b")
_RULED_OUT = re.compile(rf"\b{RULING_OUT}\s+(?:AV|AC|PR|UI|S|C|I|A):[A-Z]\b", re.IGNORECASE)


class ParsedVector(NamedTuple):
    """A vector as the ``cvss`` package reads it, or why it could not."""

    base_score: float | None
    base_metrics: tuple[str, ...]
    error: str | None


@functools.lru_cache(maxsize=1 << 16)
def parse_vector(vector: str) -> ParsedVector:
    """Base score and base metric values of a CVSS v3.x vector (cached)."""
    try:
        parsed = CVSS3(vector)
    except CVSSError as exc:
        return ParsedVector(None, (), f"invalid CVSS vector {vector!r}: {exc}")
    metrics = tuple(str(parsed.metrics.get(key, "")) for key in _BASE_KEYS)
    return ParsedVector(float(parsed.scores()[0]), metrics, None)


@functools.lru_cache(maxsize=1 << 12)
def gold_vector(reference: str) -> ParsedVector:
    """The gold vector (upper-cased; a bare vector is read as v3.1); ValueError if invalid."""
    text = reference.strip().upper()
    if not text.startswith("CVSS:"):
        text = STRICT_DEFAULT_PREFIX + text
    parsed = parse_vector(text)
    if parsed.error:
        raise ValueError(f"reference is not a valid CVSS v3 vector: {parsed.error}")
    return parsed


def _checked(vector: str) -> Extraction:
    parsed = parse_vector(vector)
    return Extraction(None, parsed.error) if parsed.error else Extraction(vector)


@register
class CVSSVector(Task):
    """CVSS v3.x base vector prediction; see the module docstring."""

    name = "cvss"
    prompt_version = "cvss-v1"

    def prompt(self, sample: Sample) -> list[Message]:
        description = sample.meta.get("description") or sample.meta.get("question", "")
        return [{"role": "user", "content": PROMPT_V1.format(description=description)}]

    def extract(self, answer_text: str, protocol: Protocol = "strict") -> Extraction:
        if protocol == "official":
            matches = _OFFICIAL.findall(answer_text)
            if not matches:
                return Extraction(None, "no eight-metric CVSS vector in the answer")
            return _checked(OFFICIAL_PREFIX + matches[-1].upper())
        got = strict_answer(answer_text)
        if not got.ok:
            return got
        found = {
            (prefix or STRICT_DEFAULT_PREFIX) + body
            for prefix, body in _STRICT.findall(str(got.value).upper())
        }
        if not found:
            return Extraction(None, "no CVSS vector on the answer line")
        if len(found) > 1:
            return Extraction(None, f"several candidate vectors ({len(found)}) on the answer line")
        vector = found.pop()
        # A metric named again with another value beside the vector is a hedge ("(or AV:L)").
        chosen = dict(pair.split(":", 1) for pair in vector.split("/")[1:])
        rest = _RULED_OUT.sub(" ", _STRICT.sub(" ", str(got.value).upper()))
        for key, value in _LOOSE_METRIC.findall(rest):
            if key in chosen and chosen[key] != value:
                return Extraction(None, f"{key} given as {chosen[key]} and as {value}")
        return _checked(vector)

    def score(self, extracted: Extraction, reference: str) -> Score:
        gold = gold_vector(reference)
        if not extracted.ok:
            return invalid(extracted.error)
        pred = parse_vector(str(extracted.value))
        if pred.base_score is None or gold.base_score is None:
            return invalid(pred.error)
        deviation = round(abs(pred.base_score - gold.base_score), 1)
        details = {
            "deviation": deviation,
            "base_pred": pred.base_score,
            "base_gold": gold.base_score,
            "exact_vector": pred.base_metrics == gold.base_metrics,
        }
        status: ScoreStatus = "correct" if deviation == 0 else "incorrect"
        return Score(max(0.0, 1.0 - deviation / 10.0), status, details)

    def aggregate(self, scores: Sequence[Score]) -> dict[str, float]:
        """Mean score (invalid = 0) beside CTIBench's MAD over valid vectors only."""
        out = super().aggregate(scores)
        deviations = [float(s.details["deviation"]) for s in scores if "deviation" in s.details]
        if scores:
            out["mad"] = sum(deviations) / len(deviations) if deviations else float("nan")
            out["exact_vector_rate"] = sum(
                bool(s.details.get("exact_vector")) for s in scores
            ) / len(scores)
        return out
