"""``secreason kb``: the real console script in a subprocess, offline, with its own cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("secreason")
RCE = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kb-cli")


def run_kb(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SECREASON_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "COLUMNS": "120"}
    return subprocess.run(
        [str(SCRIPT), "kb", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_cwe_text_view(cache: Path) -> None:
    done = run_kb(cache, "cwe", "CWE-79", "--examples", "2")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "CWE-79: Improper Neutralization of Input During Web Page Generation" in out
    assert "CWE 4.14" in out and "CWE-74" in out and "CVE-" in out
    assert "more CVE examples" in out
    assert (cache / "kb").is_dir() and any((cache / "kb").glob("cwe-*.json"))


def test_cwe_json_and_search(cache: Path) -> None:
    done = run_kb(cache, "cwe", "79", "--json")
    assert done.returncode == 0, done.stderr
    entry = json.loads(done.stdout)
    assert entry["id"] == 79 and entry["source"] == "CWE 4.14"
    assert entry["views"]["1000"]["parents"] == [74]
    assert entry["views"]["1003"]["member"] is True
    assert entry["examples"][0]["cve"].startswith("CVE-")
    found = json.loads(run_kb(cache, "cwe", "cross-site scripting", "--json").stdout)
    assert 79 in [m["id"] for m in found["matches"]]


def test_attack_technique_and_group(cache: Path) -> None:
    done = run_kb(cache, "attack", "T1059.001", "--json")
    assert done.returncode == 0, done.stderr
    technique = json.loads(done.stdout)
    assert technique["kind"] == "technique" and technique["name"] == "PowerShell"
    assert "v18.1" in technique["source"] and "G0016" in technique["groups"]
    text = run_kb(cache, "attack", "APT29")
    assert text.returncode == 0, text.stderr
    assert "G0016: APT29" in text.stdout and "Cozy Bear" in text.stdout
    assert "ATT&CK Enterprise v18.1" in text.stdout
    group = json.loads(run_kb(cache, "attack", "g0016", "--json").stdout)
    assert group["kind"] == "group" and "T1059.001" in group["techniques"]


def test_cvss_views(cache: Path) -> None:
    done = run_kb(cache, "cvss", RCE, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["base_score"], result["severity"], result["version"]) == (9.8, "Critical", "3.1")
    assert result["facts"][0].startswith("Attack Vector (AV:N) is Network")
    text = run_kb(cache, "cvss", RCE)
    assert "9.8 (Critical)" in text.stdout and "Attack Complexity" in text.stdout
    bare = json.loads(run_kb(cache, "cvss", RCE[9:], "--default-version", "3.0", "--json").stdout)
    assert bare["version"] == "3.0" and bare["base_score"] == 9.8


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("cwe", "99999"), "CWE-99999 is not in CWE 4.14"),
        (("cwe", "zzqqxx no such words"), "neither a CWE id"),
        (("cwe", " "), "neither a CWE id"),
        (("attack", "T9999"), "'T9999' is not in ATT&CK Enterprise v18.1"),
        (("attack", "Cozy Beer"), "did you mean Cozy Bear"),
        (("cvss", "CVSS:3.1/AV:N"), "Missing mandatory metrics"),
        (("cvss", RCE[9:]), "no version prefix"),
    ],
    ids=[
        "cwe-unknown",
        "cwe-junk",
        "cwe-blank",
        "attack-unknown",
        "attack-typo",
        "cvss-short",
        "cvss-bare",
    ],
)
def test_bad_input_exits_2_with_a_reason(cache: Path, args: tuple[str, ...], message: str) -> None:
    done = run_kb(cache, *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
