"""CVSS items: a vulnerability description -> its v3.1 vector, and a vector -> its severity.

Vectors are drawn at random (each base metric's value uniformly, no vector twice) and
each item is split by its vector. The descriptions
come from ``data.cvss_text``, which words each metric as a report would, never with the
specification's metric definitions that the audit's matcher reads.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from secreason.data.kb_items.parts import kb_sample, mcq_sample
from secreason.data.synthesize import SynthesisConfig
from secreason.tasks.base import Sample


def _vectors(cfg: SynthesisConfig, rng: random.Random) -> list[str]:
    from secreason.kb.cvss import random_v31_vector

    seen: dict[str, None] = {}
    while len(seen) < cfg.cvss_vectors:
        seen.setdefault(random_v31_vector(rng))
    return list(seen)


def cvss_description_to_vector(cfg: SynthesisConfig, rng: random.Random) -> Iterator[Sample]:
    """A report-style vulnerability description -> the CVSS v3.1 vector it implies.

    The description is written by ``data.cvss_text`` from a CWE weakness's definition
    and wordings that imply each metric, never from the metric definitions themselves.
    """
    from secreason.data.cvss_text import describe_vulnerability
    from secreason.kb import load_cwe

    weaknesses = [
        w for w in load_cwe().all() if w.mapping_usage != "Prohibited" and len(w.description) > 40
    ]
    for vector in _vectors(cfg, rng):
        w = weaknesses[rng.randrange(len(weaknesses))]
        text, facts = describe_vulnerability(vector, w.description, rng)
        yield kb_sample(
            "cvss",
            cfg,
            reference=vector,
            meta={"description": text, "facts": facts, "cwe": w.cwe_id},
            entity=f"cvss:{vector}",
            provenance=f"generated vector; flaw from the definition of {w.cwe_id}",
        )


def cvss_vector_to_severity(cfg: SynthesisConfig, rng: random.Random) -> Iterator[Sample]:
    """A vector -> its qualitative severity (scored by ``secreason.kb.cvss``)."""
    from secreason.kb.cvss import describe_vector, parse

    bands = ["Low", "Medium", "High", "Critical"]
    for vector in _vectors(cfg, random.Random(f"{cfg.seed}:severity")):
        result = parse(vector)
        if result.severity not in bands:
            continue
        distractors = [b for b in bands if b != result.severity]
        question = f"What is the severity of the CVSS vector {vector}?"
        facts = [
            *describe_vector(vector),
            f"A base score of {result.base_score:.1f} falls in the {result.severity} band.",
        ]
        yield mcq_sample(
            question,
            result.severity,
            distractors,
            facts,
            rng,
            entity=f"cvss:{vector}",
            cfg=cfg,
            provenance="CVSS v3.1 base score via the cvss package",
            extra={"score": result.base_score},
        )
