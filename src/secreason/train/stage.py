"""What SFT and RL share as *stages*: data in, resume, done marker, export.

A stage writes Trainer checkpoints into ``output_dir`` as it goes; a killed run rerun
with the same command continues from the newest one (optimizer, scheduler, RNG and
data position included, all from transformers' own checkpoint format). When a stage
finishes it exports the model to ``output_dir/final`` and writes a marker there; a
rerun that finds the marker does nothing. The recipe is stored with the checkpoints:
a rerun that only raises ``max_steps`` / ``num_train_epochs`` continues the run, any
other change is refused with the changed fields (``continuation.py``). A checkpoint torn
by a kill is set aside for the one before it (``checkpoints.py``); Ctrl-C or SIGTERM
saves a checkpoint and stops (``interrupt.py``). An ``output_dir`` holding anything but
a stage's own files is refused, so a run never resumes, rotates or overwrites someone
else's checkpoints or model.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from secreason.train import continuation, data_record, progress
from secreason.train.checkpoints import (
    folder_problem,
    holds_every_step,
    last_checkpoint,
    model_source_problem,
    output_dir_problem,
    output_lock,
    saved_state,
    say,
    write_whole,
)
from secreason.train.config import (
    RecipeError,
    RecipeT,
    RLRecipe,
    SFTRecipe,
    load_recipe,
    recipe_fields,
    recipe_to_yaml,
)

DONE_MARKER = "secreason_stage.json"
RECIPE_FILE = continuation.RECIPE_FILE
FINAL_DIR = "final"
_COSMETIC = continuation.COSMETIC


class StageError(RuntimeError):
    """A stage cannot run as asked (bad data, a conflicting earlier run)."""


def _plan(recipe: SFTRecipe | RLRecipe) -> continuation.Plan:
    try:
        return continuation.plan(recipe)
    except ValueError as err:  # the stored recipe is damaged
        raise StageError(str(err)) from None


def fingerprint(recipe: SFTRecipe | RLRecipe) -> str:
    values = {
        name: getattr(recipe, name) for name in recipe_fields(type(recipe)) if name not in _COSMETIC
    }
    blob = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def final_dir(recipe: SFTRecipe | RLRecipe) -> Path:
    return Path(str(recipe.output_dir)) / FINAL_DIR


def read_marker(recipe: SFTRecipe | RLRecipe) -> dict[str, Any] | None:
    """The done marker's contents; a torn or unreadable one counts as not done."""
    marker = final_dir(recipe) / DONE_MARKER
    if not marker.is_file():
        return None
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = None
    if not isinstance(info, dict):
        say(f"{marker}: damaged (killed while writing it?); finishing the stage again")
        return None
    return info


def finished(recipe: SFTRecipe | RLRecipe) -> dict[str, Any] | None:
    """The done marker of this recipe's output, if the stage already finished."""
    marker = final_dir(recipe) / DONE_MARKER
    info = read_marker(recipe)
    if info is None:
        return None
    damage = folder_problem(final_dir(recipe), checkpoint=False)
    if damage:
        say(f"{final_dir(recipe)}: {damage}; exporting it again from the newest checkpoint")
        return None
    plan = _plan(recipe)
    contents = [c for c in plan.changes if c.name.endswith(data_record.SUFFIX)]
    if info.get("fingerprint") == fingerprint(recipe) and not contents:
        return info
    if not plan.stored:
        raise StageError(
            f"{marker}: {recipe.output_dir} holds a finished run of a different recipe "
            "(its recipe file is missing, so the fields cannot be compared). "
            "Fix: choose another output_dir, or delete that folder to retrain."
        )
    if plan.same:  # only fields an older secreason did not store differ
        return info
    if plan.extends:
        return None  # prepare_output continues it
    raise StageError(continuation.refusal(recipe, plan.changes, finished=True))


