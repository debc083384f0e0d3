"""Items planted by the audit tests: a real sample of a task with chosen text and gold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from secreason.data.recipe import load_data_recipe
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


def tiny_audit_recipe(out_dir: Path) -> Any:
    """The tiny demo data recipe, small and with an audit that fails on any lead over
    chance: the run in which a planted leak must be caught."""
    return load_data_recipe(
        Path(__file__).resolve().parents[2] / "recipes" / "data" / "tiny-demo.yaml",
        [
            f"out_dir={out_dir}",
            "demo.n_per_task=60",
            'demo.tasks=["cwe", "mcq"]',
            "mix.rl_total=20",
            "decontaminate.benchmarks=null",
            "audit.margin=0.0",
            "audit.min_items=1",
        ],
    )
