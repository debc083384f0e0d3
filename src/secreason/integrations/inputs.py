"""What trainers hand the reward, read once: text, flags, gold answers, labels, options.

verl, OpenRLHF and TRL each pass their own shapes, and a careless config passes worse:
bytes for text, ``"false"`` for a flag, a gold answer as a list (a parquet list column
arrives as a numpy array), a ``{"reference": ...}`` dict or a JSON label, NaN, a
negative penalty. Each helper either returns the value the scorer expects or raises
naming the argument (``where``), so a misconfigured run stops at its first batch
instead of training on a reward nobody meant. None of this reads a completion: that is
the reasoning contract's and the task layer's job alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from secreason.reasoning import FormatConfig


def check_penalty(value: Any, where: str = "format_penalty") -> float:
    """A format penalty as a float: finite and not negative (a negative one would pay
    completions for failing the format checks)."""
    try:
        penalty = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {value!r} is not a number") from None
    if not math.isfinite(penalty) or penalty < 0:
        raise ValueError(f"{where}: {value!r}; expected a finite number >= 0 (1.0 as recipes)")
    return penalty


def format_config(options: Any, where: str = "format") -> FormatConfig:
    """:class:`FormatConfig` from a dict of its fields, each of its field's type."""
    if not isinstance(options, Mapping):
        raise TypeError(f"{where}: expected a dict, got {options!r}")
    defaults = FormatConfig()
    for key, value in options.items():
        if not hasattr(defaults, key):
            known = ", ".join(FormatConfig.__dataclass_fields__)
            raise TypeError(f"{where}: unknown field {key!r}; fields: {known}")
        default = getattr(defaults, key)
        kinds: tuple[type, ...] = (int, float)  # a float field takes an int
        if isinstance(default, int):  # bool is an int: a bool field takes only a bool
            kinds = (bool,) if isinstance(default, bool) else (int,)
        if isinstance(value, bool) != isinstance(default, bool) or not isinstance(value, kinds):
            raise TypeError(f"{where}.{key}: {value!r} is not of type {type(default).__name__}")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise ValueError(f"{where}.{key}: {value!r} is negative")
    return FormatConfig(**dict(options))


def _kind(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def as_text(value: Any, where: str) -> str:
    """A completion as text: bytes are decoded as UTF-8; anything else is a TypeError."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    raise TypeError(f"{where}: expected text, got {_kind(value)}")


def as_flag(value: Any, where: str) -> bool:
    """A yes/no setting from a config or a dataset row ("false" is False, not True)."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalars
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _FLAGS:
        return _FLAGS[value.strip().lower()]
    raise ValueError(f"{where}: {value!r} is not true or false")


_FLAGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def reference_text(value: Any, where: str) -> str:
    """The gold answer as text from the shapes trainers store it in: text, a number, a
    list or array (joined with ", ") or a dict holding ``reference``/``ground_truth``."""
    if isinstance(value, Mapping):
        for key in ("reference", "ground_truth"):
            if key in value:
                return reference_text(value[key], f"{where}.{key}")
        keys = ", ".join(map(repr, list(value)[:5])) or "none"
        raise ValueError(f"{where}: a dict without 'reference' or 'ground_truth' (keys: {keys})")
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()  # numpy arrays and scalars
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected text, got bool")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: {'NaN' if value != value else value} is not a gold answer")
    if isinstance(value, (list, tuple)):
        text = ", ".join(reference_text(v, f"{where}[{i}]") for i, v in enumerate(value))
    elif isinstance(value, (bytes, bytearray)):
        text = bytes(value).decode("utf-8", errors="replace")
    elif isinstance(value, (str, int, float)):
        text = str(value)
    elif value is None:
        text = ""
    else:
        raise ValueError(f"{where}: expected text, got {_kind(value)}")
    if not text.strip():
        raise ValueError(f"{where}: empty (no gold answer)")
    return text


def unpack_label(value: Any, where: str) -> tuple[str | None, str]:
    """(task or None, reference) of a label: a ``{"task", "reference"}`` dict or JSON
    object string (what ``data export`` writes), else a bare reference."""
    obj: Any = value
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            obj = json.loads(value)
        except (json.JSONDecodeError, RecursionError) as err:
            detail = getattr(err, "msg", "nested too deeply")
            raise ValueError(f"{where}: not a JSON object ({detail})") from None
    if not isinstance(obj, Mapping):
        return None, reference_text(value, where)
    task = obj.get("task")
    if task is not None and not (isinstance(task, str) and task.strip()):
        raise ValueError(f"{where}: 'task' must be a task name, got {task!r}")
    if task is not None and "reference" not in obj and "ground_truth" not in obj:
        raise ValueError(f"{where}: needs non-empty 'task' and 'reference'")
    return task, reference_text(obj, where)
