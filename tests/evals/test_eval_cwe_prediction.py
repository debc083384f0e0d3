"""CWE prediction: the builder's filters on NVD 2.0 and advisory fixtures, then RCM scoring."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from secreason.evals import ItemResult, get_benchmark
from secreason.evals.cwe_prediction import build

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks" / "cwe_prediction"


@pytest.fixture
def built(tmp_path: Path) -> Path:
    out = tmp_path / "cwe-prediction.tsv"
    report = build([FIXTURES], out, since="2099-01-01")
    assert report.read == 11
    assert report.kept == 3
    assert report.dropped == {
        "rejected": 1,
        "withdrawn": 1,
        "outside date window": 1,
        "no concrete CWE": 1,  # NVD-CWE-noinfo
        "several CWEs": 1,
        "duplicate description": 1,  # same text up to spacing and case, same CWE
        "description with conflicting CWEs": 2,
    }
    return out


def test_build_keeps_fresh_single_cwe_records(built: Path) -> None:
    with built.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [r["ID"] for r in rows] == ["CVE-2099-0001", "CVE-2099-0004", "CVE-2099-0100"]
    assert [r["GT"] for r in rows] == ["CWE-79", "CWE-125", "CWE-22"]  # NVD's own primary
    assert rows[2]["URL"].endswith("GHSA-aaaa-bbbb-cccc")
    assert rows[0]["Description"] in rows[0]["Prompt"]


def test_until_limit_and_seed(tmp_path: Path) -> None:
    report = build([FIXTURES], tmp_path / "a.tsv", since="2099-01-01", until="2099-02-28")
    assert report.kept == 2
    one = build([FIXTURES], tmp_path / "b.tsv", since="2099-01-01", limit=1, seed=3)
    build([FIXTURES], tmp_path / "c.tsv", since="2099-01-01", limit=1, seed=3)
    assert one.kept == 1 and (tmp_path / "b.tsv").read_text() == (tmp_path / "c.tsv").read_text()


def test_bad_input_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        build([tmp_path], tmp_path / "out.tsv", since="2000-01-01")
    with pytest.raises(FileNotFoundError, match="missing"):
        build([tmp_path / "missing"], tmp_path / "out.tsv", since="2000-01-01")


def test_benchmark_loads_filters_and_scores_like_rcm(built: Path) -> None:
    bench = get_benchmark("cwe-prediction")
    samples = bench.load(built.parent)
    assert [s.id for s in samples] == [f"cwe-prediction-{i}" for i in range(3)]
    later = get_benchmark("cwe-prediction", since="2099-03-01").load(built)
    assert [s.meta["index"] for s in later] == [2]
    completions = ["Reflected input.\nCWE-79", "Out of bounds read, CWE-787", "No idea."]
    results = [
        ItemResult(s.id, "official", bench.judge(s, c, "official"))
        for s, c in zip(samples, completions, strict=True)
    ]
    got = bench.metrics(samples, results, "official")
    assert got["accuracy"] == pytest.approx(1 / 2)  # the id-less answer leaves the denominator
    assert got["accuracy_all"] == pytest.approx(1 / 3)
