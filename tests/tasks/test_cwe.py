"""CWE task: strict and CTIBench-RCM extraction, integer matching, partial credit."""

from __future__ import annotations

import csv

import pytest

from secreason.tasks import get_task
from secreason.tasks.base import Extraction, Sample
from secreason.tasks.cwe import CWE, cwe_number

REASONING = "<think>The input reaches the page without encoding, so script runs.</think>\n"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Answer: CWE-79", "CWE-79"),
        ("answer: cwe-79", "CWE-79"),
        ("**Answer:** **CWE-79**", "CWE-79"),
        ("Answer: (CWE-79)", "CWE-79"),
        ("Answer: CWE\u201179", "CWE-79"),  # non-breaking hyphen
        ("Answer: CWE\u201379", "CWE-79"),  # en dash
        ("Answer: CWE 79", "CWE-79"),
        ("Answer: CWE-079", "CWE-79"),
        ("Answer: 79", "CWE-79"),
        ("Answer: CWE-79.", "CWE-79"),
        ("Answer: CWE-79 (Cross-site Scripting)", "CWE-79"),
        ("Answer: CWE-79, i.e. CWE-79 again", "CWE-79"),  # one distinct id
        ("Answer: CWE-79, not 80", "CWE-79"),  # an id ruled out is not a candidate
        ("Answer: CWE-79, rather than 80", "CWE-79"),
        ("Final answer: CWE-79", "CWE-79"),
        ("Some justification.\n\nAnswer: CWE-79\n\n", "CWE-79"),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_strict_reads_one_id(answer: str, expected: str) -> None:
    got = CWE().extract(answer, "strict")
    assert got.value == expected, got.error


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ("", "empty answer"),
        ("CWE-79", "not 'Answer"),
        ("Answer: CWE-79, CWE-89", "several candidate"),
        ("Answer: CWE-79 or CWE-80", "several candidate"),
        ("Answer: CWE-79, maybe 80", "several candidate"),
        ("Answer: XSS", "no CWE id"),
        ("Answer:", "empty 'Answer:'"),
        ("Answer: CWE-79\nI hope this helps.", "not 'Answer"),
        ("```\nAnswer: CWE-79\n```", "not 'Answer"),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_strict_invalid(answer: str, error: str) -> None:
    got = CWE().extract(answer, "strict")
    assert got.value is None
    assert error in str(got.error)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("It is CWE-20 or CWE-79.\nCWE-79", "CWE-79"),
        ("CWE-79 first, CWE-89 last", "CWE-89"),  # the LAST match
        ("Answer: CWE-79\nThanks!", "CWE-79"),  # anywhere in the text
        ("the id is cwe-79", None),  # case-sensitive
        ("cwe-79", "CWE-79"),  # no match: the notebook keeps the text, which reads CWE-
        ("CWE\u201179", None),  # no unicode-hyphen tolerance in the official rule
        ("CWE-079", "CWE-79"),
        ("no id here", None),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_official_last_match(answer: str, expected: str | None) -> None:
    assert CWE().extract(answer, "official").value == expected


@pytest.mark.parametrize(
    ("completion", "reference", "status", "value"),
    [
        (REASONING + "Answer: CWE-79", "CWE-79", "correct", 1.0),
        (REASONING + "Answer: CWE-79", "cwe-79", "correct", 1.0),
        (REASONING + "Answer: CWE-79", "79", "correct", 1.0),
        (REASONING + "Answer: CWE-89", "CWE-79", "incorrect", 0.0),
        (REASONING + "Answer: CWE-7", "CWE-79", "incorrect", 0.0),  # no prefix matching
        ("<think>Answer: CWE-79</think>", "CWE-79", "invalid", 0.0),  # only in reasoning
        ("<think>Answer: CWE-79", "CWE-79", "invalid", 0.0),  # unclosed
    ],
)
def test_judge_statuses(completion: str, reference: str, status: str, value: float) -> None:
    for protocol in ("strict", "official"):
        score = CWE().judge(completion, reference, protocol=protocol).score
        assert (score.status, score.value) == (status, value), protocol


def test_bad_reference_names_itself() -> None:
    with pytest.raises(ValueError, match="NVD-CWE-Other"):
        cwe_number("NVD-CWE-Other")


@pytest.mark.parametrize(
    ("pred", "gold", "value", "partial"),
    [
        ("CWE-74", "CWE-79", 0.5, "ancestor"),  # Injection is XSS's parent (view 1000)
        ("CWE-79", "CWE-74", 0.5, "descendant"),
        ("CWE-89", "CWE-79", 0.0, None),  # sibling: nothing
        ("CWE-707", "CWE-79", 0.0, None),  # grandparent: beyond max_distance=1
        ("CWE-999999", "CWE-79", 0.0, None),  # not in the catalog
        ("CWE-79", "CWE-79", 1.0, None),
    ],
)
def test_hierarchical_partial_credit(
    pred: str, gold: str, value: float, partial: str | None
) -> None:
    score = CWE(hierarchy=True).score(Extraction(pred), gold)
    assert score.value == value
    assert score.details.get("partial") == partial
    assert score.status == ("correct" if value == 1.0 else "incorrect")


def test_partial_credit_is_off_by_default() -> None:
    assert CWE().score(Extraction("CWE-74"), "CWE-79").value == 0.0


def test_partial_credit_range_is_checked() -> None:
    with pytest.raises(ValueError, match="partial_credit"):
        CWE(hierarchy=True, partial_credit=2.0)


def test_aggregate_reports_both_denominators() -> None:
    task = get_task("cwe")
    scores = [
        task.judge(REASONING + "Answer: CWE-79", "CWE-79").score,
        task.judge(REASONING + "Answer: CWE-89", "CWE-79").score,
        task.judge(REASONING + "I am not sure.", "CWE-79").score,
        task.judge(REASONING + "Answer: CWE-79", "CWE-79").score,
    ]
    agg = task.aggregate(scores)
    assert agg["accuracy"] == 0.5
    assert agg["invalid_rate"] == 0.25
    assert agg["n_valid"] == 3
    assert agg["accuracy_valid"] == pytest.approx(2 / 3)


def test_prompt_carries_description_and_format() -> None:
    sample = Sample("1", "cwe", [], "CWE-79", {"description": "A reflected XSS in login.php"})
    (message,) = CWE().prompt(sample)
    assert "login.php" in message["content"]
    assert "Answer: CWE-<number>" in message["content"]


def test_official_rule_on_real_rcm_labels(shared_benchmarks) -> None:
    """Every gold label of CTIBench-RCM parses, and echoing it back scores correct."""
    path = shared_benchmarks / "ctibench" / "cti-rcm.tsv"
    if not path.is_file():
        pytest.skip("cti-rcm.tsv is absent")
    csv.field_size_limit(1 << 30)
    with path.open(encoding="utf-8") as handle:
        golds = [row["GT"] for row in csv.DictReader(handle, delimiter="\t")]
    task = CWE()
    for gold in golds:
        reply = f"<think>Mapping the description.</think>\nJustification.\n{gold}"
        assert task.judge(reply, gold, protocol="official").score.status == "correct"
