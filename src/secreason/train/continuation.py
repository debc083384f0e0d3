"""Which runs may share an ``output_dir``: resume, continue longer, or refuse with a diff.

A stage stores its recipe beside its checkpoints. Rerunning it compares the recipe
field by field with the stored one:

* nothing that matters changed: resume from the newest checkpoint (or do nothing when
  the stage finished);
* only ``max_steps`` / ``num_train_epochs`` grew: continue the run from its newest
  checkpoint, finished or not (transformers restores optimizer, scheduler step, RNG and
  data position; the learning-rate schedule is recomputed for the new length);
* anything else: refuse, listing each changed field, because checkpoints of one recipe
  resumed under another would make a model no recipe describes.

Fields that change only logging or saving (``COSMETIC``) never block anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from secreason.train.config import recipe_to_yaml

RECIPE_FILE = "secreason_recipe.yaml"

# Fields that change how a run reports, saves or computes, not what it trains.
COSMETIC = frozenset(
    {
        "output_dir",
        "logging_dir",
        "logging_steps",
        "logging_first_step",
        "report_to",
        "run_name",
        "disable_tqdm",
        "log_completions",
        "num_completions_to_print",
        "save_total_limit",
        "save_steps",
        "dataloader_num_workers",
        "truncation",
        # How the backward gets its activations (kept or recomputed), not what it
        # computes: a run may resume with checkpointing switched, e.g. after an OOM.
        "activation_checkpointing",
        "activation_checkpointing_kwargs",
        "gradient_checkpointing",
        "gradient_checkpointing_kwargs",
    }
)
# Fields a run may grow by to be continued.
EXTENDABLE = ("max_steps", "num_train_epochs")


@dataclass(frozen=True)
class Change:
    """One field whose value differs between the stored and the current recipe."""

    name: str
    before: Any
    after: Any

    @property
    def extends(self) -> bool:
        """True when the change only makes the run longer."""
        if self.name not in EXTENDABLE:
            return False
        numbers = all(
            isinstance(v, (int, float)) and not isinstance(v, bool)
            for v in (self.before, self.after)
        )
        # max_steps = -1 means "use num_train_epochs": going from it is not "longer".
        return numbers and self.before > 0 and self.after > self.before

    def __str__(self) -> str:
        return f"{self.name}: {self.before!r} -> {self.after!r}"


@dataclass
class Plan:
    """What a stage does with its ``output_dir``."""

    changes: list[Change] = field(default_factory=list)
    stored: bool = False  # a recipe was stored there

    @property
    def same(self) -> bool:
        return not self.changes

    @property
    def extends(self) -> bool:
        return bool(self.changes) and all(c.extends for c in self.changes)


def recipe_values(recipe: Any) -> dict[str, Any]:
    """The recipe's training fields as plain YAML values (what is stored and compared)."""
    values: dict[str, Any] = yaml.safe_load(recipe_to_yaml(recipe)) or {}
    return {k: v for k, v in values.items() if k not in COSMETIC}


def stored_values(output_dir: str | Path) -> dict[str, Any] | None:
    """The recipe stored in ``output_dir`` (None when there is none)."""
    path = Path(output_dir) / RECIPE_FILE
    if not path.is_file():
        return None
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{path}: damaged ({type(err).__name__}); the run's recipe cannot be "
            f"compared. Fix: delete {path.parent} to retrain"
        ) from None
    if not isinstance(values, dict):
        return None
    return {k: v for k, v in values.items() if k not in COSMETIC}


# Fields naming a file or folder: ``runs/x``, ``./runs/x`` and its absolute path are one.
PATHS = frozenset({"model_name_or_path", "dataset_path", "eval_dataset_path", "chat_template_path"})


def _normal(value: Any, name: str = "") -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    if name in PATHS and isinstance(value, str) and value:
        local = Path(value).expanduser()
        return str(local.resolve()) if local.exists() else value  # else a hub id
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return float(value)  # 3 and 3.0 are the same learning rate


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    """Field-by-field changes; a field the stored recipe lacks (an older secreason) is
    not a change."""
    return [
        Change(name, before[name], after[name])
        for name in sorted(after)
        if name in before and _normal(before[name], name) != _normal(after[name], name)
    ]


def plan(recipe: Any) -> Plan:
    """Compare the recipe with the one stored in its ``output_dir``."""
    from secreason.train import data_record

    stored = stored_values(str(recipe.output_dir))
    if stored is None:
        return Plan()
    changes = compare(stored, recipe_values(recipe))
    before = data_record.stored(str(recipe.output_dir))
    if before:  # the data's contents, when the path is the same (a new path is a change)
        named = {c.name + data_record.SUFFIX for c in changes}
        changes += [
            Change(name, before[name], value)
            for name, value in sorted(data_record.current(recipe).items())
            if name in before and before[name] != value and name not in named
        ]
    return Plan(changes, stored=True)


def suggest_output_dir(output_dir: str, changes: list[Change]) -> str:
    """A new ``output_dir`` named after the changes (``runs/demo/rl-format_penalty0``)."""
    parts = []
    for change in changes[:2]:
        after = change.after
        text = f"{after:g}" if isinstance(after, float) else str(after)
        value = re.sub(r"[^A-Za-z0-9.]+", "", text)
        name = re.sub(r"[^A-Za-z0-9_]+", "", change.name)
        parts.append(f"{name}{value}"[:40])
    return f"{output_dir.rstrip('/')}-{'-'.join(parts)}"


def refusal(recipe: Any, changes: list[Change], finished: bool) -> str:
    """The message for a recipe change that cannot continue the run in ``output_dir``."""
    out = str(recipe.output_dir)
    what = "a finished run" if finished else "checkpoints"
    lines = [f"{out} holds {what} of a different recipe; changed fields:"]
    lines += [f"  {c}" for c in changes]
    lines.append(
        f"Only {' / '.join(EXTENDABLE)} may grow to continue a run. Fix: train into a new "
        f"folder (--set output_dir={suggest_output_dir(out, changes)}), or delete {out} to "
        "retrain."
    )
    return "\n".join(lines)
