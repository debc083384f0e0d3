"""A hostile review of what a stage finds on disk after kills, crashes and odd reruns.

Each row tears a checkpoint, a model folder or a stage's own files the way a SIGKILL,
a crash or a full disk leaves them; the stage must pick the newest whole checkpoint,
say on stderr what it skipped, and refuse (one ``error`` message naming the path)
what it cannot use. Before these rows: a zero-byte or cut ``model.safetensors`` with
its trainer state crashed the resume deep in safetensors, a torn done marker crashed
in ``json``, another program's checkpoints were resumed silently, a foreign ``final``
would have been overwritten, and ``./data.jsonl`` vs ``data.jsonl`` refused a rerun.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from stage_fixtures import whole_checkpoint, whole_model

from secreason.train.checkpoints import folder_problem, last_checkpoint, model_source_problem

REPO = Path(__file__).resolve().parents[2]


def _cut(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


TEARS: dict[str, tuple[Callable[[Path], None], str]] = {
    "no trainer state": (lambda f: (f / "trainer_state.json").unlink(), "no trainer_state"),
    "trainer state cut": (lambda f: _cut(f / "trainer_state.json"), "trainer_state.json is"),
    "trainer state empty object": (
        lambda f: (f / "trainer_state.json").write_text("{}"),
        "no global_step",
    ),
    "weights zero bytes": (
        lambda f: (f / "model.safetensors").write_bytes(b""),
        "model.safetensors is empty",
    ),
    "weights cut in half": (lambda f: _cut(f / "model.safetensors"), "model.safetensors is cut"),
    "weights header only": (
        lambda f: _cut(f / "model.safetensors", 0.01),
        "model.safetensors is cut",
    ),
    "no weights": (lambda f: (f / "model.safetensors").unlink(), "no weights"),
    "optimizer cut": (lambda f: _cut(f / "optimizer.pt", 0.7), "optimizer.pt is cut"),
    "optimizer zero bytes": (lambda f: (f / "optimizer.pt").write_bytes(b""), "optimizer.pt is"),
    "rng state cut": (lambda f: _cut(f / "rng_state.pth", 0.3), "rng_state.pth is cut"),
    "config cut": (lambda f: _cut(f / "config.json"), "config.json is unreadable"),
}


@pytest.mark.parametrize("tear", list(TEARS), ids=list(TEARS))
def test_a_torn_checkpoint_is_skipped_named_and_set_aside(
    tear: str, tiny_model_dir: Path, tmp_path: Path, capsys: Any
) -> None:
    out = tmp_path / "out"
    whole_checkpoint(out / "checkpoint-2", 2)
    torn = whole_checkpoint(out / "checkpoint-4", 4)
    assert folder_problem(torn, checkpoint=True) is None
    damage, reason = TEARS[tear]
    damage(torn)
    problem = folder_problem(torn, checkpoint=True)
    assert problem is not None and reason in problem, problem

    assert last_checkpoint(out) == str(out / "checkpoint-2")
    err = capsys.readouterr().err
    assert f"skipping {torn}" in err and reason in err and "torn-checkpoint-4" in err
    # Kept (never deleted) but out of transformers' way: its rotation globs checkpoint-*.
    assert (out / "torn-checkpoint-4").is_dir() and not torn.exists()
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]


def test_no_whole_checkpoint_says_it_starts_over(
    tiny_model_dir: Path, tmp_path: Path, capsys: Any
) -> None:
    torn = whole_checkpoint(tmp_path / "checkpoint-3", 3)
    (torn / "model.safetensors").write_bytes(b"")
    whole_checkpoint(tmp_path / "checkpoint-old", 9)  # not a step: ignored
    assert last_checkpoint(tmp_path) is None
    assert "no whole checkpoint left; training starts from step 0" in capsys.readouterr().err
    # A second torn folder of the same step does not overwrite the first one set aside.
    again = whole_checkpoint(tmp_path / "checkpoint-3", 3)
    (again / "trainer_state.json").unlink()
    assert last_checkpoint(tmp_path) is None
    assert (tmp_path / "torn-checkpoint-3").is_dir() and (tmp_path / "torn-checkpoint-3.2").is_dir()


def _recipe(kind: str, model: Path, data: Path, out: Path | str, *extra: str) -> Any:
    from secreason.train.config import RLRecipe, SFTRecipe, load_recipe

    cls = SFTRecipe if kind == "sft" else RLRecipe
    args = [f"model_name_or_path={model}", f"dataset_path={data}", f"output_dir={out}"]
    return load_recipe(REPO / "recipes" / "tiny-cpu" / f"{kind}.yaml", cls, [*args, *extra])


def _odd_dir(tmp_path: Path, case: str) -> Path:
    target = tmp_path / "target"
    if case == "a file":
        target.write_text("notes\n")
    elif case == "a folder of notes":
        target.mkdir()
        (target / "notes.txt").write_text("mine\n")
    elif case == "another program's checkpoints":
        target.mkdir()
        (target / "checkpoint-500").mkdir()
        (target / "checkpoint-500" / "trainer_state.json").write_text('{"global_step": 500}')
    elif case == "a model folder":
        target.mkdir()
        (target / "config.json").write_text("{}")
        (target / "final").mkdir()
    return target


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("a file", "a file, not a folder"),
        ("a folder of notes", "holds notes.txt"),
        ("another program's checkpoints", "holds checkpoint-500"),
        ("a model folder", "holds config.json, final"),
    ],
)
def test_an_output_dir_that_is_not_a_stage_folder_is_refused(
    case: str, message: str, tmp_path: Path
) -> None:
    from secreason.train.stage import StageError, prepare_output

    target = _odd_dir(tmp_path, case)
    before = sorted(str(p) for p in target.rglob("*")) if target.is_dir() else []
    with pytest.raises(StageError) as err:
        prepare_output(_recipe("sft", tmp_path, tmp_path / "d.jsonl", target))
    assert message in str(err.value) and str(target) in str(err.value)
    after = sorted(str(p) for p in target.rglob("*")) if target.is_dir() else []
    assert after == before  # nothing written into it


@pytest.mark.parametrize("case", ["missing", "empty", "dotfiles only"])
def test_a_new_or_empty_output_dir_is_fine(case: str, tmp_path: Path) -> None:
    from secreason.train.stage import prepare_output

    target = tmp_path / "out"
    if case != "missing":
        target.mkdir()
    if case == "dotfiles only":
        (target / ".gitkeep").write_text("")
    assert prepare_output(_recipe("sft", tmp_path, tmp_path / "d.jsonl", target)) is None
    assert (target / "secreason_recipe.yaml").is_file()


def _finished(tmp_path: Path, model: Path, *extra: str) -> Any:
    from secreason.train.stage import fingerprint, mark_done, prepare_output

    data = tmp_path / "d.jsonl"
    data.write_text("{}\n")
    recipe = _recipe("sft", model, data, tmp_path / "out", *extra)
    prepare_output(recipe)
    whole_checkpoint(tmp_path / "out" / "checkpoint-4", 4)
    whole_model(tmp_path / "out" / "final")
    mark_done(recipe, fingerprint(recipe), 1.0, steps=4)
    return recipe


@pytest.mark.parametrize(
    "spelling",
    [
        "dataset_path=./d.jsonl",
        "dataset_path={tmp}/./d.jsonl",
        "dataset_path={tmp}//d.jsonl",
        "model_name_or_path={model}/",
        "learning_rate=0.002",
        "learning_rate=2e-3",
        "weight_decay=0",
        "bf16=no",
        "output_dir={tmp}/out/",
        "output_dir=./out",
    ],
)
def test_the_same_values_spelled_otherwise_are_the_same_run(
    spelling: str, tiny_model_dir: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    from secreason.train.stage import finished, prepare_output

    monkeypatch.chdir(tmp_path)
    _finished(tmp_path, tiny_model_dir, f"dataset_path={tmp_path}/d.jsonl")
    again = _recipe(
        "sft",
        tiny_model_dir,
        tmp_path / "d.jsonl",
        tmp_path / "out",
        spelling.format(tmp=tmp_path, model=tiny_model_dir),
    )
    assert finished(again) is not None
    (tmp_path / "out" / "final" / "secreason_stage.json").unlink()  # killed before its end
    resume = prepare_output(again)
    assert resume and Path(resume).resolve() == tmp_path / "out" / "checkpoint-4"


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("dataset_path=other.jsonl", "dataset_path"),
        ("max_steps=3", "max_steps"),
        ("model_init_kwargs={dtype: float32}", "model_init_kwargs"),
        ("learning_rate=0.0021", "learning_rate"),
    ],
)
def test_a_real_change_is_still_refused_field_by_field(
    override: str, field: str, tiny_model_dir: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    from secreason.train.stage import StageError, finished

    monkeypatch.chdir(tmp_path)
    (tmp_path / "other.jsonl").write_text("{}\n")
    _finished(tmp_path, tiny_model_dir)
    again = _recipe("sft", tiny_model_dir, tmp_path / "d.jsonl", tmp_path / "out", override)
    with pytest.raises(StageError, match=f"\n  {field}: "):
        finished(again)


def test_nested_values_compare_by_value() -> None:
    from secreason.train.continuation import compare

    assert (
        compare({"task_options": {"cvss": {"t": 1}}}, {"task_options": {"cvss": {"t": 1.0}}}) == []
    )
    assert [c.name for c in compare({"o": {"a": [1, 2]}}, {"o": {"a": [2, 1]}})] == ["o"]


def test_a_torn_done_marker_finishes_the_stage_again(
    tiny_model_dir: Path, tmp_path: Path, capsys: Any
) -> None:
    from secreason.train.stage import finished, prepare_output

    recipe = _finished(tmp_path, tiny_model_dir)
    marker = tmp_path / "out" / "final" / "secreason_stage.json"
    marker.write_text('{"stage": "sf')  # killed while writing it
    assert finished(recipe) is None
    assert "damaged" in capsys.readouterr().err
    assert prepare_output(recipe) == str(tmp_path / "out" / "checkpoint-4")


def test_a_damaged_stored_recipe_is_an_error_naming_it(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from secreason.train.stage import StageError, prepare_output

    recipe = _finished(tmp_path, tiny_model_dir)
    (tmp_path / "out" / "final" / "secreason_stage.json").unlink()
    stored = tmp_path / "out" / "secreason_recipe.yaml"
    stored.write_text("learning_rate: [0.1\n")
    with pytest.raises(StageError, match="secreason_recipe.yaml: damaged"):
        prepare_output(recipe)


def test_stage_files_are_written_whole(tiny_model_dir: Path, tmp_path: Path) -> None:
    _finished(tmp_path, tiny_model_dir)
    out = tmp_path / "out"
    assert not list(out.rglob("*.tmp"))  # the atomic writes cleaned up after themselves
    assert json.loads((out / "final" / "secreason_stage.json").read_text())["steps"] == 4


def _stage_output(tmp_path: Path, model: Path, *, done: bool, tear: str = "") -> Path:
    out = tmp_path / "sft"
    out.mkdir()
    (out / "secreason_recipe.yaml").write_text("seed: 0\n")
    final = out / "final"
    shutil.copytree(model, final)
    if done:
        (final / "secreason_stage.json").write_text('{"stage": "sft"}')
    if tear == "weights":
        _cut(final / "model.safetensors")
    if tear == "no final":
        shutil.rmtree(final)
    return out


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("stage folder, not its final", "a training stage's output folder; its model is"),
        ("stage folder, no final yet", "once it ends"),
        ("final of an unfinished stage", "did not finish"),
        ("final with torn weights", "model.safetensors is cut short"),
        ("finished final", None),
        ("base model", None),
        ("hub id", None),
    ],
)
def test_rl_refuses_an_sft_output_it_cannot_start_from(
    case: str, message: str | None, tiny_model_dir: Path, tmp_path: Path
) -> None:
    if case == "stage folder, not its final":
        model = str(_stage_output(tmp_path, tiny_model_dir, done=True))
    elif case == "stage folder, no final yet":
        model = str(_stage_output(tmp_path, tiny_model_dir, done=False, tear="no final"))
    elif case == "final of an unfinished stage":
        model = str(_stage_output(tmp_path, tiny_model_dir, done=False) / "final")
    elif case == "final with torn weights":
        model = str(_stage_output(tmp_path, tiny_model_dir, done=True, tear="weights") / "final")
    elif case == "finished final":
        model = str(_stage_output(tmp_path, tiny_model_dir, done=True) / "final")
    else:
        model = str(tiny_model_dir) if case == "base model" else "org/some-model"
    problem = model_source_problem(model)
    if message is None:
        assert problem is None
        return
    assert problem is not None and message in problem and model in problem


def test_run_rl_stops_before_loading_anything(tiny_model_dir: Path, tmp_path: Path) -> None:
    from secreason.train.rl import run_rl
    from secreason.train.stage import StageError

    sft = _stage_output(tmp_path, tiny_model_dir, done=False)
    recipe = _recipe("rl", sft / "final", tmp_path / "rl.jsonl", tmp_path / "rl")
    with pytest.raises(StageError, match="did not finish"):
        run_rl(recipe)
    assert not (tmp_path / "rl").exists()


class _Built(Exception):
    """Raised by a stand-in trainer builder: the stage got past its checks."""


def _never_built() -> Any:
    raise _Built


def test_two_runs_never_train_into_one_folder(tiny_model_dir: Path, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from secreason.train.checkpoints import LOCK_FILE
    from secreason.train.stage import StageError, run_stage

    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"f = open({str(out / LOCK_FILE)!r}, 'a+')\n"
            "fcntl.flock(f, fcntl.LOCK_EX)\n"
            "f.write(f'pid {os.getpid()}'); f.flush(); print('held', flush=True)\n"
            "time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        recipe = _recipe("sft", tiny_model_dir, tmp_path / "d.jsonl", out)
        with pytest.raises(StageError, match=f"another process \\(pid {holder.pid}\\)"):
            run_stage("sft", recipe, _never_built)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with pytest.raises(_Built):  # the kernel dropped the killed holder's lock
        run_stage("sft", recipe, _never_built)


@pytest.mark.parametrize(
    ("model", "message"),
    [("runs/none/sft/final", "no such folder"), ("{tmp}/d.jsonl", "a file, not a folder")],
)
def test_a_missing_starting_model_is_named_before_anything_loads(
    model: str, message: str, tmp_path: Path
) -> None:
    from secreason.train.rl import run_rl
    from secreason.train.stage import StageError

    (tmp_path / "d.jsonl").write_text("{}\n")
    recipe = _recipe("rl", Path(model.format(tmp=tmp_path)), tmp_path / "d.jsonl", tmp_path / "o")
    with pytest.raises(StageError, match=message):
        run_rl(recipe)


def test_the_accelerate_entry_point_prints_one_error_line(tmp_path: Path, capsys: Any) -> None:
    from secreason.train.config import SFTRecipe
    from secreason.train.stage import stage_main

    def broken(recipe: Any) -> Path:
        raise FileNotFoundError(2, "No such file or directory", str(tmp_path / "gone.bin"))

    recipe = REPO / "recipes" / "tiny-cpu" / "sft.yaml"
    with pytest.raises(SystemExit) as done:
        stage_main("secreason.train.sft", SFTRecipe, broken, [str(recipe)])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"error: {tmp_path / 'gone.bin'}: no such file") and "Traceback" not in err
    )


@pytest.mark.parametrize("unfinished", [False, True], ids=["finished", "checkpoints only"])
def test_new_rows_at_the_same_path_are_a_change_not_a_silent_resume(
    unfinished: bool, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from secreason.train.stage import StageError, finished, prepare_output

    recipe = _finished(tmp_path, tiny_model_dir)
    if unfinished:
        (tmp_path / "out" / "final" / "secreason_stage.json").unlink()
    data = tmp_path / "d.jsonl"
    data.write_text("{}\n")  # rewritten with the same rows: the same run
    assert (finished(recipe) is None) is unfinished
    assert prepare_output(recipe) == str(tmp_path / "out" / "checkpoint-4")
    data.write_text('{"messages": []}\n')  # a new data run into the same file
    with pytest.raises(StageError) as err:
        finished(recipe) if not unfinished else prepare_output(recipe)
    text = str(err.value)
    assert (
        "\n  dataset_path (contents): 'sha256:" in text
        and "(contents)" not in text.split("--set output_dir=")[1].split()[0]
    )


def test_a_run_stored_before_data_digests_still_resumes(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from secreason.train.stage import finished

    recipe = _finished(tmp_path, tiny_model_dir)
    (tmp_path / "out" / "secreason_data.json").unlink()
    (tmp_path / "d.jsonl").write_text('{"other": 1}\n')
    assert finished(recipe) is not None  # nothing to compare against: as before


def test_rl_on_a_retrained_sft_model_is_a_change(tiny_model_dir: Path, tmp_path: Path) -> None:
    from secreason.train.stage import StageError, fingerprint, mark_done, prepare_output

    sft = _stage_output(tmp_path, tiny_model_dir, done=True) / "final"
    (tmp_path / "rl.jsonl").write_text("{}\n")
    rl = _recipe("rl", sft, tmp_path / "rl.jsonl", tmp_path / "rl")
    prepare_output(rl)
    whole_checkpoint(tmp_path / "rl" / "checkpoint-2", 2)
    assert prepare_output(rl) == str(tmp_path / "rl" / "checkpoint-2")
    sft_recipe = SimpleNamespace(stage="sft", output_dir=str(sft.parent))
    mark_done(sft_recipe, fingerprint(rl), 2.0, steps=9)  # SFT trained again
    with pytest.raises(StageError, match="\n  model_name_or_path \\(contents\\): "):
        prepare_output(rl)


@pytest.mark.parametrize(
    ("override", "hint"),
    [
        ("task_options.cwe.x=1", "--set task_options='{cwe: ...}'"),
        ("model_init_kwargs.dtype=bfloat16", "--set model_init_kwargs='{dtype: ...}'"),
        ("nosuch.key=1", "unknown field 'nosuch.key'"),
    ],
)
def test_a_dotted_set_names_the_mapping_to_set(override: str, hint: str, tmp_path: Path) -> None:
    from secreason.train.config import RecipeError

    with pytest.raises(RecipeError) as err:
        _recipe("rl", tmp_path, tmp_path / "d.jsonl", tmp_path / "o", override)
    assert hint in str(err.value) and "command-line override" in str(err.value)


def test_an_empty_file_of_a_format_that_may_be_empty_is_not_a_tear(tmp_path: Path) -> None:
    folder = whole_checkpoint(tmp_path / "checkpoint-2", 2)
    (folder / "notes.txt").write_text("")
    assert folder_problem(folder, checkpoint=True) is None
    (folder / "tokenizer.model").write_text("")
    assert folder_problem(folder, checkpoint=True) == "tokenizer.model is empty (0 bytes)"


def test_a_rerun_before_any_checkpoint_says_it_starts_over(tmp_path: Path, capsys: Any) -> None:
    from secreason.train.stage import prepare_output

    recipe = _recipe("sft", tmp_path, tmp_path / "d.jsonl", tmp_path / "out")
    assert prepare_output(recipe) is None
    assert "starts from step 0" not in capsys.readouterr().err  # a first run: nothing to say
    assert prepare_output(recipe) is None  # killed before its first save, then rerun
    assert "no checkpoint saved yet; training starts from step 0" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["weights deleted", "weights cut", "config deleted"])
def test_a_finished_stage_whose_export_was_damaged_exports_again(
    damage: str, tiny_model_dir: Path, tmp_path: Path, capsys: Any
) -> None:
    from secreason.train.stage import finished, prepare_output

    recipe = _finished(tmp_path, tiny_model_dir)
    final = tmp_path / "out" / "final"
    if damage == "weights deleted":
        (final / "model.safetensors").unlink()
    elif damage == "weights cut":
        _cut(final / "model.safetensors")
    else:
        (final / "config.json").unlink()
        _cut(final / "model.safetensors")
    assert finished(recipe) is None
    assert "exporting it again from the newest checkpoint" in capsys.readouterr().err
    assert prepare_output(recipe) == str(tmp_path / "out" / "checkpoint-4")
    assert model_source_problem(str(final)) is not None  # and RL will not start from it


def test_a_file_system_without_locks_trains_with_a_warning(
    tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    import fcntl

    from secreason.train.checkpoints import output_lock

    def no_locks(fd: Any, op: int) -> None:
        raise OSError(37, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with output_lock(tmp_path / "out") as holder:
        assert holder is None
    assert "cannot lock (No locks available)" in capsys.readouterr().err


def test_a_saved_dataset_keeps_its_digest_when_datasets_caches_beside_it(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict, load_from_disk

    from secreason.train.data_record import digest

    folder = tmp_path / "ds"
    DatasetDict({"train": Dataset.from_list([{"a": i} for i in range(10)])}).save_to_disk(folder)
    before = digest(str(folder))
    load_from_disk(str(folder))["train"].map(lambda r: {"b": r["a"] * 2})  # tokenising does this
    assert list(folder.rglob("cache-*.arrow"))
    assert digest(str(folder)) == before
    DatasetDict({"train": Dataset.from_list([{"a": i} for i in range(11)])}).save_to_disk(
        tmp_path / "ds2"
    )
    assert digest(str(tmp_path / "ds2")) != before