def prepare_output(recipe: SFTRecipe | RLRecipe) -> str | None:
    """Create output_dir, record the recipe, and return the checkpoint to resume from."""
    out = Path(str(recipe.output_dir))
    problem = output_dir_problem(out)
    if problem:
        raise StageError(problem)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / RECIPE_FILE
    rerun = saved.is_file() and not any(out.glob("checkpoint-*"))
    resume = last_checkpoint(out)
    current = fingerprint(recipe)
    plan = _plan(recipe)
    marker = final_dir(recipe) / DONE_MARKER
    if plan.extends and (resume or marker.is_file()):
        if not resume:
            raise StageError(
                f"{out}: the finished run has no checkpoint left to continue from "
                f"({', '.join(map(str, plan.changes))}). Fix: delete {out} to retrain."
            )
        print(f"[secreason] continuing from {resume}: {', '.join(map(str, plan.changes))}")
        marker.unlink(missing_ok=True)  # done again only when the longer run ends
    elif resume and not plan.same:
        raise StageError(continuation.refusal(recipe, plan.changes, finished=False))
    elif rerun and not resume:
        say(f"{out}: no checkpoint saved yet; training starts from step 0")
    write_whole(saved, f"# fingerprint: {current}\n" + recipe_to_yaml(recipe))
    data_record.save(recipe)
    return resume


def mark_done(recipe: SFTRecipe | RLRecipe, stamp: str, seconds: float, **extra: Any) -> None:
    """Write the done marker; ``stamp`` is the fingerprint taken before training began
    (building a trainer fills in derived fields such as reward weights)."""
    info = {
        "stage": recipe.stage,
        "fingerprint": stamp,
        "seconds": round(seconds, 2),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }
    write_whole(final_dir(recipe) / DONE_MARKER, json.dumps(info, indent=2) + "\n")


def load_rows(path: str | Path, limit: int | None = None) -> Any:
    """A training set from a ``save_to_disk`` folder (its ``train`` split) or a JSONL file."""
    from datasets import Dataset, DatasetDict, load_from_disk

    p = Path(path)
    if not str(path):
        raise StageError("dataset_path is empty: set it in the recipe or as dataset_path=...")
    if p.is_dir():
        data = load_from_disk(str(p))
        if isinstance(data, DatasetDict):
            if "train" not in data:
                raise StageError(f"{p}: a DatasetDict without a 'train' split ({list(data)})")
            data = data["train"]
    elif p.is_file() and p.suffix in (".jsonl", ".json"):
        rows = []
        for number, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise StageError(f"{p}:{number}: not a JSON object ({err.msg})") from None
        data = Dataset.from_list(rows)
    else:
        raise StageError(f"{p}: no such dataset (a save_to_disk folder or a .jsonl file)")
    if limit is not None:
        data = data.select(range(min(limit, len(data))))
    if len(data) == 0:
        raise StageError(f"{p}: the dataset is empty")
    return data


def require_columns(data: Any, columns: Iterable[str], path: str) -> None:
    missing = [c for c in columns if c not in data.column_names]
    if missing:
        raise StageError(
            f"{path}: missing column(s) {missing}; it has {data.column_names}. "
            "SFT needs 'messages' (chat turns ending with the assistant's reasoning and answer); "
            "RL needs 'prompt' (chat turns), 'task' and 'reference'."
        )


def lora_config(recipe: SFTRecipe | RLRecipe) -> Any:
    if not recipe.use_peft:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=recipe.lora_r,
        lora_alpha=recipe.lora_alpha,
        lora_dropout=recipe.lora_dropout,
        target_modules=recipe.lora_target_modules or "all-linear",
        task_type="CAUSAL_LM",
    )


def export(trainer: Any, recipe: SFTRecipe | RLRecipe) -> Path:
    """Save the trained model and tokenizer as a plain model folder (LoRA merged)."""
    out = final_dir(recipe)
    model = trainer.model
    if recipe.use_peft and recipe.merge_lora_on_save and hasattr(model, "merge_and_unload"):
        if trainer.accelerator.is_main_process:
            merged = trainer.accelerator.unwrap_model(model).merge_and_unload()
            merged.save_pretrained(out)
            trainer.processing_class.save_pretrained(out)
    else:
        trainer.save_model(str(out))
    if trainer.accelerator.is_main_process:
        # save_model writes the tokenizer too, but not the generation config of a PEFT run.
        base = trainer.accelerator.unwrap_model(model)
        generation = getattr(base, "generation_config", None)
        if generation is not None:
            generation.save_pretrained(out)
    return out


