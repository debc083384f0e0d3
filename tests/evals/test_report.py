"""Reports: every file is written, mean +- std is right, published numbers line up."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest

from secreason.evals.base import Reference
from secreason.evals.report import build_report, markdown, summarize, write_report
from secreason.evals.runner import BenchmarkResult


def result() -> BenchmarkResult:
    return BenchmarkResult(
        name="toy-mcq",
        headline="accuracy",
        references=(
            Reference("Foundation-Sec-8B-Reasoning", "accuracy", 0.691),
            Reference("Llama-3.1-8B-Instruct", "accuracy", 0.62),
        ),
        n_samples=10,
        metrics={
            "official": [
                {"accuracy": 0.7, "invalid_rate": 0.1, "unclosed_rate": 0.0},
                {"accuracy": 0.5, "invalid_rate": 0.3, "unclosed_rate": 0.1},
            ],
            "strict": [
                {"accuracy": 0.6, "invalid_rate": 0.2, "unclosed_rate": 0.0},
                {"accuracy": 0.4, "invalid_rate": 0.4, "unclosed_rate": 0.1},
            ],
        },
    )


@pytest.mark.parametrize(
    ("values", "mean", "std"),
    [([0.5], 0.5, 0.0), ([0.7, 0.5], 0.6, statistics.stdev([0.7, 0.5])), ([], None, None)],
    ids=["one-trial", "two-trials", "none"],
)
def test_summarize(values: list[float], mean: float | None, std: float | None) -> None:
    stat = summarize(values)
    assert stat["mean"] == (pytest.approx(mean) if mean is not None else None)
    assert stat["std"] == (pytest.approx(std) if std is not None else None)


def test_report_lines_up_protocols_and_references() -> None:
    report = build_report([result()], {"model": "tiny", "backend": "transformers"})
    bench = report["benchmarks"][0]
    assert bench["trials"] == 2
    assert bench["protocols"]["official"]["accuracy"]["mean"] == pytest.approx(0.6)
    refs = {r["model"]: r for r in bench["references"]}
    # Published numbers are strict by default: compared with our strict mean (0.5).
    assert refs["Foundation-Sec-8B-Reasoning"]["ours"] == pytest.approx(0.5)
    assert refs["Foundation-Sec-8B-Reasoning"]["delta"] == pytest.approx(0.5 - 0.691)
    text = markdown(report)
    assert (
        "| toy-mcq | accuracy | 0.600 ± 0.141 | 0.500 ± 0.141 | 0.200 ± 0.141 / 0.300 ± 0.141"
        in text
    )
    assert "| toy-mcq | accuracy | strict | 0.500 ± 0.141 | 0.691 | 0.620 |" in text


def test_write_report_makes_every_file(tmp_path: Path) -> None:
    paths = write_report(tmp_path, [result()], {"model": "tiny"})
    assert set(paths) == {"json", "csv", "md", "png"}
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(paths["json"].read_text())
    assert data["benchmarks"][0]["name"] == "toy-mcq"
    rows = list(csv.DictReader(paths["csv"].open()))
    row = next(r for r in rows if r["protocol"] == "strict" and r["metric"] == "accuracy")
    assert float(row["mean"]) == pytest.approx(0.5) and row["trials"] == "2"
    assert "Against published numbers" in paths["md"].read_text()
