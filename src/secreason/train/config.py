"""Training recipes: YAML files read into TRL's own config dataclasses.

A recipe is one flat YAML mapping. Its keys are the fields of TRL's ``SFTConfig`` or
``GRPOConfig`` (so every TRL and ``transformers.TrainingArguments`` option works and
keeps its documented meaning) plus this project's fields (model, data, LoRA, format
penalty), declared below as mixins. ``key=value`` overrides from the command line are
parsed as YAML scalars and win over the file.

Mistakes fail before any model loads, naming the file, line and field, with the
closest known field name when the key looks like a typo: a misspelt ``learnig_rate``
must not silently train with the default for hours on a GPU.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import yaml
from trl import GRPOConfig, SFTConfig

from secreason.reasoning import FormatConfig


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the file, line and field."""


@dataclass
class ModelDataFields:
    """Fields both stages share: what to train, on what, and with which adapter."""

    model_name_or_path: str = field(
        default="", metadata={"help": "Model folder or hub id to start from (required)."}
    )
    dataset_path: str = field(
        default="",
        metadata={"help": "Training data: a `datasets.save_to_disk` folder or a .jsonl file."},
    )
    eval_dataset_path: str | None = field(default=None, metadata={"help": "Optional eval data."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N training rows (smoke runs)."}
    )
    use_peft: bool = field(default=False, metadata={"help": "Train a LoRA adapter (peft)."})
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list[str] | None = field(
        default=None, metadata={"help": "Module names for LoRA; None means all linear layers."}
    )
    merge_lora_on_save: bool = field(
        default=True, metadata={"help": "Export merged full weights when LoRA is used."}
    )
    truncation: str = field(
        default="refuse",
        metadata={
            "help": "Rows longer than max_length (SFT) or prompts that leave no room for "
            "max_completion_length (RL): `refuse` stops before training, `allow` trains anyway."
        },
    )


def _checkpointing_default(recipe: Any) -> None:
    """TRL's configs default the deprecated ``gradient_checkpointing`` to True; carry that
    (or the recipe's value) to ``activation_checkpointing`` so loading does not warn.
    ``auto`` stays as it is until the stage starts (``train.memory_plan``)."""
    if recipe.activation_checkpointing is None:
        recipe.activation_checkpointing = recipe.gradient_checkpointing
    value = recipe.activation_checkpointing
    if isinstance(value, str) and value != "auto":
        raise ValueError(f"activation_checkpointing must be true, false or auto, got {value!r}")


_CHECKPOINTING_HELP = (
    "Recompute activations in the backward pass; `auto` decides when the stage starts from "
    "an estimate of this GPU's memory (off when it fits, README 'GPU speed')."
)


@dataclass
class SFTRecipe(SFTConfig, ModelDataFields):
    """``secreason sft``: TRL's SFTConfig plus the shared fields."""

    stage: str = "sft"
    activation_checkpointing: bool | str | None = field(  # type: ignore[assignment]
        default=None, metadata={"help": _CHECKPOINTING_HELP}
    )

    def __post_init__(self) -> None:
        _checkpointing_default(self)
        super().__post_init__()


# The loss aggregations TRL 1.16's GRPOTrainer implements.
GRPO_LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")


@dataclass
class RLRecipe(GRPOConfig, ModelDataFields):
    """``secreason rl``: TRL's GRPOConfig plus rewards and the format penalty.

    The format penalty is a reward of ``-format_penalty`` for a completion that fails
    the reasoning contract's format checks (0 otherwise). ``format_penalty: 0`` is the
    ablation: the checks still run and are logged, they just stop shaping the reward.
    """

    stage: str = "rl"
    activation_checkpointing: bool | str | None = field(  # type: ignore[assignment]
        default=None, metadata={"help": _CHECKPOINTING_HELP}
    )
    format_penalty: float = field(
        default=1.0, metadata={"help": "Reward subtracted when the format checks fail."}
    )
    format_require_tags: bool = True
    format_require_single_block: bool = True
    format_min_reasoning_words: int = 5
    format_max_repeat_ratio: float = 0.5
    format_repeat_ngram: int = 3
    format_require_answer: bool = True
    reward_tasks: list[str] | None = field(
        default=None,
        metadata={"help": "Tasks that have a reward; None means every registered task."},
    )
    task_options: dict[str, dict[str, Any]] = field(
        default_factory=dict,
        metadata={"help": "Constructor options per task name, e.g. {cwe: {partial_credit: true}}."},
    )
    prefilled: bool | None = field(
        default=None,
        metadata={
            "help": "Whether prompts end inside the reasoning (`<think>\\n`); None detects it "
            "from the chat template."
        },
    )
    metrics_file: str = field(
        default="rl_metrics.jsonl",
        metadata={"help": "Per-step, per-task metrics (JSONL) inside output_dir."},
    )

    def __post_init__(self) -> None:
        _checkpointing_default(self)
        super().__post_init__()
        # TRL only rejects an unknown loss_type inside the first training step.
        if self.loss_type not in GRPO_LOSS_TYPES:
            raise ValueError(
                f"loss_type {self.loss_type!r} is not one of {', '.join(GRPO_LOSS_TYPES)}"
            )
        if self.format_penalty < 0:
            raise ValueError("format_penalty must be >= 0 (it is subtracted on a format failure)")

    def format_config(self) -> FormatConfig:
        return FormatConfig(
            require_tags=self.format_require_tags,
            require_single_block=self.format_require_single_block,
            min_reasoning_words=self.format_min_reasoning_words,
            max_repeat_ratio=self.format_max_repeat_ratio,
            repeat_ngram=self.format_repeat_ngram,
            require_answer=self.format_require_answer,
        )


RecipeT = TypeVar("RecipeT", SFTRecipe, RLRecipe)

_SCALARS = (bool, int, float, str)


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` -> (key, value), the value read as a YAML scalar (``3e-4``, ``true``)."""
    from secreason.configfile import ConfigFileError, parse_set

    try:
        key, value = parse_set(text)  # the one --set grammar (secreason.configfile)
    except ConfigFileError as err:
        raise RecipeError(str(err)) from None
    return key.replace("-", "_"), value


def _matches(value: Any, annotation: Any) -> bool:
    """A lenient type check: catches a string where a number goes, a list for a bool."""
    if annotation is Any or annotation is None:
        return True
    if annotation is type(None):
        return value is None
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if origin in (list, tuple, Sequence):
        return isinstance(value, (list, tuple))
    if origin is dict:
        return isinstance(value, dict)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return isinstance(value, (str, annotation))
    if isinstance(annotation, type) and annotation in (list, dict):
        return isinstance(value, annotation)
    return True


def _coerce(value: Any, annotation: Any) -> Any:
    """PyYAML reads ``3e-4`` as a string (YAML 1.1); read it as the number it is meant as."""
    wants_float = annotation is float or (
        typing.get_origin(annotation) in (typing.Union, types.UnionType)
        and float in typing.get_args(annotation)
    )
    if wants_float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if wants_float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, bool) and not _matches(value, annotation) and _matches("no", annotation):
        # YAML 1.1 reads `save_strategy: no` as False; the field wants the string.
        return "yes" if value else "no"
    return value


_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _described(annotation: Any) -> str:
    """A field's type in words (``an integer``), not Python's ``<class 'int'>``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        parts = [a for a in typing.get_args(annotation) if a is not type(None)]
        words = " or ".join(_described(a) for a in parts)
        return f"{words} (or null)" if len(parts) < len(typing.get_args(annotation)) else words
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (list, tuple, Sequence) or annotation in (list, tuple):
        return "a list"
    if origin is dict or annotation is dict:
        return "a mapping"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "one of " + ", ".join(repr(m.value) for m in annotation)
    if annotation in _WORDS:
        return _WORDS[annotation]
    return getattr(annotation, "__name__", str(annotation))


def recipe_fields(cls: type) -> dict[str, Any]:
    """The settable fields of a recipe class and their resolved annotations."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}


def build_recipe(
    cls: type[RecipeT],
    data: dict[str, Any],
    *,
    source: str = "<recipe>",
    lines: dict[str, int | str] | None = None,
) -> RecipeT:
    """Validate a mapping against ``cls`` and construct it; errors name source and field."""
    lines = lines or {}
    known = recipe_fields(cls)

    def where(key: str) -> str:
        line = lines.get(key)
        if isinstance(line, int):
            return f"{source}:{line}"
        return f"{source} (command-line override)" if line == "override" else source

    data = {k: _coerce(v, known.get(k)) for k, v in data.items()}
    for key, value in data.items():
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            head, _, rest = key.partition(".")
            if rest and head in known:  # dotted keys do not reach into a mapping
                hint = f"; set the whole mapping: --set {head}='{{{rest.split('.')[0]}: ...}}'"
            raise RecipeError(f"{where(key)}: unknown field {key!r} for {cls.__name__}{hint}")
        if not _matches(value, known[key]):
            raise RecipeError(
                f"{where(key)}: {key}: expected {_described(known[key])}, got {value!r}"
            )
    if not data.get("model_name_or_path"):
        raise RecipeError(f"{source}: field 'model_name_or_path' is required")
    try:
        return cls(**data)
    except (TypeError, ValueError) as err:
        raise RecipeError(f"{source}: invalid {cls.__name__}: {err}") from err


def load_recipe(
    path: str | Path, cls: type[RecipeT], overrides: Sequence[str] = (), **values: Any
) -> RecipeT:
    """Read a YAML recipe into ``cls``; ``overrides`` (``key=value``) and ``values`` win."""
    from secreason.configfile import ConfigFileError, line_of, read_yaml

    path = Path(path)
    try:
        data, tree = read_yaml(path)  # one reader for every YAML file (secreason.configfile)
    except ConfigFileError as err:
        raise RecipeError(str(err)) from None
    lines: dict[str, int | str] = {k: line_of(tree, str(k)) or 0 for k in data}
    for item in overrides:
        key, value = parse_override(item)
        data[key] = value
        lines[key] = "override"
    data.update(values)
    template = data.get("chat_template_path")
    if isinstance(template, str) and not Path(template).is_absolute():
        # A template shipped beside the recipe is found wherever the command runs from.
        beside = path.parent / template
        if beside.is_file() and not Path(template).is_file():
            data["chat_template_path"] = str(beside)
    return build_recipe(cls, data, source=str(path), lines=lines)


def recipe_to_yaml(recipe: SFTRecipe | RLRecipe) -> str:
    """Every settable field as YAML, saved beside the outputs so a run can be repeated."""
    out: dict[str, Any] = {}
    for name in recipe_fields(type(recipe)):
        value = getattr(recipe, name)
        if isinstance(value, Enum):
            value = value.value
        if isinstance(value, (tuple, set)):
            value = list(value)
        if value is None or isinstance(value, (*_SCALARS, list, dict)):
            out[name] = value
    return yaml.safe_dump(out, sort_keys=True)
