"""NVD CVE JSON (2.0 API/feeds and 1.1 yearly feeds) -> CWE and CVSS items with real text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from secreason.data.nvd import nvd_items, read_nvd
from secreason.data.synthesize import SynthesisConfig, synthesize
from secreason.data.template_teacher import template_trace
from secreason.tasks import get_task

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data" / "nvd"
REPO = Path(__file__).resolve().parents[2]


def test_both_layouts_are_read_and_rejections_skipped() -> None:
    entries = {e.id: e for e in read_nvd([FIXTURES])}
    assert set(entries) == {
        "CVE-2098-1001",
        "CVE-2098-1002",
        "CVE-2098-1003",
        "CVE-2098-1005",
        "CVE-2097-2001",
        "CVE-2097-2003",
    }
    # The Primary (NVD) vector wins over a vendor's Secondary one; v3.0 is kept as such.
    assert entries["CVE-2098-1001"].vector == "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"
    assert entries["CVE-2098-1002"].vector.startswith("CVSS:3.0/")
    assert entries["CVE-2098-1002"].cwes == ()  # NVD-CWE-Other is not a CWE
    assert entries["CVE-2097-2001"].cwes == ("CWE-416",)  # 1.1 feed, gzipped
    assert entries["CVE-2097-2003"].vector is None


def test_items_have_real_text_single_gold_and_verified_traces() -> None:
    items = list(nvd_items(SynthesisConfig(nvd=[str(FIXTURES)])))
    cwe = {s.meta["cves"][0]: s.reference for s in items if s.task == "cwe"}
    # One concrete CWE and no CWE id in the text: 1001, 2001, 2003 (not 1003, 1005, 1002).
    assert cwe == {
        "CVE-2098-1001": "CWE-79",
        "CVE-2097-2001": "CWE-416",
        "CVE-2097-2003": "CWE-312",
    }
    cvss = {s.meta["cves"][0]: s.reference for s in items if s.task == "cvss"}
    assert set(cvss) == {"CVE-2098-1001", "CVE-2098-1002", "CVE-2098-1005", "CVE-2097-2001"}
    for s in items:
        assert "NVD" in s.meta["provenance"]
        judged = get_task(s.task).judge(template_trace(s), s.reference)
        assert judged.score.status == "correct" and judged.format.ok
    text = next(s for s in items if s.task == "cvss" and "1001" in s.meta["cves"][0])
    assert text.meta["description"].startswith("The search box of Toy Wiki")


def test_offline_synthesis_unchanged_without_nvd() -> None:
    cfg = SynthesisConfig(kinds=["cvss_vector_to_severity"], max_per_kind=5, cvss_vectors=5)
    assert all("NVD" not in s.meta["provenance"] for s in synthesize(cfg))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a readable NVD JSON"),
        ('{"items": []}', "neither NVD 2.0"),
        ("[]", "expected"),
    ],
)
def test_bad_files_name_the_file(tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "feed.json"
    bad.write_text(content)
    with pytest.raises(ValueError, match=message) as err:
        list(read_nvd([bad]))
    assert str(bad) in str(err.value)


def test_cli_synthesize_with_nvd(tmp_path: Path) -> None:
    from secreason.cli import app

    out = tmp_path / "items.jsonl"
    args = [
        "data",
        "synthesize",
        str(REPO / "recipes/data/offline.yaml"),
        "--set",
        "synthesis.kinds=[]",
    ]
    result = CliRunner().invoke(app, [*args, "--nvd", str(FIXTURES), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 7 and {r["task"] for r in rows} == {"cwe", "cvss"}
    missing = CliRunner().invoke(app, [*args, "--nvd", str(tmp_path / "nope"), "--out", str(out)])
    assert missing.exit_code != 0 and "nope" in missing.output
