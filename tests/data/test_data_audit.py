"""Shortcut audit: the no-model baseline finds answers written in prompts, and a planted
leak fails the run naming the item."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from audit_fixtures import plant_item, tiny_audit_recipe
from typer.testing import CliRunner

from secreason.data import pipeline
from secreason.data.audit import AuditConfig, ShortcutError, audit
from secreason.data.shortcuts import Shortcuts

REPO = Path(__file__).resolve().parents[2]


CASES = [
    # (task, reference, meta, expected answer or None, reason)
    ("cwe", "CWE-89", {"description": "Bug (CWE-89) in a login form."}, "CWE-89", "CWE id"),
    ("cwe", "CWE-89", {"description": "SQL injection in the login form."}, "CWE-89", "CWE name"),
    ("cwe", "CWE-89", {"description": "The login form trusts its input."}, None, None),
    (
        "ate",
        "T1534",
        {"description": "They sent internal spearphishing mail."},
        "T1534",
        "technique name",
    ),
    ("ate", "T1059", {"description": "It ran T1059 on the host."}, "T1059", "technique id"),
    ("ate", "T1059", {"description": "It ran commands on the host."}, None, None),
    ("taa", "APT28", {"text": "Fancy Bear targeted ministries."}, "APT28", "actor-linked name"),
    (
        "taa",
        "Indrik Spider",
        {"text": "The group deployed WastedLocker."},
        "Indrik Spider",
        "actor-linked name",
    ),
    ("taa", "APT28", {"text": "[PLACEHOLDER] targeted ministries."}, None, None),
    (
        "cvss",
        "CVSS:3.1/AV:P/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
        {
            "description": "The attacker must physically touch or manipulate the device; "
            "no account or authentication is needed; a total or serious loss of confidentiality."
        },
        "AV:P",
        "CVSS metric phrase",
    ),
    (
        "cvss",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        {"description": "Score AV:N/AC:L."},
        "AV:N",
        "CVSS metric phrase",
    ),
    (
        "cvss",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        {"description": "A remote user can crash it."},
        None,
        None,
    ),
    (
        "mcq",
        "B",
        {
            "question": "Which tactic is Exfiltration Over Web Service?",
            "options": {"A": "Discovery", "B": "Exfiltration", "C": "Impact", "D": "Collection"},
        },
        "B",
        "option in question",
    ),
    (
        "mcq",
        "A",
        {
            "question": "Which one?",
            "options": {"A": "Discovery", "B": "Exfiltration", "C": "Impact", "D": "Collection"},
        },
        None,
        None,
    ),
]


@pytest.mark.parametrize(("task", "reference", "meta", "expected", "reason"), CASES)
def test_baseline_reads_answers_written_in_the_prompt(
    task, reference, meta, expected, reason
) -> None:
    shortcuts = Shortcuts()
    sample = plant_item(task, reference, **meta)
    shortcuts.constants(task, [sample])
    guess = shortcuts.guess(sample)
    if expected is None:
        assert guess is None
    else:
        assert guess is not None and expected in guess.answer and guess.reason == reason


def test_ceiling_uses_chance_of_the_best_constant() -> None:
    # Ten MCQ items whose options never appear in the question: baseline == chance.
    opts = {"A": "alpha", "B": "beta", "C": "gamma", "D": "delta"}
    items = [
        plant_item("mcq", "ABCD"[i % 4], question=f"Question {i}?", options=opts) for i in range(40)
    ]
    report = audit({"heldout": items}, AuditConfig())
    (row,) = report["rows"]
    assert row["chance"] == pytest.approx(0.25) and row["baseline"] == pytest.approx(0.25)
    assert report["passed"] and row["enforced"]
    # One option quoted per item: the baseline solves all, the ceiling fails.
    leaky = [
        plant_item("mcq", s.reference, question=f"Is it {opts[s.reference]}? ({i})", options=opts)
        for i, s in enumerate(items)
    ]
    report = audit({"heldout": leaky, "sft": leaky}, AuditConfig())
    failed = [r for r in report["rows"] if not r["passed"]]
    assert [r["split"] for r in failed] == ["heldout"]  # sft is measured, not enforced
    assert failed[0]["solved"] == 40 and failed[0]["baseline"] == 1.0
    assert sorted(failed[0]["solved_ids"]) == sorted(s.id for s in leaky)


def test_planted_leak_fails_the_run_naming_it(tmp_path: Path, monkeypatch) -> None:
    from secreason.cli import app

    real = pipeline.make_items
    planted = plant_item("cwe", "CWE-4242", description="CVE-2099-0001: CWE-4242 in a login form.")

    def with_leak(recipe):
        yield from real(recipe)
        yield planted

    monkeypatch.setattr(pipeline, "make_items", with_leak)
    recipe = tiny_audit_recipe(tmp_path / "run")
    with pytest.raises(ShortcutError, match=planted.id) as err:
        pipeline.run_pipeline(recipe)
    assert "cwe / heldout" in str(err.value) and "'CWE-4242' in the prompt" in str(err.value)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["audit"]["passed"] is False
    assert "Shortcut audit" in (tmp_path / "run" / "card.md").read_text()
    # The standalone command reads the same run and fails the same way.
    result = CliRunner().invoke(
        app, ["data", "audit", str(tmp_path / "run"), "--margin", "0", "--min-items", "1"]
    )
    assert result.exit_code == 1 and planted.id in result.output
    ok = CliRunner().invoke(app, ["data", "audit", str(tmp_path / "run"), "--margin", "0.5"])
    assert ok.exit_code == 0, ok.output


def test_audit_of_a_folder_without_a_run(tmp_path: Path) -> None:
    from secreason.cli import app

    result = CliRunner().invoke(app, ["data", "audit", str(tmp_path)])
    assert result.exit_code != 0 and "not a data run" in result.output
