"""Items planted by the audit tests: a real sample of a task with chosen text and gold."""

from __future__ import annotations

from secreason.data.synthesize import build_sample
from secreason.tasks.base import Sample


def plant_item(task: str, reference: str, split: str = "heldout", **meta) -> Sample:
    """One item of ``task`` with ``meta`` as its text and ``reference`` as its gold."""
    return build_sample(
        task,
        reference=reference,
        meta={"facts": ["planted"], **meta},
        entity=f"planted:{reference}:{sorted(meta.items())}",
        split=split,
        provenance="planted by a test",
    )
