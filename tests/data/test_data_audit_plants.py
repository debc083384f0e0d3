"""Hostile plants for the shortcut audit: one leaking item per row, each written the way a
careless generator (or a hand-edited file) would leak it, not the way the matchers were
written. Every plant must be solved by the no-model baseline, fail the audit, and be named
in the failure message; the consistency rows must be caught by ``one_gold_per_prompt``
and, on an exported run, by ``data audit``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from audit_fixtures import plant_item, tiny_audit_recipe
from typer.testing import CliRunner

from secreason.data.audit import AuditConfig, audit, failure_message
from secreason.data.consistency import one_gold_per_prompt
from secreason.data.shortcuts import Shortcuts
from secreason.tasks.base import Sample

V_NET = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
V_PHYS = "CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"
OPTS = {
    "A": "Credential Access",
    "B": "Lateral Movement",
    "C": "Defense Evasion",
    "D": "Initial Access",
}


def _with_turns(sample: Sample, *before: dict[str, str]) -> Sample:
    """The same item with extra turns (a system prompt, an earlier exchange) in front."""
    return Sample(
        sample.id + "-turns",
        sample.task,
        [*before, *sample.messages],
        sample.reference,
        sample.meta,
    )


# (row id, sample)
PLANTS = [
    # CVSS: the vector string itself, in any case or spacing; metric phrases re-cased.
    (
        "cvss-vector",
        plant_item(
            "cvss", V_PHYS, description="Fixed in 2.1 (AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N)."
        ),
    ),
    (
        "cvss-vector-lower",
        plant_item(
            "cvss", V_PHYS, description="vector cvss:3.1/av:p/ac:h/pr:h/ui:r/s:u/c:l/i:n/a:n"
        ),
    ),
    (
        "cvss-vector-spaced",
        plant_item(
            "cvss", V_PHYS, description="AV: P / AC: H / PR: H / UI: R / S: U / C: L / I: N / A: N"
        ),
    ),
    (
        "cvss-base-score",
        plant_item("cvss", V_PHYS, description="The vendor gives it a base score of 1.6."),
    ),
    (
        "cvss-score-severity",
        plant_item("cvss", V_PHYS, description="Rated 1.6 (Low) by the vendor."),
    ),
    (
        "cvss-vector-v30",
        plant_item("cvss", V_NET, description="CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
    ),
    # The metric definitions of kb.cvss, shouted, with other articles and plurals.
    (
        "cvss-phrases-upper-reworded",
        plant_item(
            "cvss",
            "CVSS:3.1/AV:L/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            description="ATTACKERS NEED LOCAL ACCESS; NO ACCOUNT OR AUTHENTICATION IS NEEDED; "
            "NO SPECIAL CONDITIONS ARE NEEDED AND AN ATTACK WORKS RELIABLY; NO USER HAS TO DO "
            "ANYTHING; THE IMPACT STAYS WITHIN THE SECURITY AUTHORITY OF A VULNERABLE "
            "COMPONENT; TOTAL OR SERIOUS LOSS OF CONFIDENTIALITY, TOTAL OR SERIOUS LOSS OF "
            "INTEGRITY, TOTAL OR SERIOUS LOSS OF AVAILABILITY.",
        ),
    ),
    (
        "cvss-metric-names",
        plant_item(
            "cvss",
            V_PHYS,
            description="Attack Vector: Physical. Attack Complexity: High. Privileges Required: "
            "High. User Interaction: Required. Scope: Unchanged. Confidentiality: Low. "
            "Integrity: None. Availability: None.",
        ),
    ),
    # CWE: the id in every spelling, the exact name, the short name in another case.
    (
        "cwe-id",
        plant_item("cwe", "CWE-79", description="Reflected input in the search page (CWE-79)."),
    ),
    (
        "cwe-id-lower-space",
        plant_item("cwe", "CWE-79", description="classified as cwe 79 by the vendor"),
    ),
    (
        "cwe-id-nb-hyphen",
        plant_item("cwe", "CWE-79", description="Classified as CWE\u201179 by the vendor."),
    ),
    (
        "cwe-id-en-dash",
        plant_item("cwe", "CWE-79", description="Classified as CWE\u201379 by the vendor."),
    ),
    ("cwe-id-zero-padded", plant_item("cwe", "CWE-79", description="Filed as CWE-079.")),
    ("cwe-id-first-of-two", plant_item("cwe", "CWE-79", description="CWE-79 (a child of CWE-74).")),
    (
        "cwe-short-name-shared",
        plant_item("cwe", "CWE-22", description="A path traversal in upload."),
    ),
    ("cwe-id-colon", plant_item("cwe", "CWE-79", description="Weakness: CWE: 79.")),
    (
        "cwe-name",
        plant_item(
            "cwe",
            "CWE-79",
            description="An Improper Neutralization of Input During Web Page Generation "
            "('Cross-site Scripting') in the search page.",
        ),
    ),
    (
        "cwe-short-name-case",
        plant_item("cwe", "CWE-79", description="A CROSS-SITE SCRIPTING bug in search."),
    ),
    # ATE: ids in any case, sub-technique ids, names.
    ("ate-id", plant_item("ate", "T1059", description="The actor used T1059 on the host.")),
    (
        "ate-subid",
        plant_item("ate", "T1059.001", description="The actor used T1059.001 on the host."),
    ),
    ("ate-id-lower", plant_item("ate", "T1059", description="the actor used t1059 on the host.")),
    (
        "ate-name",
        plant_item(
            "ate", "T1059", description="They relied on a command and scripting interpreter."
        ),
    ),
    ("ate-two-ids", plant_item("ate", "T1059, T1105", description="They used T1059 then T1105.")),
    ("ate-subname", plant_item("ate", "T1059.001", description="They ran POWERSHELL one-liners.")),
    # TAA: aliases, software and campaigns of the gold actor, re-cased and re-punctuated.
    ("taa-alias-case", plant_item("taa", "APT28", text="forest blizzard targeted ministries.")),
    ("taa-alias-punct", plant_item("taa", "APT28", text="Activity by Threat-Group 4127 was seen.")),
    ("taa-alias-squashed", plant_item("taa", "APT28", text="Activity by GRUESOME-LARCH was seen.")),
    ("taa-alias-dotted", plant_item("taa", "Cleaver", text="Activity tied to TG 2889 was seen.")),
    ("taa-software", plant_item("taa", "APT28", text="The intrusion dropped advstoreshell.")),
    ("taa-name-spaced", plant_item("taa", "APT28", text="Activity by APT 28 was seen.")),
    ("taa-name-dashed", plant_item("taa", "APT28", text="Activity by apt-28 was seen.")),
    ("taa-name-dotted", plant_item("taa", "APT28", text="Activity by A.P.T.28 was seen.")),
    ("taa-possessive", plant_item("taa", "APT28", text="APT28's operators hit ministries.")),
    ("taa-gold-name-upper", plant_item("taa", "Sandworm Team", text="SANDWORM TEAM hit the grid.")),
    ("taa-gold-is-alias", plant_item("taa", "Fancy Bear", text="Sofacy operators hit ministries.")),
    (
        "taa-campaign",
        plant_item("taa", "APT28", text="Part of the APT28 nearest-neighbor campaign."),
    ),
    # MCQ: the correct option's text in the question, in another case.
    (
        "mcq-option-in-question",
        plant_item(
            "mcq", "B", question="Why is LATERAL MOVEMENT the right tactic here?", options=OPTS
        ),
    ),
    (
        "mcq-longer-option-quoted",
        plant_item(
            "mcq",
            "D",
            question="The phish gave Initial Access; which tactic?",
            options={**OPTS, "A": "Access"},
        ),
    ),
    # An item built by hand: the question only in the messages, not in its fields.
    (
        "mcq-question-only-in-messages",
        Sample(
            "hand-built-mcq",
            "mcq",
            [
                {
                    "role": "user",
                    "content": "Why is lateral movement the tactic here?\n"
                    + "\n".join(f"{k}) {v}" for k, v in OPTS.items()),
                }
            ],
            "B",
            {"options": OPTS},
        ),
    ),
    # The answer in a system prompt or an earlier turn, not in the item's own fields.
    (
        "mcq-letter-in-system-prompt",
        _with_turns(
            plant_item("mcq", "C", question="Which tactic fits the log?", options=OPTS),
            {"role": "system", "content": "Grader note: the answer is (C)."},
        ),
    ),
    (
        "system-prompt",
        _with_turns(
            plant_item("cwe", "CWE-79", description="The search page echoes input."),
            {"role": "system", "content": "Hint for graders: the weakness is CWE-79."},
        ),
    ),
    (
        "earlier-turn",
        _with_turns(
            plant_item("ate", "T1059", description="They ran commands on the host."),
            {"role": "user", "content": "Which technique id is it?"},
            {"role": "assistant", "content": "Answer: T1059"},
        ),
    ),
]

#: clean items of each task, three golds in turn (task -> golds, fields of item i)
FILLERS = {
    "cwe": (
        ["CWE-89", "CWE-20", "CWE-787"],
        lambda i: {"description": f"The form trusts it ({i})."},
    ),
    "ate": (
        ["T1003", "T1105", "T1566"],
        lambda i: {"description": f"They moved on from host {i}."},
    ),
    "taa": (
        ["Lazarus Group", "Turla", "APT29"],
        lambda i: {"text": f"[PLACEHOLDER] seen on day {i}."},
    ),
    "cvss": (
        [
            V_NET,
            "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H",
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N",
        ],
        lambda i: {"description": f"A remote user can crash build {i}."},
    ),
    "mcq": (
        ["A", "C", "D"],
        lambda i: {"question": f"Which tactic fits case {i}?", "options": OPTS},
    ),
}

#: leaks a no-model string matcher cannot reasonably turn into the exact gold
NOT_SOLVABLE = {
    # A severity word or a paraphrase ("needs physical access") fixes at most one metric
    # or a score range; the CVSS scorer wants the exact base score, and choosing the rest
    # of the vector from a word is a model's job, not a leak a string match can exploit.
    "cvss-severity": plant_item(
        "cvss", V_NET, description="A CRITICAL severity flaw in the web UI."
    ),
    "cvss-paraphrase": plant_item(
        "cvss", V_PHYS, description="Exploitation needs hands on the box."
    ),
}


@pytest.mark.parametrize(("name", "sample"), PLANTS, ids=[p[0] for p in PLANTS])
def test_plant_is_solved_flagged_and_named(name: str, sample: Sample) -> None:
    shortcuts = Shortcuts()
    shortcuts.constants(sample.task, [sample])
    guess = shortcuts.guess(sample)
    assert guess is not None, f"{name}: the baseline saw no leak"
    # Alongside clean fillers the plant alone is solved, the split fails and names it.
    fillers = [
        plant_item(sample.task, FILLERS[sample.task][0][i % 3], **FILLERS[sample.task][1](i))
        for i in range(3)
    ]
    report = audit({"heldout": [sample, *fillers]}, AuditConfig(margin=0.0, min_items=1))
    row = next(r for r in report["rows"] if r["task"] == sample.task)
    assert sample.id in row["solved_ids"], f"{name}: guess {guess} did not score 1.0"
    assert not report["passed"] and sample.id in failure_message(report)


@pytest.mark.parametrize("name", sorted(NOT_SOLVABLE))
def test_documented_unsolvable_plants_stay_unflagged(name: str) -> None:
    sample = NOT_SOLVABLE[name]
    shortcuts = Shortcuts()
    shortcuts.constants(sample.task, [sample])
    assert shortcuts.guess(sample) is None


def _pair(a_prompt: str, b_prompt: str, gold_a: str, gold_b: str, split_b: str):
    a = plant_item("cwe", gold_a, split="train", description=a_prompt)
    b = plant_item("cwe", gold_b, split=split_b, description=b_prompt)
    return a, b


CONSISTENCY = [
    # (row id, train item, other item, kept ids)
    (
        "two-golds-across-splits",
        *_pair("The form trusts input.", "The form trusts input.", "CWE-89", "CWE-20", "heldout"),
    ),
    (
        "heldout-dup-in-train-case-space",
        *_pair("The  FORM trusts\tinput!", "the form trusts input.", "CWE-89", "CWE-89", "heldout"),
    ),
]


@pytest.mark.parametrize(("name", "train", "other"), CONSISTENCY, ids=[c[0] for c in CONSISTENCY])
def test_consistency_drops_the_training_copy(name: str, train: Sample, other: Sample) -> None:
    out, report = one_gold_per_prompt([train, other])
    assert train.id not in {s.id for s in out}
    assert report.cross_split_dropped + report.dropped_conflicts >= 1


def _write_run(root: Path, splits: dict[str, list[Sample]]) -> None:
    for name, items in splits.items():
        (root / name).mkdir(parents=True)
        rows = [
            {
                "id": s.id,
                "task": s.task,
                "prompt": s.messages,
                "reference": s.reference,
                "meta": json.dumps(s.meta),
            }
            for s in items
        ]
        (root / name / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize(("name", "train", "other"), CONSISTENCY, ids=[c[0] for c in CONSISTENCY])
def test_data_audit_fails_on_a_run_that_leaks_across_splits(
    tmp_path: Path, name: str, train: Sample, other: Sample
) -> None:
    from secreason.cli import app

    _write_run(tmp_path, {"rl": [train], "heldout": [other]})
    result = CliRunner().invoke(app, ["data", "audit", str(tmp_path), "--margin", "1"])
    assert result.exit_code == 1, result.output
    assert other.id in result.output and train.id in result.output


def test_data_audit_names_every_plant(tmp_path: Path) -> None:
    from secreason.cli import app

    # Each task's plants among clean fillers, so the constant answer is not also right.
    plants = [s for _, s in PLANTS]
    plants += [
        plant_item(t, golds[i % 3], **fields(i))
        for t, (golds, fields) in FILLERS.items()
        for i in range(12)
    ]
    _write_run(tmp_path, {"heldout": plants})
    result = CliRunner().invoke(
        app, ["data", "audit", str(tmp_path), "--margin", "0", "--min-items", "1"]
    )
    assert result.exit_code == 1
    missing = [name for name, s in PLANTS if s.id not in result.output]
    assert not missing, result.output


def test_data_run_fails_naming_plants_it_has_not_seen(tmp_path: Path, monkeypatch) -> None:
    """The plants ride a real tiny run (cwe and mcq items): the run fails naming each."""
    from secreason.data import pipeline
    from secreason.data.audit import ShortcutError

    names = {"cwe-id-nb-hyphen", "system-prompt", "mcq-question-only-in-messages"}
    planted = [s for name, s in PLANTS if name in names]
    planted = [
        Sample(s.id, s.task, s.messages, s.reference, {**s.meta, "split": "heldout"})
        for s in planted
    ]
    real = pipeline.make_items

    def with_plants(recipe):
        yield from real(recipe)
        yield from planted

    monkeypatch.setattr(pipeline, "make_items", with_plants)
    recipe = tiny_audit_recipe(tmp_path / "run")
    with pytest.raises(ShortcutError) as err:
        pipeline.run_pipeline(recipe)
    assert [s.id for s in planted if s.id not in str(err.value)] == []


def test_data_audit_reads_earlier_turns_of_sft_rows(tmp_path: Path) -> None:
    """An SFT row's earlier assistant turn is prompt the model sees; only the trace is not."""
    from secreason.cli import app

    items = [plant_item("cwe", FILLERS["cwe"][0][i % 3], **FILLERS["cwe"][1](i)) for i in range(6)]
    leak = plant_item("cwe", "CWE-79", split="train", description="The search page echoes input.")
    turns = [
        {"role": "user", "content": "Which weakness was the last one?"},
        {"role": "assistant", "content": "Answer: CWE-79"},
        *leak.messages,
        {"role": "assistant", "content": "It echoes input.\nAnswer: CWE-79"},
    ]
    (tmp_path / "sft").mkdir()
    rows = [
        {"id": s.id, "task": s.task, "messages": m, "reference": s.reference, "meta": "{}"}
        for s, m in [(leak, turns), *((s, [*s.messages]) for s in items)]
    ]
    (tmp_path / "sft" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["data", "audit", str(tmp_path), "--margin", "0", "--min-items", "1"]
    result = CliRunner().invoke(app, [*args, "--enforce", "sft"])
    assert result.exit_code == 1 and leak.id in result.output, result.output
