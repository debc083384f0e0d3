"""The per-subject accuracy PNG: which metrics it reads, and that the report writes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from secreason.evals.base import Reference
from secreason.evals.report import write_report
from secreason.evals.report_subjects import FILE, subject_accuracy, subject_chart
from secreason.evals.runner import BenchmarkResult


def _stat(mean: float | None) -> dict[str, Any]:
    return {"mean": mean, "std": 0.0, "values": [mean], "ci": None}


CASES = {  # protocols' metrics -> expected {subject: {protocol: mean}}
    "domains and topics": (
        {"official": {"domain/Web": _stat(0.5), "topics/Crypto": _stat(1.0)}},
        {"Crypto": {"official": 1.0}, "Web": {"official": 0.5}},
    ),
    "both protocols": (
        {"official": {"subject/a": _stat(0.25)}, "strict": {"subject/a": _stat(0.75)}},
        {"a": {"official": 0.25, "strict": 0.75}},
    ),
    "other slashed metrics are not subjects": (
        {
            "official": {
                "f1/A": _stat(0.9),
                "confusion/A>B": _stat(2.0),
                "accuracy_gold_at/A": _stat(1.0),
                "dedup/accuracy": _stat(0.4),
                "dedup/domain/Web": _stat(0.4),
                "accuracy": _stat(0.5),
            }
        },
        {},
    ),
    "empty subject and missing mean skipped": (
        {"official": {"domain/": _stat(0.5), "domain/x": _stat(None)}},
        {},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_subject_accuracy_table(case: str) -> None:
    protocols, expected = CASES[case]
    assert subject_accuracy({"protocols": protocols}) == expected


def test_no_subjects_no_file(tmp_path: Path) -> None:
    report = {"benchmarks": [{"name": "b", "protocols": {"official": {"accuracy": _stat(1)}}}]}
    assert subject_chart(report, tmp_path) == {}
    assert not (tmp_path / FILE).exists()


def test_write_report_adds_the_subjects_png(tmp_path: Path) -> None:
    metrics = {"accuracy": 0.5, "n": 4.0, "domain/Web": 1.0, "domain/Network": 0.0}
    result = BenchmarkResult(
        "toy-secbench",
        "accuracy",
        (Reference("m", "accuracy", 0.5),),
        4,
        metrics={"official": [metrics], "strict": [dict(metrics, **{"domain/Web": 0.5})]},
    )
    paths = write_report(tmp_path, [result], {"model": "tiny"})
    png = paths["subjects_png"]
    assert png == tmp_path / FILE
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    height, width = matplotlib.image.imread(png).shape[:2]
    assert width > 400 and height > 100
