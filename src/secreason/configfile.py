"""One reader for the YAML files users write, and one grammar for overriding them.

Training recipes, data recipes and deployment files are all a YAML mapping plus
``--set key=value`` overrides on the command line (dotted keys reach into sections).
Reading the file and parsing an override happen here, once, so that every command
fails the same way on the same mistake: one line naming ``FILE:LINE:COLUMN`` and what
is wrong (missing file, not UTF-8, broken YAML, not a mapping). Each recipe type then
builds its own dataclass from the mapping and uses :func:`line_of` to point at the
line of a bad field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class ConfigFileError(ValueError):
    """A configuration file or override that cannot be read; the message names where."""


def read_yaml(path: str | Path) -> tuple[dict[str, Any], yaml.Node | None]:
    """The mapping in ``path`` and its composed tree (for line numbers)."""
    from secreason.evals.sources import utf8_problem

    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "file not found"
        raise ConfigFileError(f"{path}: {what}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigFileError(utf8_problem(path)) from None
    try:
        tree = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigFileError(f"{where}: not valid YAML: {problem}") from None
    if data is None:
        return {}, None
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path}: must be a YAML mapping (expected a mapping of key: value)")
    return data, tree


def line_of(tree: yaml.Node | None, dotted: str) -> int | None:
    """Line (1-based) of a dotted key (``limits.max_tokens``) in a composed tree."""
    node = tree
    line = None
    for part in (p.split("[")[0] for p in dotted.split(".")):
        if not isinstance(node, yaml.MappingNode):
            break
        for key_node, value_node in node.value:
            if key_node.value == part:
                line, node = key_node.start_mark.line + 1, value_node
                break
        else:
            break
    return line


def parse_set(item: str) -> tuple[str, Any]:
    """``--set key=value`` -> (key, value), the value read as YAML (``3e-4``, ``true``,
    ``[a, b]``); an empty value is the empty string."""
    key, sep, raw = item.partition("=")
    key = key.strip().lstrip("-")
    if not sep or not key:
        raise ConfigFileError(f"--set {item!r}: expected key=value, e.g. learning_rate=3e-4")
    if _EXPONENT.fullmatch(raw.strip()):
        return key, float(raw)  # 3e-4: a float in YAML 1.2, a string to PyYAML's 1.1
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        raise ConfigFileError(f"--set {item!r}: the value is not valid YAML") from None
    return key, value


def recipe_help(usage: str, cls: type) -> str:
    """``--help`` text of a recipe dataclass: its own fields with defaults, then the base
    class it extends (e.g. TRL's SFTConfig), whose fields are accepted too."""
    import dataclasses

    bases = [b for b in cls.__mro__[1:] if dataclasses.is_dataclass(b)]
    inherited = {f.name for f in dataclasses.fields(bases[0])} if bases else set()
    # A base field the recipe declares again (other default or values) is its own.
    inherited -= set(vars(cls).get("__annotations__", {}))
    lines = [usage, "", (cls.__doc__ or cls.__name__).strip().splitlines()[0], ""]
    lines.append(f"{cls.__name__} fields (recipe keys, or --set key=value):")
    for item in dataclasses.fields(cls):
        if item.name in inherited or not item.init:
            continue
        if item.default is not dataclasses.MISSING:
            default = repr(item.default)
        elif item.default_factory is not dataclasses.MISSING:
            default = repr(item.default_factory())
        else:
            default = "required"
        note = item.metadata.get("help")
        lines.append(f"  {item.name} (default: {default})" + (f": {note}" if note else ""))
    if bases:
        lines.append(
            f"plus every field of {bases[0].__module__.split('.')[0]}'s {bases[0].__name__} "
            f"(e.g. learning_rate, max_steps, output_dir): see its documentation"
        )
    return "\n".join(lines)
