"""``--dedup``: which rows the de-duplicated set keeps, and its scores beside the full set.

Expected counts and scores are worked out by hand from the rules in ``evals.dedup``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from secreason.cli import app
from secreason.evals.ctibench import CTIBenchMCQ
from secreason.evals.dedup import plan
from secreason.evals.shuffle import shuffled
from secreason.tasks.base import Sample

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks" / "ctibench"


def _samples(rows: list[tuple[str, str]], system: str = "sys") -> list[Sample]:
    return [
        Sample(
            id=f"s{i}",
            task="mcq",
            messages=[
                {"role": "system", "content": f"{system}{i}"},  # differs: not part of the key
                {"role": "user", "content": prompt},
            ],
            reference=gold,
        )
        for i, (prompt, gold) in enumerate(rows)
    ]


# rows, kept ids, duplicates, conflicting groups, conflicting rows
PLANS = {
    "no rows": ([], set(), 0, 0, 0),
    "all distinct": ([("q1", "A"), ("q2", "A")], {"s0", "s1"}, 0, 0, 0),
    "case and whitespace": (
        [("Which  port?", "A"), ("which port?\n", "A"), ("other", "B")],
        {"s0", "s2"},
        1,
        0,
        0,
    ),
    "first row kept": ([("q", "B"), ("x", "C"), ("q", "B"), ("q", "B")], {"s0", "s1"}, 2, 0, 0),
    "gold compared normalised": ([("q", "cwe-79"), ("q", "CWE-79 ")], {"s0"}, 1, 0, 0),
    "conflicting group left out": (
        [("q", "A"), ("Q", "B"), ("q", "A"), ("r", "C")],
        {"s3"},
        1,
        1,
        3,
    ),
    "punctuation is content": ([("port 80?", "A"), ("port 80.", "B")], {"s0", "s1"}, 0, 0, 0),
}


@pytest.mark.parametrize("case", sorted(PLANS))
def test_plan_table(case: str) -> None:
    rows, kept, duplicates, groups, conflicting = PLANS[case]
    got = plan(_samples(rows))
    assert set(got.keep) == kept
    assert (got.duplicates, got.conflicting_groups, got.conflicting_rows) == (
        duplicates,
        groups,
        conflicting,
    )
    assert (got.items, got.unique) == (len(rows), len(kept))


def test_a_sample_without_a_user_turn_is_named() -> None:
    bad = Sample(
        id="lonely", task="mcq", messages=[{"role": "system", "content": "x"}], reference="A"
    )
    with pytest.raises(ValueError, match="lonely"):
        plan([bad])


def test_shuffled_copies_are_one_item_keyed_by_the_published_order() -> None:
    rows = CTIBenchMCQ().load(FIXTURES)
    copy = replace(rows[0], id="ctibench-mcq-copy", meta={**rows[0].meta, "index": 99})
    samples = shuffled([*rows, copy], 3, 0)
    got = plan(samples)
    assert got.items == len(rows) + 1 and got.duplicates == 1
    # every order of a kept item stays; no order of the repeated copy does
    assert len(got.keep) == 3 * len(rows)
    assert not any(s.startswith("ctibench-mcq-copy") for s in got.keep)


@pytest.mark.parametrize(
    ("name", "duplicates", "groups", "conflicting", "kept"),
    [("ctibench-rcm", 10, 1, 4, 987), ("ctibench-vsp", 12, 0, 0, 988)],
)
def test_real_ctibench_duplicates(
    shared_benchmarks: Path, name: str, duplicates: int, groups: int, conflicting: int, kept: int
) -> None:
    from secreason.evals.ctibench import CTIBENCH

    got = plan(CTIBENCH[name]().load(shared_benchmarks / "ctibench"))
    assert (got.items, got.duplicates, got.conflicting_groups) == (1000, duplicates, groups)
    assert (got.conflicting_rows, got.unique) == (conflicting, kept)


RCM_ROWS = [  # description, gold, prediction
    ("A form echoes a name unescaped.", "CWE-79", "CWE-79"),
    ("A login query glues text into SQL.", "CWE-89", "CWE-20"),
    ("a form  echoes a NAME unescaped.", "CWE-79", "CWE-79"),  # duplicate of row 0
    ("A copy ignores the buffer size.", "CWE-120", "CWE-120"),  # conflicting pair
    ("A copy ignores the buffer size.", "CWE-121", "CWE-120"),
    ("A path joins user text to a root.", "CWE-22", "no idea"),  # invalid
]


def test_rcm_full_and_deduplicated_side_by_side(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    lines = ["URL\tDescription\tPrompt\tGT"]
    for i, (desc, gold, _) in enumerate(RCM_ROWS):
        lines.append(f"u{i}\t{desc}\tMap this flaw to a CWE. CVE Description: {desc}\t{gold}")
    (data / "cti-rcm.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    preds = tmp_path / "preds.jsonl"
    preds.write_text(
        "".join(
            json.dumps({"index": i, "completion": f"Answer: {p}"}) + "\n"
            for i, (*_, p) in enumerate(RCM_ROWS)
        )
    )
    out = tmp_path / "out"
    args = ["eval", "ctibench-rcm", "--predictions", str(preds), "--data", str(data)]
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--dedup"])
    assert result.exit_code == 0, result.stderr
    got = json.loads(result.stdout)["ctibench-rcm"]
    # full: official = 3 correct / 5 CWE predictions, strict = 3 / 6
    assert got["official"]["accuracy"] == pytest.approx(3 / 5)
    assert got["strict"]["accuracy"] == pytest.approx(3 / 6)
    # de-duplicated: rows 0, 1, 5 (row 2 repeats 0; rows 3-4 disagree on the gold)
    assert got["official"]["dedup/accuracy"] == pytest.approx(1 / 2)
    assert got["strict"]["dedup/accuracy"] == pytest.approx(1 / 3)
    assert got["official"]["dedup/n"] == 3
    assert got["official"]["dedup/duplicates"] == 1
    assert got["official"]["dedup/conflicting_groups"] == 1
    assert got["official"]["dedup/conflicting_rows"] == 2
    report = json.loads((out / "report.json").read_text())
    strict = report["benchmarks"][0]["protocols"]["strict"]
    assert strict["dedup/accuracy"]["mean"] == pytest.approx(1 / 3)
    md = (out / "report.md").read_text()
    assert "## De-duplicated set" in md
    assert "| ctibench-rcm | accuracy | strict | 0.500 | 0.333 | 6 | 3 | 1 | 1 (2 rows) |" in md


def test_without_dedup_nothing_is_added(tmp_path: Path) -> None:
    preds = tmp_path / "preds.jsonl"
    preds.write_text(json.dumps({"index": 0, "completion": "CWE-79"}) + "\n")
    args = ["eval", "ctibench-rcm", "--predictions", str(preds), "--data", str(FIXTURES)]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o"), "--limit", "1"])
    assert result.exit_code == 0, result.stderr
    got = json.loads(result.stdout)["ctibench-rcm"]
    assert not any(k.startswith("dedup/") for k in got["official"])
    assert "De-duplicated" not in (tmp_path / "o" / "report.md").read_text()
