"""Task synthesis: verifiable items with gold answers, made offline from the knowledge bases.

Every item is a :class:`~secreason.tasks.Sample` whose prompt is built by its task's own
``prompt`` (so training sees exactly what evaluation and RL send), whose ``reference``
is what that task's scorer checks, and whose ``meta`` says where the item came from
(``provenance``), which ``entity`` it is about, which ``split`` it belongs to, and the
``facts`` a template teacher can reason from.

Train and held-out are split by *entity* (a CWE, a technique, a group, a CVE): an
entity's hash decides its side, so a held-out CWE never appears in training, and the
decision is stable when the knowledge base grows.

Ids are content hashes of (task, messages, reference): the same item made twice is
the same record, which is what dedup and resume key on.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from secreason.tasks import get_task
from secreason.tasks.base import Message, Sample

SPLITS = ("train", "heldout")


def content_id(task: str, messages: Sequence[Message], reference: str) -> str:
    """A stable 16-hex id of what the item *is* (not where it came from)."""
    blob = json.dumps([task, list(messages), reference], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def entity_split(entity: str, heldout_fraction: float, seed: int = 0) -> str:
    """``heldout`` for a fixed, hash-chosen share of entities; ``train`` otherwise."""
    digest = hashlib.sha256(f"{seed}:{entity}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return "heldout" if u < heldout_fraction else "train"


def build_sample(
    task: str,
    *,
    reference: str,
    meta: dict[str, Any],
    entity: str,
    split: str,
    provenance: str,
) -> Sample:
    """Make a Sample whose messages come from the task's own prompt template."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    full = {**meta, "entity": entity, "split": split, "provenance": provenance}
    draft = Sample(id="", task=task, messages=[], reference=reference, meta=full)
    messages = get_task(task).prompt(draft)
    draft.messages = messages
    draft.id = content_id(task, messages, reference)
    return draft


# --------------------------------------------------------------------- KB synthesis

KINDS: tuple[str, ...] = (
    "cve_to_cwe",
    "cwe_name_mcq",
    "technique_to_id",
    "procedure_to_technique",
    "technique_to_tactic",
    "group_report_to_techniques",
    "group_profile_to_actor",
    "cvss_description_to_vector",
    "cvss_vector_to_severity",
)


@dataclass
class SynthesisConfig:
    """What to synthesize from the knowledge bases.

    ``max_per_kind`` caps each kind of item (None: all the KB offers);
    ``kinds`` picks among :data:`KINDS`; ``nvd`` names NVD CVE JSON files or folders
    whose CVEs become CWE and CVSS items too (``data.nvd``; none by default).
    """

    kinds: list[str] = field(default_factory=lambda: list(KINDS))
    max_per_kind: int | None = None
    heldout_fraction: float = 0.1
    seed: int = 0
    cvss_vectors: int = 2000
    nvd: list[str] = field(default_factory=list)


def synthesize(config: SynthesisConfig) -> Iterator[Sample]:
    """Yield items of every configured kind, in a deterministic order."""
    from secreason.data import kb_items

    unknown = sorted(set(config.kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown synthesis kind(s) {unknown}; known: {', '.join(KINDS)}")
    for kind in config.kinds:
        maker = getattr(kb_items, kind)
        rng = random.Random(f"{config.seed}:{kind}")
        limit = config.max_per_kind
        yield from itertools.islice(maker(config, rng), limit)
    if config.nvd:
        from secreason.data.nvd import nvd_items

        yield from nvd_items(config)
