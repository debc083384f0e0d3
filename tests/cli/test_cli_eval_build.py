"""``secreason build-benchmark cwe-prediction`` through the real console script, then
``secreason eval cwe-prediction --predictions`` on the file it built (scores by hand)."""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

CLI = Path(sys.executable).with_name("secreason")


def nvd_item(
    cve_id: str,
    published: str,
    text: str,
    cwes: list[str],
    *,
    status: str = "Analyzed",
    source: str = "nvd@nist.gov",
) -> dict[str, Any]:
    return {
        "cve": {
            "id": cve_id,
            "published": published,
            "vulnStatus": status,
            "descriptions": [{"lang": "en", "value": text}, {"lang": "fr", "value": "jouet"}],
            "weaknesses": [
                {
                    "source": source,
                    "type": "Primary",
                    "description": [{"lang": "en", "value": c} for c in cwes],
                }
            ],
        }
    }


def nvd_feed(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resultsPerPage": len(items),
        "format": "NVD_CVE",
        "version": "2.0",
        "timestamp": "2031-06-01T00:00:00.000",
        "vulnerabilities": items,
    }


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    """A user's downloads: one plain NVD feed, one gzipped feed, a folder of advisories."""
    root = tmp_path / "downloads"
    (root / "advisories" / "2031").mkdir(parents=True)
    plain = [
        nvd_item(
            "CVE-2031-1001", "2031-02-01T08:00:00.000", "Widget echoes a query field.", ["CWE-79"]
        ),
        nvd_item(
            "CVE-2031-1002", "2031-03-05T08:00:00.000", "Widget joins input into SQL.", ["CWE-89"]
        ),
        nvd_item("CVE-2029-0001", "2029-06-01T08:00:00.000", "An old widget bug.", ["CWE-20"]),
        nvd_item(
            "CVE-2031-1003", "2031-03-09T08:00:00.000", "Vague widget flaw.", ["NVD-CWE-Other"]
        ),
        nvd_item("CVE-2031-1004", "2031-03-10T08:00:00.000", "** REJECT **", [], status="Rejected"),
    ]
    (root / "nvdcve-2.0-2031.json").write_text(json.dumps(nvd_feed(plain)))
    zipped = [
        nvd_item(
            "CVE-2031-1005", "2031-04-10T08:00:00.000", "Gadget writes past a buffer.", ["CWE-787"]
        )
    ]
    with gzip.open(root / "nvdcve-2.0-modified.json.gz", "wt", encoding="utf-8") as handle:
        json.dump(nvd_feed(zipped), handle)
    advisories = {
        "GHSA-q1q1-q1q1-q1q1": {
            "id": "GHSA-q1q1-q1q1-q1q1",
            "aliases": ["CVE-2031-2001"],
            "published": "2031-05-01T10:00:00Z",
            "summary": "Gizmo path traversal",
            "details": "Gizmo lets a crafted archive name write outside its folder.",
            "database_specific": {"cwe_ids": ["CWE-22"], "severity": "HIGH"},
        },
        # The same CVE as the NVD feed's first record: counted once.
        "GHSA-r2r2-r2r2-r2r2": {
            "id": "GHSA-r2r2-r2r2-r2r2",
            "aliases": ["CVE-2031-1001"],
            "published": "2031-02-02T10:00:00Z",
            "details": "Widget reflects a query field into the page.",
            "database_specific": {"cwe_ids": ["CWE-79"]},
        },
    }
    for name, advisory in advisories.items():
        (root / "advisories" / "2031" / f"{name}.json").write_text(json.dumps(advisory))
    return root


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SECREASON_PROGRESS": "0"}
    return subprocess.run(
        [str(CLI), *map(str, args)], capture_output=True, text=True, env=env, timeout=120
    )


def test_build_then_score_predictions_on_the_built_file(downloads: Path, tmp_path: Path) -> None:
    built = tmp_path / "bench" / "cwe-prediction.tsv"
    done = run_cli(
        "build-benchmark",
        "cwe-prediction",
        downloads / "nvdcve-2.0-2031.json",
        downloads / "nvdcve-2.0-modified.json.gz",
        downloads / "advisories",
        "--out",
        built,
        "--since",
        "2031-01-01",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["read"] == 8
    assert report["kept"] == 4
    assert report["dropped"] == {
        "outside date window": 1,
        "no concrete CWE": 1,
        "rejected": 1,
        "duplicate id": 1,
    }
    assert "kept 4 of 8" in done.stderr
    with built.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [(r["ID"], r["GT"]) for r in rows] == [
        ("CVE-2031-1001", "CWE-79"),
        ("CVE-2031-1002", "CWE-89"),
        ("CVE-2031-1005", "CWE-787"),
        ("CVE-2031-2001", "CWE-22"),
    ]

    preds = tmp_path / "preds.jsonl"
    lines = [
        {"index": 0, "completion": "<think>echoed field</think>\nAnswer: CWE-79"},
        # official finds the id anywhere in the answer; strict wants an 'Answer:' line
        {"index": 1, "completion": "<think>sql</think>\nThis is CWE-89 (SQL injection)."},
        {"index": 2, "completion": "<think>read or write?</think>\nAnswer: CWE-125"},
        {"index": 3, "completion": "<think>the archive name ... never closed"},
    ]
    preds.write_text("".join(json.dumps(line) + "\n" for line in lines))
    scored = run_cli(
        "eval",
        "cwe-prediction",
        "--predictions",
        preds,
        "--data",
        built,
        "--out",
        tmp_path / "scores",
    )
    assert scored.returncode == 0, scored.stderr
    scores = json.loads(scored.stdout)["cwe-prediction"]
    # official (RCM): correct / answers naming a CWE = 2 / 3 (row 3 has no answer at all)
    assert scores["official"]["accuracy"] == pytest.approx(2 / 3)
    assert scores["official"]["accuracy_all"] == pytest.approx(2 / 4)
    # strict: invalid answers stay in the denominator = 1 / 4
    assert scores["strict"]["accuracy"] == pytest.approx(1 / 4)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--since", "2031-13-01"], "--since '2031-13-01': expected a date"),
        (["--since", "2031-06-01", "--until", "2031-01-01"], "is before --since"),
        (["--since", "2031-01-01", "MISSING"], "MISSING: no such file or folder"),
    ],
    ids=["bad-date", "until-before-since", "missing-input"],
)
def test_bad_arguments_name_the_problem(
    downloads: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    args = [a if a != "MISSING" else str(tmp_path / "MISSING") for a in extra]
    done = run_cli(
        "build-benchmark", "cwe-prediction", downloads, "--out", tmp_path / "x.tsv", *args
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "x.tsv").exists()
