"""ATT&CK technique extraction: set reading, FAITH's official rule, set metrics."""

from __future__ import annotations

import csv

import pytest

from secreason.tasks import get_task
from secreason.tasks.attack import TechniqueExtraction, set_metrics, technique_set
from secreason.tasks.base import Extraction, Sample

GOLD = "T1071, T1573, T1083, T1070"
REASONING = "<think>HTTP C2 with DES, file listing, timestomping.</think>\n"


def ids(*names: str) -> frozenset[str]:
    return frozenset(names)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Answer: T1071, T1573", ids("T1071", "T1573")),
        ("answer: t1071,t1573", ids("T1071", "T1573")),
        ("**Answer:** T1071; T1573 and T1083", ids("T1071", "T1573", "T1083")),
        ("Answer: T1071 (Application Layer Protocol), T1573", ids("T1071", "T1573")),
        ("Answer: T1059.001, T1059", ids("T1059.001", "T1059")),
        ("Answer: T1071, T1071", ids("T1071")),
        ("Answer: [T1071, T1573]", ids("T1071", "T1573")),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_strict_reads_the_set(answer: str, expected: frozenset[str]) -> None:
    got = TechniqueExtraction().extract(answer, "strict")
    assert got.value == expected, got.error


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ("T1071, T1573", "not 'Answer"),
        ("Answer: none", "no technique id"),
        ("Answer: T107, T15730", "no technique id"),  # wrong digit counts
        ("Answer: T1071\nThese are my picks.", "not 'Answer"),
        ("Answer: " + ", ".join(f"T{1000 + i}" for i in range(41)), "at most 40"),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_strict_invalid(answer: str, error: str) -> None:
    got = TechniqueExtraction().extract(answer, "strict")
    assert got.value is None
    assert error in str(got.error)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Answer: T1071, T1573", ids("T1071", "T1573")),
        ("answer:t1071,  t1573", ids("T1071", "T1573")),
        ("Reasoning...\nAnswer: T1071, T1573\nDone.", ids("T1071", "T1573")),  # anywhere
        ("Answer: T1071.001, T1573", ids("T1071")),  # FAITH quirk: a sub-id ends the list
        ("Answer: T1071 , T1573", ids("T1071")),  # FAITH quirk: space before a comma
        ("Answer: T1071, T1573\nAnswer: T1071, T1573", ids("T1071", "T1573")),  # unique
        ("Answer: T1071\nAnswer: T1573", None),  # two different lists
        ("T1071, T1573", None),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_official_faith_rule(answer: str, expected: frozenset[str] | None) -> None:
    assert TechniqueExtraction().extract(answer, "official").value == expected


@pytest.mark.parametrize(
    ("pred", "gold", "p", "r", "f1", "jaccard"),
    [
        (ids("A", "B"), ids("A", "B"), 1.0, 1.0, 1.0, 1.0),
        (ids("A"), ids("A", "B"), 1.0, 0.5, 2 / 3, 0.5),
        (ids("A", "B", "C", "D"), ids("A"), 0.25, 1.0, 0.4, 0.25),
        (ids("C"), ids("A"), 0.0, 0.0, 0.0, 0.0),
        (ids(), ids("A"), 0.0, 0.0, 0.0, 0.0),
    ],
)
def test_set_metrics(
    pred: frozenset[str], gold: frozenset[str], p: float, r: float, f1: float, jaccard: float
) -> None:
    got = set_metrics(pred, gold)
    assert (got["precision"], got["recall"]) == pytest.approx((p, r))
    assert (got["f1"], got["jaccard"]) == pytest.approx((f1, jaccard))


def test_score_value_is_f1_and_correct_only_on_equal_sets() -> None:
    task = TechniqueExtraction()
    full = task.score(Extraction(technique_set(GOLD)), GOLD)
    assert (full.value, full.status) == (1.0, "correct")
    part = task.score(Extraction(ids("T1071", "T1573", "T1083")), GOLD)
    assert part.status == "incorrect"
    assert part.value == pytest.approx(6 / 7)
    extra = task.score(Extraction(technique_set(GOLD) | {"T1005"}), GOLD)
    assert extra.status == "incorrect"
    assert extra.value < 1.0


def test_collapse_subtechniques_applies_to_both_sides() -> None:
    pred = Extraction(ids("T1059.001", "T1071"))
    assert TechniqueExtraction().score(pred, "T1059, T1071").status == "incorrect"
    assert (
        TechniqueExtraction(collapse_subtechniques=True).score(pred, "T1059, T1071").status
        == "correct"
    )
    collapsed = TechniqueExtraction(collapse_subtechniques=True)
    assert collapsed.score(Extraction(ids("T1059")), "T1059.003").status == "correct"


def test_invalid_keeps_gold_in_the_pooled_counts() -> None:
    score = TechniqueExtraction().score(Extraction(None, "nothing"), GOLD)
    assert score.status == "invalid"
    assert (score.details["tp"], score.details["fp"], score.details["fn"]) == (0, 0, 4)


def test_aggregate_micro_macro_jaccard() -> None:
    task = get_task("ate")
    scores = [
        task.judge(REASONING + "Answer: T1071, T1573", "T1071, T1573").score,  # f1 1
        task.judge(REASONING + "Answer: T1071, T1005", "T1071, T1573").score,  # 1/2
        task.judge(REASONING + "no idea", "T1083, T1070").score,  # invalid
    ]
    agg = task.aggregate(scores)
    # pooled: tp 3, fp 1, fn 1 + 2 = 3 -> 6 / (6 + 1 + 3)
    assert agg["micro_f1"] == pytest.approx(0.6)
    assert agg["macro_f1"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert agg["mean_jaccard"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert agg["accuracy"] == pytest.approx(1 / 3)
    assert agg["micro_precision"] == pytest.approx(0.75)
    assert agg["micro_recall"] == pytest.approx(0.5)


def test_reference_without_ids_is_an_error() -> None:
    with pytest.raises(ValueError, match="no ATT&CK technique id"):
        technique_set("Application Layer Protocol")


def test_prompt_carries_the_report() -> None:
    sample = Sample("1", "ate", [], GOLD, {"description": "beacons over HTTPS"})
    (message,) = TechniqueExtraction().prompt(sample)
    assert "beacons over HTTPS" in message["content"]
    assert "Answer: T1234, T5678" in message["content"]


def test_real_ate_labels_round_trip(shared_benchmarks) -> None:
    path = shared_benchmarks / "ctibench" / "cti-ate.tsv"
    if not path.is_file():
        pytest.skip("cti-ate.tsv is absent")
    csv.field_size_limit(1 << 30)
    with path.open(encoding="utf-8") as handle:
        golds = [row["GT"] for row in csv.DictReader(handle, delimiter="\t")]
    task = TechniqueExtraction()
    for gold in golds:
        for protocol in ("strict", "official"):
            judged = task.judge(f"<think>ok</think>\nAnswer: {gold}", gold, protocol=protocol)
            assert judged.score.status == "correct", (gold, protocol)
