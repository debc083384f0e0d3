"""Continuing a run: only a longer run may reuse an output_dir; other changes are diffed.

Unit cases drive the field comparison; one real SFT run on the tiny model is extended
from 4 to 6 steps and must continue from its checkpoint, not start over.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from stage_fixtures import whole_checkpoint, whole_model

from secreason.train.continuation import Change, compare, suggest_output_dir
from secreason.train.stage import DONE_MARKER, StageError, finished, prepare_output

REPO = Path(__file__).resolve().parents[2]

# (case, stored, current, changed fields, extends)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], list[str], bool]] = [
    ("same", {"max_steps": 4}, {"max_steps": 4}, [], False),
    ("more steps", {"max_steps": 4}, {"max_steps": 6}, ["max_steps"], True),
    ("fewer steps", {"max_steps": 6}, {"max_steps": 4}, ["max_steps"], False),
    ("steps from epochs", {"max_steps": -1}, {"max_steps": 100}, ["max_steps"], False),
    ("more epochs", {"num_train_epochs": 1.0}, {"num_train_epochs": 2}, ["num_train_epochs"], True),
    ("int equals float", {"learning_rate": 3}, {"learning_rate": 3.0}, [], False),
    (
        "rate and steps",
        {"learning_rate": 1e-4, "max_steps": 4},
        {"learning_rate": 2e-4, "max_steps": 6},
        ["learning_rate", "max_steps"],
        False,
    ),  # noqa: E501
    ("bool is not a number", {"max_steps": True}, {"max_steps": 5}, ["max_steps"], False),
    ("field older runs lack", {"seed": 0}, {"seed": 0, "new_field": 1}, [], False),
    (
        "list changed",
        {"reward_tasks": ["cwe"]},
        {"reward_tasks": ["cwe", "mcq"]},
        ["reward_tasks"],
        False,
    ),  # noqa: E501
]


@pytest.mark.parametrize(
    ("case", "before", "after", "names", "extends"), CASES, ids=[c[0] for c in CASES]
)
def test_compare_lists_each_changed_field(
    case: str, before: dict[str, Any], after: dict[str, Any], names: list[str], extends: bool
) -> None:
    changes = compare(before, after)
    assert [c.name for c in changes] == names
    assert (bool(changes) and all(c.extends for c in changes)) == extends


def test_change_and_suggestion_read_plainly() -> None:
    change = Change("format_penalty", 1.0, 0.0)
    assert str(change) == "format_penalty: 1.0 -> 0.0"
    assert suggest_output_dir("runs/demo/rl/", [change]) == "runs/demo/rl-format_penalty0"


def _recipe(kind: str, model: Path, data: Path, out: Path, *extra: str) -> Any:
    from secreason.train.config import RLRecipe, SFTRecipe, load_recipe

    cls = SFTRecipe if kind == "sft" else RLRecipe
    args = [f"model_name_or_path={model}", f"dataset_path={data}", f"output_dir={out}"]
    return load_recipe(REPO / "recipes" / "tiny-cpu" / f"{kind}.yaml", cls, [*args, *extra])


def _fake_finished(recipe: Any, step: int) -> None:
    from secreason.train.stage import fingerprint, mark_done

    prepare_output(recipe)
    whole_checkpoint(Path(recipe.output_dir) / f"checkpoint-{step}", step)
    whole_model(Path(recipe.output_dir) / "final")
    mark_done(recipe, fingerprint(recipe), 1.0, steps=step)


def test_the_ablation_after_a_finished_run_is_refused_with_a_diff(tmp_path: Path) -> None:
    out = tmp_path / "rl"
    _fake_finished(_recipe("rl", tmp_path, tmp_path / "d.jsonl", out), 200)
    ablation = _recipe("rl", tmp_path, tmp_path / "d.jsonl", out, "format_penalty=0")
    with pytest.raises(StageError) as err:
        finished(ablation)
    text = str(err.value)
    assert "holds a finished run of a different recipe" in text
    assert "\n  format_penalty: 1.0 -> 0.0\n" in text and "fingerprint" not in text
    assert f"output_dir={out}-format_penalty0" in text
    # Its own output_dir trains fresh; the same recipe again is simply done.
    assert (
        finished(_recipe("rl", tmp_path, tmp_path / "d.jsonl", tmp_path / "x", "format_penalty=0"))
        is None
    )  # noqa: E501
    assert (
        finished(_recipe("rl", tmp_path, tmp_path / "d.jsonl", out, "logging_steps=5")) is not None
    )  # noqa: E501


def test_more_steps_on_a_finished_run_continues_from_its_checkpoint(
    tmp_path: Path, capsys: Any
) -> None:
    out = tmp_path / "sft"
    _fake_finished(_recipe("sft", tmp_path, tmp_path / "d.jsonl", out, "max_steps=4"), 4)
    longer = _recipe("sft", tmp_path, tmp_path / "d.jsonl", out, "max_steps=6")
    assert finished(longer) is None
    assert prepare_output(longer) == str(out / "checkpoint-4")
    assert "continuing from" in capsys.readouterr().out
    assert not (out / "final" / DONE_MARKER).exists()
    # Going back down, or changing anything else on top, is refused.
    with pytest.raises(StageError, match="max_steps: 6 -> 4"):
        prepare_output(_recipe("sft", tmp_path, tmp_path / "d.jsonl", out, "max_steps=4"))
    with pytest.raises(StageError, match="learning_rate"):
        prepare_output(
            _recipe("sft", tmp_path, tmp_path / "d.jsonl", out, "max_steps=8", "learning_rate=1e-5")
        )


def test_a_finished_run_without_checkpoints_cannot_be_continued(tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "sft"
    _fake_finished(_recipe("sft", tmp_path, tmp_path / "d.jsonl", out, "max_steps=4"), 4)
    shutil.rmtree(out / "checkpoint-4")
    with pytest.raises(StageError, match="no checkpoint left to continue from"):
        prepare_output(_recipe("sft", tmp_path, tmp_path / "d.jsonl", out, "max_steps=6"))


@pytest.mark.slow
def test_real_sft_run_extended_from_4_to_6_steps(
    tiny_model_dir: Path, tmp_path: Path, capsys: Any
) -> None:
    from secreason.train.sft import run_sft

    data = tmp_path / "sft.jsonl"
    reply = "<think>\nThe text names a buffer.\n</think>\nAnswer: B"
    turns = [{"role": "user", "content": "Which?"}, {"role": "assistant", "content": reply}]
    row = {"messages": turns}
    data.write_text((json.dumps(row) + "\n") * 32)
    out = tmp_path / "out"
    common = ["save_steps=2", "per_device_train_batch_size=8", "logging_steps=1"]
    run_sft(_recipe("sft", tiny_model_dir, data, out, "max_steps=4", *common))
    assert json.loads((out / "final" / DONE_MARKER).read_text())["steps"] == 4
    capsys.readouterr()
    from transformers import TrainerCallback

    from secreason.train.demo import weights_changed

    taken: list[int] = []

    class Steps(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            taken.append(state.global_step)

    # Killed while exporting, after the last checkpoint: the rerun exports checkpoint-4 as
    # it is (transformers, resumed from it, trained a 5th step past max_steps=4).
    exported = (out / "final" / "model.safetensors").read_bytes()
    (out / "final" / DONE_MARKER).unlink()
    (out / "final" / "model.safetensors").write_bytes(exported[:1000])
    run_sft(_recipe("sft", tiny_model_dir, data, out, "max_steps=4", *common), [Steps()])
    assert taken == [] and "holds the whole run; exporting it" in capsys.readouterr().out
    assert json.loads((out / "final" / DONE_MARKER).read_text())["steps"] == 4
    assert (out / "final" / "model.safetensors").read_bytes() == exported
    assert weights_changed(out / "final", out / "checkpoint-4") == 0.0

    run_sft(_recipe("sft", tiny_model_dir, data, out, "max_steps=6", *common), [Steps()])
    assert taken == [5, 6]  # continued, not started over
    captured = capsys.readouterr()
    printed = captured.out + captured.err
    assert "continuing from" in printed and "checkpoint-4" in printed
    assert "max_steps: 4 -> 6" in printed
    # Progress: one readable line per logging step, not transformers' raw dicts.
    assert "[sft] step 5/6" in printed and "[sft] step 6/6" in printed and "| loss " in printed
    assert "{'loss'" not in printed and "'grad_norm'" not in printed
    assert json.loads((out / "final" / DONE_MARKER).read_text())["steps"] == 6
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    steps = [h["step"] for h in state["log_history"] if "loss" in h]
    assert steps == [1, 2, 3, 4, 5, 6]  # one history: 1-4 from the first run, 5-6 continued


def test_a_checkpoint_killed_while_saving_is_skipped(tmp_path: Path) -> None:
    from secreason.train.stage import last_checkpoint

    assert last_checkpoint(tmp_path) is None
    for step in (2, 6, 8, 10):
        whole_checkpoint(tmp_path / f"checkpoint-{step}", step)
    (tmp_path / "checkpoint-8" / "trainer_state.json").write_text("")
    (tmp_path / "checkpoint-10" / "trainer_state.json").unlink()
    whole_checkpoint(tmp_path / "checkpoint-old", 12)  # not a step: ignored
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-6")
