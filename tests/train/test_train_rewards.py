"""Reward routing, the coverage check and the format penalty (secreason.train.rewards)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from secreason.reasoning import FormatConfig
from secreason.tasks import get_task
from secreason.train.rewards import (
    RewardCoverageError,
    RewardMetricsCallback,
    RewardSuite,
    check_reward_coverage,
    completion_text,
    read_metrics,
)

GOOD = "The group ran encoded powershell commands, that is execution.</think>\nAnswer: B"


def suite(**kw: Any) -> RewardSuite:
    return RewardSuite({"mcq": get_task("mcq"), "mcq4": get_task("mcq")}, **kw)


def call(fn: Any, completions: list[str], tasks: list[str], refs: list[str], **kw: Any) -> Any:
    return fn(
        prompts=[""] * len(completions), completions=completions, task=tasks, reference=refs, **kw
    )


# ----------------------------------------------------------------------------- routing


def test_each_task_reward_returns_none_for_rows_of_other_tasks() -> None:
    s = suite(prefilled=True)
    mcq, mcq4, fmt = s.functions()
    rows = (["mcq", "mcq4", "mcq"], ["B", "B", "C"])
    assert call(mcq, [GOOD, GOOD, GOOD], *rows) == [1.0, None, 0.0]
    assert call(mcq4, [GOOD, GOOD, GOOD], *rows) == [None, 1.0, None]
    assert mcq.__name__ == "mcq_reward" and fmt.__name__ == "format_reward"


def test_reward_is_the_task_strict_score() -> None:
    task = get_task("mcq")
    s = suite(prefilled=True)
    texts = [GOOD, "x</think>\nAnswer: A, B", "Answer: B", "</think>"]
    got = call(s.functions()[0], texts, ["mcq"] * 4, ["B"] * 4)
    assert got == [task.judge(t, "B", prefilled=True).score.value for t in texts]


def test_conversational_completions_are_read_as_text() -> None:
    assert completion_text([{"role": "assistant", "content": GOOD}]) == GOOD
    s = suite(prefilled=True)
    got = call(s.functions()[0], [[{"role": "assistant", "content": GOOD}]], ["mcq"], ["B"])
    assert got == [1.0]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"id": "a1", "task": "math", "reference": "4"}, "has no reward function"),
        ({"id": "a2", "task": "", "reference": "B"}, "no 'task'"),
        ({"id": "a3", "reference": "B"}, "no 'task'"),
        ({"id": "a4", "task": "mcq", "reference": "  "}, "empty 'reference'"),
        ({"id": "a5", "task": "mcq", "reference": None}, "empty 'reference'"),
    ],
    ids=["unknown-task", "empty-task", "missing-task", "blank-reference", "null-reference"],
)
def test_a_row_without_an_applicable_reward_is_refused(row: dict[str, Any], reason: str) -> None:
    rows = [{"id": "ok", "task": "mcq", "reference": "B"}, row]
    with pytest.raises(RewardCoverageError) as err:
        check_reward_coverage(rows, ["mcq"])
    assert reason in str(err.value) and row["id"] in str(err.value) and "row 1" in str(err.value)


def test_covered_rows_pass_and_are_counted() -> None:
    assert check_reward_coverage([{"task": "mcq", "reference": "A"}] * 3, ["mcq", "cwe"]) == 3


def test_rl_trainer_refuses_uncovered_data_before_training(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import json

    from secreason.train.config import RLRecipe, load_recipe
    from secreason.train.rl import build_rl_trainer

    data = tmp_path / "rl.jsonl"
    prompt = [{"role": "user", "content": "q"}]
    rows = [
        {"prompt": prompt, "task": "mcq", "reference": "A"},
        {"prompt": prompt, "task": "poetry", "reference": "a poem"},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = load_recipe(
        Path(__file__).resolve().parents[2] / "recipes" / "tiny-cpu" / "rl.yaml",
        RLRecipe,
        [
            f"model_name_or_path={tiny_model_dir}",
            f"dataset_path={data}",
            f"output_dir={tmp_path}/o",
        ],
    )
    with pytest.raises(RewardCoverageError, match="'poetry' has no reward function"):
        build_rl_trainer(recipe)
    assert not (tmp_path / "o" / "rl_metrics.jsonl").exists()


# ---------------------------------------------------------------------- format penalty

LOOP = "the answer is B " * 12


@pytest.mark.parametrize(
    ("completion", "prefilled", "penalised"),
    [
        (GOOD, True, False),
        (
            "<think>\nThe group ran encoded powershell commands, that is execution.\n"
            "</think>\nAnswer: B",
            False,
            False,
        ),
        ("<think> No</think>\nAnswer: B", False, True),
        (" No</think>\nAnswer: B", True, True),
        ("</think>\nAnswer: B", True, True),
        (f"{LOOP}</think>\nAnswer: B", True, True),
        ("No No No No No No No No No No No No</think>\nAnswer: B", True, True),
        ("Answer: B", False, True),
        ("The group ran encoded powershell commands, so the tactic is execution", True, True),
        ("<think>a b c d e f</think><think>g h i j k l</think>\nAnswer: B", False, True),
        ("The group ran encoded powershell commands, that is execution.</think>\n", True, True),
        (
            "preamble <think>The group ran encoded powershell commands.</think>\nAnswer: B",
            False,
            True,
        ),
    ],
    ids=[
        "good-prefilled",
        "good-open-tag",
        "collapsed-no",
        "collapsed-no-prefilled",
        "empty-reasoning",
        "looping-sentence",
        "looping-word",
        "no-think-block",
        "unclosed",
        "two-blocks",
        "no-answer",
        "text-before-think",
    ],
)
def test_format_penalty(completion: str, prefilled: bool, penalised: bool) -> None:
    s = suite(prefilled=prefilled)
    fmt = s.functions()[-1]
    assert call(fmt, [completion], ["mcq"], ["B"]) == [-1.0 if penalised else 0.0]


def test_collapsed_completion_earns_no_more_than_an_honest_wrong_answer() -> None:
    """With the penalty, a correct answer without reasoning earns no more than an honest
    wrong one, and less than reasoning to the right answer."""
    s = suite(prefilled=True)
    fns, weights = s.functions(), s.weights()
    collapsed = " No</think>\nAnswer: B"
    honest_wrong = (
        "The group ran encoded powershell commands, that is persistence.</think>\nAnswer: C"
    )

    def total(text: str) -> float:
        values = [call(f, [text], ["mcq"], ["B"])[0] for f in fns]
        return sum(w * (v or 0.0) for w, v in zip(weights, values, strict=True))

    assert total(collapsed) <= total(honest_wrong) < total(GOOD)


def test_penalty_weight_and_thresholds_come_from_the_recipe() -> None:
    strict = suite(prefilled=True, format_config=FormatConfig(min_reasoning_words=50))
    assert call(strict.functions()[-1], [GOOD], ["mcq"], ["B"]) == [-1.0]
    assert suite(format_penalty=0.0).weights()[-1] == 0.0
    assert suite(format_penalty=2.5).weights() == [1.0, 1.0, 2.5]


# ----------------------------------------------------------------------------- metrics


def test_per_task_metrics_are_gathered_and_written_per_step(tmp_path: Path) -> None:
    s = suite(prefilled=True, eos_token_ids=(2,))
    mcq, mcq4, fmt = s.functions()
    texts = [GOOD, " No</think>\nAnswer: B", GOOD]
    tasks, refs = ["mcq", "mcq", "mcq4"], ["B", "B", "C"]
    logged: dict[str, float] = {}
    call(mcq, texts, tasks, refs)
    call(mcq4, texts, tasks, refs)
    call(
        fmt,
        texts,
        tasks,
        refs,
        completion_ids=[[5, 2], [5, 6], [7, 2]],
        log_metric=logged.__setitem__,
    )
    assert logged["task/mcq/reward"] == 1.0
    assert logged["task/mcq/format_valid"] == 0.5
    assert logged["task/mcq/truncation"] == 0.5
    assert logged["task/mcq4/reward"] == 0.0

    class State:
        global_step = 7
        is_world_process_zero = True

    callback = RewardMetricsCallback(s, tmp_path / "m.jsonl")
    callback.on_step_begin(None, State(), None)
    callback.on_step_end(None, State(), None)
    (record,) = read_metrics(tmp_path / "m.jsonl")
    assert record["step"] == 7
    assert record["tasks"]["mcq"]["n"] == 2
    assert record["tasks"]["mcq"]["answer_words"] == 2.0
    assert record["reward_time_share"] > 0.0
    assert s.drain() == ({}, 0.0)


def test_the_coverage_check_builds_tasks_with_the_recipe_task_options() -> None:
    """A gold the recipe's task options make payable (E of a five-letter MCQ) is not
    refused, as verl and OpenRLHF (built from the same options) pay it."""
    from types import SimpleNamespace

    from datasets import Dataset

    from secreason.train.config import RLRecipe, load_recipe
    from secreason.train.rl import build_reward_suite

    recipe = load_recipe(
        Path(__file__).resolve().parents[2] / "recipes" / "tiny-cpu" / "rl.yaml",
        RLRecipe,
        ["task_options={mcq: {letters: ABCDE}}", "prefilled=true"],
    )
    rows = Dataset.from_list([{"task": "mcq", "reference": "E"}])
    suite = build_reward_suite(recipe, rows, SimpleNamespace(eos_token_id=None))
    assert suite.tasks["mcq"].judge("</think>\nAnswer: E", "E", prefilled=True).score.value == 1
