"""Mitigation recommendation (AthenaBench-RMS): name the ATT&CK mitigations for a scenario.

The answer is a SET of mitigation ids ``M10xx``; the gold set is what ATT&CK lists as
mitigating the scenario's technique (``kb.mitigations``; on AthenaBench's mini split the
gold sets equal ATT&CK v18.1's lists exactly). Per item the value is the F1 of the two
sets (precision, recall and Jaccard in ``details``); status is ``correct`` only when the
sets are equal.

* ``strict`` reads ``Answer: M1037, M1041`` on the last line of the answer region.
  Naming more than ``max_ids`` distinct ids (default 10; the largest ATT&CK list on the
  mini split has 9) is invalid: without the cap, listing the whole catalogue (44 ids)
  would still earn an F1 above zero where an honest wrong answer earns 0.
* ``official`` is AthenaBench's rule (``athena_eval``): the last non-empty line of the
  answer (after an ``Answer:``-style prefix is dropped), every ``M\\d{4}`` in it, F1
  against the gold ids; a line without any id scores 0 and stays in the mean.

:func:`athena_last_match` is AthenaBench's line reader, shared by the six AthenaBench
benchmarks (``evals.athenabench``); it lives here because RMS exists only there.

:func:`mitigation_sample` builds an RL / synthesis item for any technique from the
offline knowledge base, gold included.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from secreason.tasks.attack import pooled_counts, set_score, strict_ids
from secreason.tasks.base import (
    Extraction,
    Message,
    Protocol,
    Sample,
    Score,
    Task,
    register,
)

if TYPE_CHECKING:
    from secreason.kb.mitigations import MitigationCatalog

PROMPT_V1 = (
    "Read the attack scenario below and recommend the MITRE ATT&CK mitigations that "
    "address it. Reason about what the adversary does and which defensive measures would "
    "stop or limit it. Name exactly {k} mitigation id(s) of the form M10xx, no techniques "
    "or generic advice. Finish with one last line of the form 'Answer: M1037, M1041'."
    "\n\nScenario: {scenario}"
)

_ID = re.compile(r"\bM(\d{4})\b", re.IGNORECASE)
_OFFICIAL_ID = re.compile(r"M\d{4}")
# AthenaBench drops one leading label of this form from a line before matching.
_ATHENA_PREFIX = re.compile(
    r"^\s*(?:final\s+answer|answer|prediction|output|result)\s*[:\-\u2013\u2014]?\s*",
    re.IGNORECASE,
)


def athena_last_match(text: str, pattern: str, transform: Callable[[str], str] = str) -> str:
    """AthenaBench's reader: group 1 of ``pattern`` in the LAST line that has a match.

    Lines are the non-empty stripped lines of the text, read bottom-up; one leading
    ``Answer:`` / ``Final answer -`` / ``Prediction:`` ... label is dropped from each
    before a case-insensitive search. The authors also look at the neighbours of a line
    mentioning "answer"; bottom-up, that never changes which match is returned, so it is
    not repeated here. Nothing found: the empty string (which their scorer still scores).
    """
    regex = re.compile(pattern, re.IGNORECASE)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        match = regex.search(_ATHENA_PREFIX.sub("", line).strip())
        if match:
            return transform(match.group(1))
    return ""


def athena_freeform(value: str) -> str:
    """AthenaBench's cleaning of a free-form line: strip, drop quotes, one space."""
    return re.sub(r"\s+", " ", value.strip().strip("\"'"))


def _mitigation_ids(text: str) -> frozenset[str]:
    return frozenset(f"M{n}" for n in _ID.findall(text))


def mitigation_set(reference: str) -> frozenset[str]:
    """The ids of a gold label (``"M1021, M1038"``); ValueError when it has none."""
    ids = _mitigation_ids(reference)
    if not ids:
        raise ValueError(f"reference {reference[:60]!r} holds no ATT&CK mitigation id")
    return ids


@register
class MitigationRecommendation(Task):
    """ATT&CK mitigation set recommendation; see the module docstring."""

    name = "rms"
    prompt_version = "rms-v1"

    def __init__(self, max_ids: int = 10) -> None:
        if max_ids < 1:
            raise ValueError(f"max_ids must be at least 1, got {max_ids}")
        self.max_ids = max_ids

    def prompt(self, sample: Sample) -> list[Message]:
        scenario = sample.meta.get("scenario") or sample.meta.get("description", "")
        k = len(mitigation_set(sample.reference))
        return [{"role": "user", "content": PROMPT_V1.format(k=k, scenario=scenario)}]

    def extract(self, answer_text: str, protocol: Protocol = "strict") -> Extraction:
        if protocol == "official":
            line = athena_last_match(answer_text, r"(.+)", athena_freeform).upper()
            found = frozenset(_OFFICIAL_ID.findall(line))
            if not found:
                return Extraction(None, "no M#### id on the last answer line")
            return Extraction(found)
        return strict_ids(answer_text, _mitigation_ids, "mitigation", self.max_ids)

    def score(self, extracted: Extraction, reference: str) -> Score:
        pred = frozenset(extracted.value) if extracted.ok else None
        return set_score(pred, mitigation_set(reference), extracted.error)

    def aggregate(self, scores: Sequence[Score]) -> dict[str, float]:
        """Mean per-item F1 (AthenaBench's figure), micro-F1 and exact-set accuracy."""
        out = super().aggregate(scores)
        if not scores:
            return out
        tp, fp, fn = pooled_counts(scores)
        out["f1"] = out["mean"]
        out["micro_f1"] = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        return out


def mitigation_sample(
    technique_id: str,
    scenario: str,
    *,
    catalog: MitigationCatalog | None = None,
    sample_id: str | None = None,
) -> Sample:
    """An RMS item whose gold is ATT&CK's mitigation list for ``technique_id``."""
    if catalog is None:
        from secreason.kb.mitigations import load_mitigations

        catalog = load_mitigations()
    gold = catalog.for_technique(technique_id)
    if not gold:
        raise ValueError(f"ATT&CK v{catalog.version} lists no mitigation for {technique_id!r}")
    if not scenario.strip():
        raise ValueError(f"an RMS item for {technique_id} needs a non-empty scenario")
    sample = Sample(
        id=sample_id or f"rms-{technique_id}",
        task="rms",
        messages=[],
        reference=", ".join(gold),
        meta={"technique_id": technique_id, "scenario": scenario},
    )
    sample.messages = MitigationRecommendation().prompt(sample)
    return sample