def train_with_resume(trainer: Any, resume: str | None) -> None:
    """Train from ``resume``; Ctrl-C or SIGTERM saves a checkpoint and raises
    :class:`~secreason.train.interrupt.StageInterrupted`."""
    from secreason.train.interrupt import StopOnSignal, check_finished, stop_on_signals

    if resume and holds_every_step(resume, trainer.args):
        # Killed after the last checkpoint, before the export: transformers would train
        # one step past the end on resuming from it, so its weights are exported as they are.
        print(f"[secreason] {resume} holds the whole run; exporting it")
        trainer._load_from_checkpoint(resume)
        trainer.state.global_step = saved_state(resume)["global_step"]
        return
    if resume:
        print(f"[secreason] resuming from {resume}")
    stopper = StopOnSignal()
    trainer.add_callback(stopper)
    with stop_on_signals(stopper):
        trainer.train(resume_from_checkpoint=resume)
    check_finished(stopper, trainer, str(trainer.args.output_dir))


def check_model_source(recipe: SFTRecipe | RLRecipe) -> None:
    """Refuse a starting model that is another stage's unfinished or torn output."""
    problem = model_source_problem(str(recipe.model_name_or_path))
    if problem:
        raise StageError(problem)


def run_stage(name: str, recipe: SFTRecipe | RLRecipe, build_trainer: Callable[[], Any]) -> Path:
    """Train (or resume, or skip when finished) and return the exported model folder."""
    if finished(recipe) is not None:
        print(f"[secreason] {name} already finished in {final_dir(recipe)}; nothing to do")
        return final_dir(recipe)
    start = time.perf_counter()
    stamp = fingerprint(recipe)
    check_model_source(recipe)
    problem = output_dir_problem(Path(str(recipe.output_dir)))
    if problem:
        raise StageError(problem)
    with output_lock(Path(str(recipe.output_dir))) as holder:
        if holder is not None:
            raise StageError(
                f"output_dir {recipe.output_dir}: another process ({holder}) is training "
                "into it; wait for it to end, or stop it (its rerun resumes)"
            )
        resume = prepare_output(recipe)
        trainer = build_trainer()
        progress.install(trainer)
        train_with_resume(trainer, resume)
        out = export(trainer, recipe)
        mark_done(recipe, stamp, time.perf_counter() - start, steps=trainer.state.global_step)
    return out


def stage_main(
    module: str,
    recipe_type: type[RecipeT],
    run: Callable[[RecipeT], Path],
    argv: Sequence[str],
) -> None:
    """``python -m MODULE RECIPE.yaml [key=value ...]``: the entry point accelerate launches."""
    from secreason.configfile import recipe_help

    args = [a for a in argv if a != "--set"]  # --set key=value and key=value are one grammar
    usage = f"usage: python -m {module} RECIPE.yaml [--set key=value ...]"
    if not args or args[0] in ("-h", "--help"):
        print(recipe_help(usage, recipe_type))
        raise SystemExit(0 if args else 2)
    from secreason.cli._errors import debug_enabled, explain
    from secreason.train.interrupt import StageInterrupted

    try:
        run(load_recipe(args[0], recipe_type, args[1:]))
    except (RecipeError, StageError) as err:
        raise SystemExit(f"error: {err}") from None
    except StageInterrupted as stop:
        print(f"interrupted: {stop}", file=sys.stderr)
        raise SystemExit(stop.exit_code) from None
    except Exception as error:  # the same one-line errors as the secreason command
        if debug_enabled():
            raise
        message, code = explain(error)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(code) from None
