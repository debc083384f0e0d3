"""CVSS task: vector extraction under both protocols, scoring through the cvss package."""

from __future__ import annotations

import csv
import math

import pytest

from secreason.tasks import get_task
from secreason.tasks.base import Extraction, Sample, Score
from secreason.tasks.cvss import CVSSVector, gold_vector, parse_vector

CRIT = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8
BARE = "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
LOCAL = "CVSS:3.1/AV:L/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 8.4
REASONING = "<think>Network reachable, no privileges, full impact on all three.</think>\n"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (f"Answer: {CRIT}", CRIT),
        (f"answer: {CRIT.lower()}", CRIT),
        (f"**Answer:** `{CRIT}`", CRIT),
        (f"Answer: {BARE}", "CVSS:3.1/" + BARE),  # bare vector read as v3.1
        (f"Answer: CVSS:3.0/{BARE}", "CVSS:3.0/" + BARE),
        (f"Answer: {CRIT}.", CRIT),
        (f"Answer: {CRIT} (Critical, 9.8)", CRIT),
        (f"Answer: {CRIT} / {CRIT}", CRIT),  # the same vector twice is one answer
        (f"Answer: {CRIT}/E:U", CRIT + "/E:U"),  # temporal metrics allowed, base scored
        (f"Answer: {CRIT} (not AV:L)", CRIT),  # a value ruled out is not a second one
        (f"Answer: {CRIT}, rather than AV:A", CRIT),
    ],
    ids=lambda v: repr(v)[:48],
)
def test_strict_reads_one_vector(answer: str, expected: str) -> None:
    got = CVSSVector().extract(answer, "strict")
    assert got.value == expected, got.error


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (CRIT, "not 'Answer"),
        (f"Answer: {CRIT} or {LOCAL}", "several candidate vectors"),
        (f"Answer: {CRIT} (or AV:L)", "AV given as N and as L"),
        ("Answer: CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H", "Missing mandatory"),
        ("Answer: CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "Unknown value"),
        ("Answer: CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", "invalid"),
        ("Answer: 9.8", "no CVSS vector"),
        (f"Answer: {CRIT}\nThis is critical.", "not 'Answer"),
    ],
    ids=lambda v: repr(v)[:48],
)
def test_strict_invalid(answer: str, error: str) -> None:
    got = CVSSVector().extract(answer, "strict")
    assert got.value is None
    assert error in str(got.error)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (CRIT, "CVSS:3.0/" + BARE),  # the prefix is always CVSS:3.0/
        (f"First {LOCAL[9:]}, finally {BARE}", "CVSS:3.0/" + BARE),  # LAST match
        (f"{BARE}\nThat is all.", "CVSS:3.0/" + BARE),
        (BARE.lower(), None),  # metric keys are case-sensitive
        ("AV:n/AC:l/PR:n/UI:n/S:u/C:h/I:h/A:h", "CVSS:3.0/" + BARE),  # values upper-cased
        ("AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H", None),  # seven metrics
        ("AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:Q", None),  # matched but not valid
    ],
    ids=lambda v: repr(v)[:48],
)
def test_official_last_match(answer: str, expected: str | None) -> None:
    assert CVSSVector().extract(answer, "official").value == expected


@pytest.mark.parametrize(
    ("pred", "value", "status", "deviation", "exact"),
    [
        (CRIT, 1.0, "correct", 0.0, True),
        (LOCAL, 0.86, "incorrect", 1.4, False),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.02, "incorrect", 9.8, False),
    ],
)
def test_score_is_one_minus_deviation(
    pred: str, value: float, status: str, deviation: float, exact: bool
) -> None:
    score = CVSSVector().score(Extraction(pred), CRIT)
    assert score.value == pytest.approx(value)
    assert score.status == status
    assert score.details["deviation"] == deviation
    assert score.details["exact_vector"] is exact


def test_same_score_different_vector_is_correct_but_not_exact() -> None:
    # Swapping which impact is High/Low keeps the base score.
    gold = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:L/A:N"
    pred = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:H/A:N"
    score = CVSSVector().score(Extraction(pred), gold)
    assert score.status == "correct"
    assert score.details["exact_vector"] is False


def test_invalid_extraction_scores_zero_without_deviation() -> None:
    score = CVSSVector().score(Extraction(None, "nothing"), CRIT)
    assert (score.value, score.status) == (0.0, "invalid")
    assert "deviation" not in score.details


def test_bad_reference_raises_with_the_vector() -> None:
    with pytest.raises(ValueError, match="AV:Q"):
        gold_vector("CVSS:3.1/AV:Q/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")


def test_parse_is_cached() -> None:
    parse_vector.cache_clear()
    parse_vector(CRIT)
    parse_vector(CRIT)
    assert parse_vector.cache_info().hits >= 1


def test_aggregate_mad_over_valid_and_mean_with_invalid_zero() -> None:
    task = get_task("cvss")
    scores: list[Score] = [
        task.judge(REASONING + f"Answer: {CRIT}", CRIT).score,  # dev 0
        task.judge(REASONING + f"Answer: {LOCAL}", CRIT).score,  # dev 1.4
        task.judge(REASONING + "Answer: unsure", CRIT).score,  # invalid
    ]
    agg = task.aggregate(scores)
    assert agg["mad"] == pytest.approx(0.7)
    assert agg["mean"] == pytest.approx((1.0 + 0.86 + 0.0) / 3)
    assert agg["invalid_rate"] == pytest.approx(1 / 3)
    assert agg["accuracy"] == pytest.approx(1 / 3)
    assert agg["exact_vector_rate"] == pytest.approx(1 / 3)


def test_aggregate_mad_is_nan_when_nothing_parsed() -> None:
    task = get_task("cvss")
    agg = task.aggregate([task.judge("<think>x</think>none", CRIT).score])
    assert math.isnan(agg["mad"])


def test_prompt_names_the_answer_format() -> None:
    sample = Sample("1", "cvss", [], CRIT, {"description": "heap overflow in parser"})
    (message,) = CVSSVector().prompt(sample)
    assert "heap overflow in parser" in message["content"]
    assert "Answer: CVSS:3.1/" in message["content"]


def test_real_vsp_labels_all_parse(shared_benchmarks) -> None:
    """Every CTIBench-VSP gold vector is valid, and echoing it back is correct."""
    path = shared_benchmarks / "ctibench" / "cti-vsp.tsv"
    if not path.is_file():
        pytest.skip("cti-vsp.tsv is absent")
    csv.field_size_limit(1 << 30)
    with path.open(encoding="utf-8") as handle:
        golds = [row["GT"] for row in csv.DictReader(handle, delimiter="\t")]
    task = CVSSVector()
    for gold in golds:
        for protocol in ("strict", "official"):
            judged = task.judge(f"<think>ok</think>\nAnswer: {gold}", gold, protocol=protocol)
            assert judged.score.details["deviation"] == 0.0, (gold, protocol)
