"""Data recipes: one YAML file, read into typed dataclasses, with ``key=value`` overrides.

A typo in a recipe must fail before hours of teacher calls, naming the file and the
field (and the closest known field), not be silently ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from secreason.data.audit import AuditConfig
from secreason.data.decontaminate import DecontamConfig
from secreason.data.dedup import DedupConfig
from secreason.data.lengths import LengthConfig
from secreason.data.mix import MixConfig
from secreason.data.synthesize import SynthesisConfig
from secreason.data.teacher import TeacherConfig


class DataRecipeError(ValueError):
    """A recipe that cannot be used; the message says where and why."""


@dataclass
class DemoSource:
    """The small demo world (see :mod:`secreason.data.demo`)."""

    n_per_task: int = 400
    tasks: list[str] = field(default_factory=lambda: ["cwe", "cvss", "ate", "mcq"])
    teacher_share: float = 0.5
    heldout_fraction: float = 0.2


@dataclass
class GeneralSource:
    """A general-domain Hugging Face dataset (see :mod:`secreason.data.general`)."""

    path: str = ""
    name: str | None = None
    split: str = "train"
    domain: str = "chat"
    prompt_field: str = "prompt"
    answer_field: str | None = None
    limit: int | None = None


@dataclass
class TeacherStep(TeacherConfig):
    kind: str = "template"  # or "endpoint"


@dataclass
class DecontamStep(DecontamConfig):
    benchmarks: str | None = "../shared/benchmarks"
    #: fail when the benchmark folder is missing (else the card says it was skipped)
    required: bool = False
    #: n-grams of the knowledge bases' own names and definitions do not count as overlap
    ignore_kb_text: bool = True
    #: read benchmarks with the evaluation harness's loaders instead of every file
    harness_loaders: bool = False


@dataclass
class DedupStep(DedupConfig):
    #: what is compared: the item's own content (no task template), the prompt, or both turns
    compare: str = "content"


@dataclass
class DataRecipe:
    name: str = "data"
    out_dir: str = "runs/data"
    seed: int = 0
    source: str = "kb"  # "kb" or "demo"
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)
    demo: DemoSource = field(default_factory=DemoSource)
    general: list[GeneralSource] = field(default_factory=list)
    teacher: TeacherStep = field(default_factory=TeacherStep)
    dedup: DedupStep = field(default_factory=DedupStep)
    decontaminate: DecontamStep = field(default_factory=DecontamStep)
    mix: MixConfig = field(default_factory=MixConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    lengths: LengthConfig = field(default_factory=LengthConfig)


T = TypeVar("T")


def _strip_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def build(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from a mapping, refusing unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise DataRecipeError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), sorted(names), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise DataRecipeError(f"{where}: unknown field {key!r}{hint}")
        ann = _strip_optional(hints[key])
        if value is None:
            kwargs[key] = None
        elif dataclasses.is_dataclass(ann):
            kwargs[key] = build(ann, value, f"{where}.{key}")  # type: ignore[arg-type]
        elif typing.get_origin(ann) is list:
            (inner,) = typing.get_args(ann) or (Any,)
            if not isinstance(value, list):
                raise DataRecipeError(f"{where}.{key}: expected a list, got {value!r}")
            if dataclasses.is_dataclass(inner):
                kwargs[key] = [build(inner, v, f"{where}.{key}[{i}]") for i, v in enumerate(value)]  # type: ignore[arg-type]  # noqa: E501
            else:
                kwargs[key] = list(value)
        elif ann is float and isinstance(value, int) and not isinstance(value, bool):
            kwargs[key] = float(value)
        elif ann in (int, float, str, bool) and not isinstance(value, ann):
            raise DataRecipeError(
                f"{where}.{key}: expected {ann.__name__}, got {value!r} ({type(value).__name__})"
            )
        else:
            kwargs[key] = value
    return cls(**kwargs)


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise DataRecipeError(f"override {dotted!r}: {part!r} is not a section")
    node[parts[-1]] = value


def load_data_recipe(path: str | Path | None, overrides: Sequence[str] = ()) -> DataRecipe:
    """Read a recipe file (or the defaults) and apply ``a.b=value`` overrides."""
    from secreason.configfile import ConfigFileError, line_of, parse_set, read_yaml

    data: dict[str, Any] = {}
    where = "recipe"
    tree = None
    if path is not None:
        p = Path(path)
        where = str(p)
        try:
            data, tree = read_yaml(p)  # one reader for every YAML file (secreason.configfile)
        except ConfigFileError as err:
            raise DataRecipeError(str(err)) from None
    for item in overrides:
        if "=" not in item:
            raise DataRecipeError(f"override {item!r} must look like section.field=value")
        try:
            key, value = parse_set(item)  # the one --set grammar (secreason.configfile)
        except ConfigFileError as err:
            raise DataRecipeError(str(err)) from None
        _set_dotted(data, key, value)
    try:
        return build(DataRecipe, data, where)
    except DataRecipeError as err:
        # Point at the line: "FILE:LINE: section.field: what is wrong".
        head, _, tail = str(err)[len(where) :].partition(": ")
        dotted = head.lstrip(".")
        unknown = tail.split("'")[1] if tail.startswith("unknown field '") else ""
        line = line_of(tree, ".".join(filter(None, [dotted, unknown])))
        if not str(err).startswith(where) or line is None:
            raise
        raise DataRecipeError(
            f"{where}:{line}: " + (f"{dotted}: " if dotted else "") + tail
        ) from None
