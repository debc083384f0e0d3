"""CWE items: a CVE's catalog description -> its CWE, and a definition -> the weakness's name.

Both are split by CWE id, so a held-out weakness is unseen in training under any CVE.
The CVE texts are the catalog's Observed_Examples; a CVE listed under more than one
entry has no single gold answer and is skipped, as is a text that names a CWE id.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from secreason.data.kb_items.parts import first_sentences, kb_sample, mcq_sample, pick_distractors
from secreason.data.synthesize import SynthesisConfig
from secreason.tasks.base import Sample


def _cwe_provenance() -> str:
    from secreason.kb import CWE_VERSION

    return f"CWE {CWE_VERSION} catalog"


def cve_to_cwe(cfg: SynthesisConfig, rng: random.Random) -> Iterator[Sample]:
    """A CVE's description as the catalog quotes it -> the CWE it exemplifies.

    Skipped: examples under a Prohibited entry, under several CWEs, or naming CWE ids.
    """
    from secreason.kb import load_cwe

    catalog = load_cwe()
    prov = _cwe_provenance()
    # A CVE listed under several CWEs (a chain, or a composite) has no single gold answer.
    owners: dict[str, set[int]] = {}
    for w in catalog.all(categories=True, deprecated=True):
        for cve, _ in w.examples:
            owners.setdefault(cve, set()).add(w.id)
    for w in catalog.all():
        if w.mapping_usage == "Prohibited":
            continue
        for cve, text in w.examples:
            # Texts that name CWE ids ("Chain: ... (CWE-20) leading to ... (CWE-78)") give
            # the answer away or have several; short ones say too little.
            if len(text.split()) < 6 or "CWE-" in text.upper() or len(owners[cve]) > 1:
                continue
            facts = [
                f"The description says: {text}",
                f"{w.cwe_id} ({w.name}) is defined as: {first_sentences(w.description, 1)}",
                f"The described flaw matches that definition, so the weakness is {w.cwe_id}.",
            ]
            yield kb_sample(
                "cwe",
                cfg,
                reference=w.cwe_id,
                meta={"description": f"{cve}: {text}", "cves": [cve], "facts": facts},
                entity=w.cwe_id,
                provenance=f"{prov}, observed example {cve} of {w.cwe_id}",
            )


def cwe_name_mcq(cfg: SynthesisConfig, rng: random.Random) -> Iterator[Sample]:
    """A weakness's definition -> its name, among siblings under the same parent."""
    from secreason.kb import load_cwe

    catalog = load_cwe()
    prov = _cwe_provenance()
    names = sorted({w.name for w in catalog.all()})
    for w in catalog.all():
        siblings = {
            catalog.get(c).name
            for p in w.parents()
            for c in catalog.children(p)
            if c != w.id and c in catalog and not catalog.get(c).is_deprecated
        }
        question = (
            f"Which CWE weakness does this definition describe? {first_sentences(w.description, 2)}"
        )
        distractors = pick_distractors(question, w.name, sorted(siblings), rng)
        if distractors is None:  # no sibling as close to the question: any weakness
            distractors = pick_distractors(question, w.name, names, rng)
        if distractors is None:
            continue
        facts = [
            f"The definition is that of {w.cwe_id}, named '{w.name}'.",
            "The other options are sibling weaknesses under the same parent in CWE view 1000.",
        ]
        yield mcq_sample(
            question,
            w.name,
            distractors,
            facts,
            rng,
            entity=w.cwe_id,
            cfg=cfg,
            provenance=f"{prov}, {w.cwe_id}",
        )
