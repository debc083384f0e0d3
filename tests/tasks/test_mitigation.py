"""Mitigation recommendation (RMS): the offline catalogue, both readings, F1, RL use."""

from __future__ import annotations

import pytest

from secreason.kb.cache import UnknownEntryError
from secreason.kb.mitigations import load_mitigations, normalize_mitigation_id
from secreason.tasks import get_task
from secreason.tasks.mitigation import (
    MitigationRecommendation,
    athena_last_match,
    mitigation_sample,
)
from secreason.train.rewards import RewardSuite

R = "<think>The payload runs through a signed helper binary, so control what may run.</think>\n"


@pytest.fixture(scope="module")
def task() -> MitigationRecommendation:
    return MitigationRecommendation()


def test_catalogue_holds_attack_v18_mitigations_and_their_techniques() -> None:
    kb = load_mitigations()
    assert len(kb) == 44
    assert kb.mitigation(" m1038 ").name == "Execution Prevention"
    assert "T1218.001" in kb.mitigation("M1038").techniques
    assert kb.for_technique("t1218.001") == ("M1021", "M1038")
    assert kb.for_technique("T9999") == ()
    assert all(i.startswith("M1") for i in kb.ids())
    with pytest.raises(UnknownEntryError, match="no mitigation M1999"):
        kb.mitigation("M1999")
    with pytest.raises(ValueError, match="not an ATT&CK mitigation id"):
        normalize_mitigation_id("T1059")


@pytest.mark.parametrize(
    ("answer", "value", "status"),
    [
        ("Answer: M1021, M1038", 1.0, "correct"),
        ("Answer: m1038; M1021", 1.0, "correct"),
        ("**Answer:** M1038 (Execution Prevention), M1021", 1.0, "correct"),
        ("Answer: M1038", 2 / 3, "incorrect"),  # P 1, R 1/2
        ("Answer: M1038, M1042, M1050", 0.4, "incorrect"),  # P 1/3, R 1/2
        ("Answer: M1042", 0.0, "incorrect"),
        ("Answer: M10380", 0.0, "invalid"),  # not an id: a word boundary is needed
        ("Answer: T1218", 0.0, "invalid"),
        ("Answer: M1038, M1021\nHope that helps.", 0.0, "invalid"),
    ],
)
def test_strict(task, answer: str, value: float, status: str) -> None:
    score = task.judge(R + answer, "M1021, M1038").score
    assert score.value == pytest.approx(value)
    assert score.status == status


def test_strict_caps_the_number_of_ids(task) -> None:
    eleven = ", ".join(f"M{1013 + i}" for i in range(11))
    judged = task.judge(R + f"Answer: {eleven}", "M1021, M1038")
    assert judged.score.status == "invalid"
    assert "at most 10" in str(judged.extraction.error)
    assert MitigationRecommendation(max_ids=11).reward(R + f"Answer: {eleven}", "M1021") > 0


@pytest.mark.parametrize(
    ("answer", "ids"),
    [
        ("Answer: M1021, M1038", {"M1021", "M1038"}),
        ("Use M1042.\nFinal answer - m1021 and m1038", {"M1021", "M1038"}),
        ("Answer: M1021, M1038\nThese two cover it.", None),  # last line has no id
        ("M1042\nAnswer:", {"M1042"}),  # an empty label line is skipped
        ("Answer: M10211", {"M1021"}),  # no word boundary in the authors' pattern
        ("", None),
    ],
)
def test_official_reads_athenabenchs_last_line(task, answer: str, ids: set[str] | None) -> None:
    got = task.extract(answer, "official")
    assert (set(got.value) if got.ok else None) == ids


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answer: B", "B"),
        ("b\n\n  \n", "B"),
        ("Answer: B\nthis is a note", "A"),  # the standalone 'a' on the last line
        ("Prediction: none\nResult:", ""),  # 'none' holds no standalone letter
        ("Answer:\nOutput: E", "E"),
        ("Answers: C", "C"),  # 'Answer' dropped, 's: C' searched
    ],
)
def test_athena_line_reader(text: str, expected: str) -> None:
    assert athena_last_match(text, r"\b([A-E])\b", str.upper) == expected


def test_kb_items_reward_and_aggregate() -> None:
    sample = mitigation_sample("T1218.001", "A help file ran a hidden script.")
    assert sample.reference == "M1021, M1038"
    assert "exactly 2 mitigation" in sample.messages[0]["content"]
    with pytest.raises(ValueError, match="lists no mitigation"):
        mitigation_sample("T9999", "x")
    suite = RewardSuite.from_names(["rms"])
    reward = suite.functions()[0]
    got = reward(
        prompts=["p", "p"],
        completions=[R + "Answer: M1021, M1038", R + "Answer: M1038"],
        task=["rms", "rms"],
        reference=[sample.reference] * 2,
    )
    assert got == pytest.approx([1.0, 2 / 3])
    rms = get_task("rms")
    scores = [rms.judge(R + a, "M1021, M1038").score for a in ("Answer: M1038", "x")]
    metrics = rms.aggregate(scores)
    assert metrics["f1"] == pytest.approx(1 / 3)
    assert metrics["micro_f1"] == pytest.approx(2 * 1 / (2 * 1 + 0 + 3))


def test_shotgun_lists_lose_f1(task) -> None:
    """Below the id cap, every extra guessed mitigation lowers the reward."""
    gold = "M1021, M1038"
    rewards = []
    for extra in (0, 2, 5, 8):
        ids = ["M1021", "M1038"] + [f"M{1040 + i}" for i in range(extra)]
        rewards.append(task.reward(R + f"Answer: {', '.join(ids)}", gold))
    assert rewards == sorted(rewards, reverse=True)
    assert rewards[0] == 1.0
    assert rewards[-1] == pytest.approx(2 * 2 / (2 * 2 + 8))


def test_kb_cli_looks_up_mitigations_and_lists_them_for_techniques() -> None:
    import json

    from typer.testing import CliRunner

    from secreason.cli import app

    got = CliRunner().invoke(app, ["kb", "attack", "m1038", "--json"])
    assert got.exit_code == 0, got.stderr
    payload = json.loads(got.stdout)
    assert payload["kind"] == "mitigation" and payload["name"] == "Execution Prevention"
    assert "T1218.001" in payload["techniques"]
    technique = json.loads(CliRunner().invoke(app, ["kb", "attack", "T1218.001", "--json"]).stdout)
    assert technique["mitigations"] == ["M1021", "M1038"]
    missing = CliRunner().invoke(app, ["kb", "attack", "M1999"])
    assert missing.exit_code == 2 and "no mitigation M1999" in missing.stderr
