"""CWE mapping (CTIBench-RCM, CWE prediction): name the weakness behind a vulnerability.

Scoring is an exact match on the CWE integer (``CWE-079`` equals ``CWE-79``).

* ``strict`` reads ``Answer: CWE-79`` on the last line of the answer region; unicode
  hyphens, bold and parentheses are tolerated, and a line naming two different ids
  is invalid (a bare number after "or", "and" or a comma counts: ``CWE-79 or 80``), so
  a model cannot hedge by listing candidates.
* ``official`` is CTIBench-RCM's rule from the authors' notebook: the LAST match of
  ``CWE-\\d+`` (case-sensitive) anywhere in the answer text; with none, the whole
  answer is the prediction, answered when it starts with ``CWE-`` in any case. Scoring
  compares upper-cased strings as the notebook does, so ``CWE-079`` is not ``CWE-79``.

Optional hierarchical partial credit (off by default): a prediction that is the gold
id's parent or child in CWE view 1000 or 1003 earns ``partial_credit`` (status stays
``incorrect``). A coarser or finer but right weakness is closer than an unrelated one,
which is a useful signal for RL; siblings earn nothing. The catalog
(``secreason.kb.cwe``) is loaded only when the option is on.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from secreason.tasks.base import (
    HEDGE_FILLER,
    Extraction,
    Message,
    Protocol,
    Sample,
    Score,
    Task,
    invalid,
    register,
    strict_answer,
)

if TYPE_CHECKING:
    from secreason.kb.cwe import CWECatalog

PROMPT_V1 = (
    "Identify the CWE weakness that is the root cause of the vulnerability described "
    "below. Reason about what the flaw lets an attacker do and why, then choose the most "
    "specific CWE that fits. Finish with one last line of the form 'Answer: CWE-<number>'."
    "\n\nVulnerability: {description}"
)

_OFFICIAL = re.compile(r"CWE-\d+")
_STRICT_ID = re.compile(r"\bCWE\s*-?\s*(\d+)", re.IGNORECASE)
_BARE_ID = re.compile(r"^\(?(\d+)\)?$")
# A bare number after a joiner is a second candidate ("CWE-79 or 80", "CWE-79, maybe 80").
_HEDGED_NUMBER = re.compile(
    rf"(?:\bor\b|\band\b|[,;/&+])\s*{HEDGE_FILLER}\(?(\d+)\b(?![.\d])", re.IGNORECASE
)


@functools.lru_cache(maxsize=4096)
def cwe_number(reference: str) -> int:
    """The integer of a gold label (``CWE-79``, ``cwe-79``, ``79``); ValueError otherwise."""
    text = reference.strip()
    match = _STRICT_ID.fullmatch(text) or _BARE_ID.match(text)
    if match is None:
        raise ValueError(f"reference {reference!r} is not a CWE id; expected e.g. 'CWE-79'")
    return int(match.group(1))


@dataclass(frozen=True)
class OfficialCWE(Extraction):
    """The notebook's prediction string (``raw``), scored by string equality."""

    raw: str = ""


@register
class CWE(Task):
    """CWE id prediction; see the module docstring for the two protocols."""

    name = "cwe"
    prompt_version = "cwe-v1"

    def __init__(
        self,
        hierarchy: bool = False,
        partial_credit: float = 0.5,
        views: Sequence[int] = (1000, 1003),
        max_distance: int = 1,
    ) -> None:
        if not 0.0 <= partial_credit <= 1.0:
            raise ValueError(f"partial_credit must lie in [0, 1], got {partial_credit}")
        self.hierarchy = hierarchy
        self.partial_credit = partial_credit
        self.views = tuple(views)
        self.max_distance = max_distance
        self._catalog: CWECatalog | None = None

    def prompt(self, sample: Sample) -> list[Message]:
        description = sample.meta.get("description") or sample.meta.get("question", "")
        return [{"role": "user", "content": PROMPT_V1.format(description=description)}]

    def extract(self, answer_text: str, protocol: Protocol = "strict") -> Extraction:
        if protocol == "official":
            matches = _OFFICIAL.findall(answer_text)
            if matches:
                return OfficialCWE(f"CWE-{int(matches[-1][4:])}", raw=matches[-1])
            whole = answer_text.strip()
            if whole.upper().startswith("CWE-"):  # the notebook keeps the text itself
                found = _STRICT_ID.match(whole)
                value = f"CWE-{int(found.group(1))}" if found else whole.upper()
                return OfficialCWE(value, raw=whole)
            return Extraction(None, "no 'CWE-<number>' in the answer")
        got = strict_answer(answer_text)
        if not got.ok:
            return got
        payload = str(got.value)
        ids = {int(n) for n in _STRICT_ID.findall(payload)}
        if ids:
            ids |= {int(n) for n in _HEDGED_NUMBER.findall(payload)}
        if not ids:
            bare = _BARE_ID.match(payload)
            if bare is None:
                return Extraction(None, f"no CWE id in {payload[:40]!r}")
            ids = {int(bare.group(1))}
        if len(ids) > 1:
            listed = ", ".join(f"CWE-{i}" for i in sorted(ids))
            return Extraction(None, f"several candidate CWE ids ({listed})")
        return Extraction(f"CWE-{ids.pop()}")

    def score(self, extracted: Extraction, reference: str) -> Score:
        gold = cwe_number(reference)
        if not extracted.ok:
            return invalid(extracted.error)
        if isinstance(extracted, OfficialCWE):
            gold_text = reference.strip().upper()
            gold_text = f"CWE-{gold_text}" if gold_text.isdigit() else gold_text
            hit = extracted.raw.strip().upper() == gold_text
            return Score(float(hit), "correct" if hit else "incorrect")
        pred = cwe_number(str(extracted.value))
        if pred == gold:
            return Score(1.0, "correct")
        if self.hierarchy and self.partial_credit > 0:
            relation = self._relation(pred, gold)
            if relation is not None:
                return Score(self.partial_credit, "incorrect", relation)
        return Score(0.0, "incorrect")

    def _relation(self, pred: int, gold: int) -> dict[str, Any] | None:
        """How ``pred`` sits above or below ``gold`` in the first view that links them."""
        if self._catalog is None:
            from secreason.kb.cwe import load_cwe

            self._catalog = load_cwe()
        catalog = self._catalog
        if pred not in catalog or gold not in catalog:
            return None
        for view in self.views:
            distance = catalog.distance(pred, gold, view)
            if distance is not None and 0 < distance <= self.max_distance:
                above = pred in catalog.ancestors(gold, view)
                return {
                    "partial": "ancestor" if above else "descendant",
                    "view": view,
                    "distance": distance,
                }
        return None

    def aggregate(self, scores: Sequence[Score]) -> dict[str, float]:
        out = super().aggregate(scores)
        if scores and self.hierarchy:
            out["partial_rate"] = sum("partial" in s.details for s in scores) / len(scores)
        return out
