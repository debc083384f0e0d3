"""``secreason eval`` words to objects: benchmark names, ``--set`` options, ``--data``.

Why a module of its own: these three readers turn what a user typed into benchmark
objects and data sources before anything is loaded, and each has its own small
grammar (a name, a suite, or a ``module:Attr`` / ``file.py:Attr`` plugin; ``KEY=VALUE``
with JSON values; one source for all or ``NAME=SOURCE`` pairs). Every mistake ends in
one ``error:`` line naming what was typed (``cli._errors``).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path
from typing import Any

from secreason.cli._errors import fail as _fail


def load_plugin(spec: str) -> Any:
    """``module:Attr`` or ``path/to/file.py:Attr`` -> a Benchmark (class or instance)."""
    target, _, attr = spec.rpartition(":")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            _fail(f"{spec}: no such file {path}")
        module_spec = importlib.util.spec_from_file_location(f"secreason_plugin_{path.stem}", path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as error:
            _fail(f"{spec}: cannot import {target} ({error}); is it on PYTHONPATH?")
    try:
        obj = getattr(module, attr)
    except AttributeError:
        _fail(f"{spec}: {target} defines no {attr!r}")
    return obj() if isinstance(obj, type) else obj


def resolve_benchmarks(names: list[str], options: dict[str, Any]) -> list[Any]:
    """Benchmark names, suite names and ``module:Attr`` plugins, in order, deduplicated."""
    from secreason.evals.base import Benchmark
    from secreason.evals.registry import expand, get_benchmark

    out: list[Benchmark] = []
    for name in names:
        if ":" in name:
            bench = load_plugin(name)
            if not isinstance(bench, Benchmark):
                _fail(f"{name} is not a secreason Benchmark")
            out.append(bench)
            continue
        try:
            members = expand([name])
        except KeyError as error:
            _fail(str(error.args[0]))
        for member in members:
            try:
                out.append(get_benchmark(member, **options))
            except (TypeError, ValueError) as error:
                _fail(str(error))
    return out


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs; a value that parses as JSON is taken as such."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            _fail(f"--option {pair!r}: expected KEY=VALUE (e.g. size=500)")
        try:
            options[key.replace("-", "_")] = json.loads(raw)
        except ValueError:
            options[key.replace("-", "_")] = raw
    return options


def parse_data(values: list[str]) -> str | dict[str, str] | None:
    """``--data`` values: one plain source for all, or ``NAME=SOURCE`` pairs."""
    if not values:
        return None
    mapping: dict[str, str] = {}
    for value in values:
        name, sep, source = value.partition("=")
        # A hub id or path holds no '=' before a '/', so 'ctibench=path' is a mapping.
        if sep and name and "/" not in name:
            mapping[name] = source
        else:
            mapping["*"] = value
    if list(mapping) == ["*"]:
        return mapping["*"]
    return mapping
