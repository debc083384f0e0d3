"""Threat actor attribution: alias/related graphs searched from the gold, both protocols."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from secreason.tasks import get_task
from secreason.tasks.actor import ThreatActorAttribution, load_name_map
from secreason.tasks.base import Extraction, Sample

# Invented groups in CTIBench's map format; "nan" entries as the authors' maps have them.
ALIASES = {
    "Copper Heron": ["heron team", "TA-990"],
    "ta 990": ["Silent Quill"],  # reached from Copper Heron only via the hyphen-folded key
    "Salt Lynx": ["nan"],
    "Marsh Owl": ["nan"],
    "Grey Finch": ["finch group"],
    "Lone Wolf": [],
}
RELATED = {
    "Copper Heron": ["Grey Finch"],
    "Grey Finch": ["nan"],
}
REASONING = "<think>Same loader, same targets, same infrastructure reuse.</think>\n"


@pytest.fixture
def task() -> ThreatActorAttribution:
    return ThreatActorAttribution(ALIASES, RELATED)


def judge(task: ThreatActorAttribution, answer: str, gold: str, protocol: str = "strict"):
    return task.judge(REASONING + answer, gold, protocol=protocol).score  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("answer", "gold", "label", "value"),
    [
        ("Answer: Copper Heron", "Copper Heron", "correct", 1.0),
        ("Answer: copper  HERON", "Copper Heron", "correct", 1.0),
        ("Answer: Heron Team", "Copper Heron", "correct", 1.0),
        ("Answer: TA990", "Copper Heron", "incorrect", 0.0),  # not a known spelling
        ("Answer: TA 990", "Copper Heron", "correct", 1.0),  # hyphens/spaces folded
        ("Answer: Silent Quill", "Copper Heron", "correct", 1.0),  # transitive alias
        ("Answer: Grey Finch", "Copper Heron", "plausible", 0.5),  # related
        ("Answer: Finch Group", "Copper Heron", "plausible", 0.5),  # related's alias
        ("Answer: Salt Lynx", "Marsh Owl", "incorrect", 0.0),  # "nan" dropped in strict
        ("Answer: nan", "Salt Lynx", "incorrect", 0.0),
        ("Answer: Lone Wolf", "Lone Wolf", "correct", 1.0),  # no aliases: exact match
        ("Answer: Unlisted Crew", "Unlisted Crew", "correct", 1.0),  # not in the maps
        ("Answer: The Grey Finch Group", "Grey Finch", "correct", 1.0),  # light variants
        ("Answer: Copper Heron (Heron Team)", "Copper Heron", "correct", 1.0),  # alias aside
        ("Answer: Copper Heron (high confidence)", "Copper Heron", "correct", 1.0),
        ("Answer: Marsh Owl", "Copper Heron", "incorrect", 0.0),
    ],
)
def test_strict(task, answer: str, gold: str, label: str, value: float) -> None:
    score = judge(task, answer, gold)
    assert score.details["label"] == label
    assert score.value == value
    assert score.status == ("correct" if label == "correct" else "incorrect")


@pytest.mark.parametrize(
    "answer",
    [
        "Answer: Copper Heron or Marsh Owl",
        "Answer: Copper Heron, Grey Finch",
        "Answer: Copper Heron / Salt Lynx",
        "Answer: Copper Heron (Grey Finch)",  # a different known group in parentheses
        "Answer: Alpha Crew and Beta Crew",
    ],
)
def test_strict_two_groups_is_invalid(task, answer: str) -> None:
    score = judge(task, answer, "Copper Heron")
    assert (score.status, score.value) == ("invalid", 0.0)


@pytest.mark.parametrize(
    ("answer", "gold"),
    [
        ("Answer: APT-C-36", "APT-C-36"),
        ("Answer: apt c 36", "APT-C-36"),
        ("Answer: TA505", "TA505"),
        ("Answer: UNC2452", "UNC2452"),
        ('Answer: "Sandworm Team"', "Sandworm Team"),
        ("**Answer:** Bitter APT", "Bitter APT"),
        ("Answer: Storm-1811.", "Storm-1811"),
        ("Answer: puNK-003", "puNK-003"),
    ],
)
def test_strict_reads_hyphenated_dotted_and_digit_names_whole(task, answer: str, gold: str) -> None:
    assert judge(task, answer, gold).status == "correct"
    # ... and a different name sharing the first word is not the same actor
    assert judge(task, answer, gold + "-9").status == "incorrect"


def test_strict_two_names_of_one_group_is_fine(task) -> None:
    assert judge(task, "Answer: Copper Heron / Heron Team", "Copper Heron").value == 1.0


@pytest.mark.parametrize(
    ("answer", "gold", "label"),
    [
        ("Threat Actor: Copper Heron", "Copper Heron", "correct"),
        ("threat actor: heron team", "Copper Heron", "correct"),
        ("Threat Actor: Salt Lynx", "Marsh Owl", "correct"),  # linked through "nan"
        ("Threat Actor: nan", "Salt Lynx", "correct"),  # literally
        ("Threat Actor: Grey Finch", "Copper Heron", "plausible"),
        ("Threat Actor: Lone Wolf", "Lone Wolf", "incorrect"),  # no loop back to itself
        ("Threat Actor: Unlisted Crew", "Unlisted Crew", "incorrect"),
        ("Threat Actor: ta 990", "Copper Heron", "incorrect"),  # no hyphen folding
    ],
)
def test_official_reproduces_the_notebook(task, answer: str, gold: str, label: str) -> None:
    assert judge(task, answer, gold, "official").details["label"] == label


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Threat Actor: Copper Heron", "copper heron"),
        ("Threat Actor: Copper Heron (aka Heron Team)", "copper heron"),
        ("I think so.\nThreat Actor: Copper Heron\nThreat Actor: copper heron", "copper heron"),
        ("Threat Actor: Copper Heron\nThreat Actor: Grey Finch", None),  # not unique
        ("Threat Actor:Copper Heron", None),  # FAITH needs whitespace after the colon
        ("Answer: Copper Heron", None),
        # Names with hyphens, dots, slashes and digits are read whole; quotes and bold
        # markers around the name are skipped; the sentence's final period is not read.
        ("Threat Actor: APT-C-36", "apt-c-36"),
        ("Threat Actor: Storm-1811.", "storm-1811"),
        ("Threat Actor: TA505", "ta505"),
        ("Threat Actor: UNC2452 (APT29)", "unc2452"),
        ('Threat Actor: "Sandworm Team"', "sandworm team"),
        ("**Threat Actor:** Bitter APT", "bitter apt"),
        ("Threat Actor: **Lotus.Blossom/x**", "lotus.blossom/x"),
        ("Threat Actor: APT-", "apt"),
        ("Threat Actor: --", None),
    ],
)
def test_official_extraction(task, answer: str, expected: str | None) -> None:
    assert task.extract(answer, "official").value == expected


def test_maps_load_from_json_files(tmp_path: Path) -> None:
    aliases = tmp_path / "aliases.json"
    related = tmp_path / "related.json"
    aliases.write_text(json.dumps(ALIASES))
    related.write_text(json.dumps(RELATED))
    from_files = get_task("taa", aliases=str(aliases), related=related)
    assert judge(from_files, "Answer: Heron Team", "Copper Heron").value == 1.0
    assert judge(from_files, "Answer: Grey Finch", "Copper Heron").value == 0.5


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "expected an object"),
        ('{"a": "b"}', "must be a list"),
        ("{not json", "not JSON"),
    ],
)
def test_bad_map_files_say_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "aliases.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        load_name_map(path, "alias")
    assert "aliases.json" in str(info.value)


def test_missing_map_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.json"):
        ThreatActorAttribution(aliases=tmp_path / "nope.json")


def test_without_maps_only_exact_names_count() -> None:
    bare = ThreatActorAttribution()
    assert judge(bare, "Answer: Copper Heron", "copper heron").value == 1.0
    assert judge(bare, "Answer: Heron Team", "Copper Heron").value == 0.0


def test_plausible_credit_is_configurable() -> None:
    task = ThreatActorAttribution(ALIASES, RELATED, plausible_credit=0.0)
    score = judge(task, "Answer: Grey Finch", "Copper Heron")
    assert (score.value, score.details["label"]) == (0.0, "plausible")


def test_plain_extraction_scores_as_strict(task) -> None:
    assert task.score(Extraction("ta-990"), "Copper Heron").value == 1.0


def test_aggregate_correct_and_plausible(task) -> None:
    scores = [
        judge(task, "Answer: Heron Team", "Copper Heron"),
        judge(task, "Answer: Grey Finch", "Copper Heron"),
        judge(task, "Answer: Marsh Owl", "Copper Heron"),
        judge(task, "no answer line", "Copper Heron"),
    ]
    agg = task.aggregate(scores)
    assert agg["correct"] == 0.25
    assert agg["correct_plausible"] == 0.5
    assert agg["invalid_rate"] == 0.25


def test_prompt_carries_the_report(task) -> None:
    sample = Sample("1", "taa", [], "Copper Heron", {"text": "[PLACEHOLDER] used a loader"})
    (message,) = task.prompt(sample)
    assert "[PLACEHOLDER] used a loader" in message["content"]
    assert "Answer: <threat actor name>" in message["content"]


def test_real_taa_labels_with_the_authors_maps(shared_benchmarks) -> None:
    """Echoing every gold label back is correct under both protocols with the real maps."""
    folder = shared_benchmarks / "ctibench"
    files = [folder / n for n in ("taa_alias_dict.json", "taa_related_dict.json")]
    labels_path = folder / "cti-taa-labels.tsv"
    if not all(p.is_file() for p in [*files, labels_path]):
        pytest.skip("CTIBench TAA files are absent")
    task = ThreatActorAttribution(*files)
    with labels_path.open(encoding="utf-8") as handle:
        golds = [row["GT"] for row in csv.DictReader(handle, delimiter="\t")]
    for gold in golds:
        assert judge(task, f"Answer: {gold}", gold).status == "correct", gold
        official = judge(task, f"Threat Actor: {gold}", gold, "official")
        # Hyphenated names (APT-C-36) are read whole, where FAITH's \\w+ read "apt".
        assert official.details["label"] == "correct", gold
