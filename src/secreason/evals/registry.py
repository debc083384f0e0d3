"""Benchmarks and suites by name: what ``secreason eval NAME...`` accepts.

A name maps to a factory, so options (``size``, ``subset``, ``judge_kind``...) reach the
benchmark's constructor; a suite name expands to its members, in a fixed order. Short
aliases exist only where they are unambiguous (``cybermetric`` is the 2000-question set
the paper reports, ``mmlu`` is MMLU's computer-security subject); any other unknown
name is refused with the closest names as suggestions.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from secreason.evals.athenabench import ATHENABENCH
from secreason.evals.base import Benchmark
from secreason.evals.ctibench import CTIBENCH
from secreason.evals.cwe_prediction import CWEPrediction
from secreason.evals.cybermetric import SIZES, CyberMetric
from secreason.evals.harmbench import HarmBench
from secreason.evals.ifeval import IFEval
from secreason.evals.mmlu import MMLUSecurity
from secreason.evals.secbench import SecBench
from secreason.evals.seceval import SecEval

Factory = Callable[..., Benchmark]

_FACTORIES: dict[str, Factory] = {
    **{name: cls for name, cls in CTIBENCH.items()},
    **{name: cls for name, cls in ATHENABENCH.items()},
    "cwe-prediction": CWEPrediction,
    **{f"cybermetric-{size}": partial(CyberMetric, size) for size in SIZES},
    "secbench": SecBench,
    "seceval": partial(SecEval, "all"),
    "seceval-single": partial(SecEval, "single"),
    "mmlu-security": MMLUSecurity,
    "harmbench": HarmBench,
    "ifeval": IFEval,
}

#: short names -> the benchmark they mean
ALIASES: dict[str, str] = {
    "cybermetric": "cybermetric-2000",
    "mmlu": "mmlu-security",
    "mmlu-computer-security": "mmlu-security",
}

SUITES: dict[str, tuple[str, ...]] = {
    "ctibench": tuple(CTIBENCH),
    "athenabench": tuple(ATHENABENCH),
    "cyber": (
        *CTIBENCH,
        "cybermetric-2000",
        "secbench",
        "seceval",
        "mmlu-security",
    ),
    "safety": ("harmbench",),
    # The cyber benchmarks of arXiv 2601.21051's Table 2, in its column order.
    "paper": (
        "ctibench-mcq",
        "ctibench-rcm",
        "ctibench-vsp",
        "ctibench-ate",
        "cwe-prediction",
        "mmlu-security",
        "cybermetric-2000",
        "secbench",
        "seceval-single",
    ),
}


def benchmark_names() -> list[str]:
    return sorted(_FACTORIES)


def suite_names() -> list[str]:
    return sorted(SUITES)


def published_file(bench: Benchmark) -> str | None:
    """The file name a benchmark's authors published it under (None: a hub id only)."""
    name = str(getattr(bench, "file", "") or bench.default_source or "")
    return name if name and "/" not in name and "." in name else None


def published_files() -> dict[str, list[str]]:
    """Published file name -> the benchmarks that read it (to catch a swapped file)."""
    out: dict[str, list[str]] = {}
    for name in benchmark_names():
        try:
            file = published_file(get_benchmark(name))
        except Exception:  # a benchmark that needs options to build names no file
            continue
        if file:
            out.setdefault(file, []).append(name)
    return out


def expand(names: Iterable[str]) -> list[str]:
    """Benchmark and suite names -> benchmark names, suites expanded, duplicates dropped."""
    out: list[str] = []
    for name in names:
        name = ALIASES.get(name, name)
        for member in SUITES.get(name, (name,)):
            if member not in _FACTORIES:
                raise KeyError(_unknown(member))
            if member not in out:
                out.append(member)
    return out


def get_benchmark(name: str, **options: Any) -> Benchmark:
    """Instantiate one benchmark by name; options go to its constructor."""
    try:
        factory = _FACTORIES[ALIASES.get(name, name)]
    except KeyError:
        raise KeyError(_unknown(name)) from None
    _check_options(name, factory, options)
    try:
        return factory(**options)
    except TypeError as error:
        raise TypeError(f"benchmark {name!r}: bad option ({error})") from None


def _check_options(name: str, factory: Factory, options: dict[str, Any]) -> None:
    """Refuse an option the benchmark does not take (or fixes by its name), or a wrong type."""
    import inspect

    params = inspect.signature(factory).parameters
    takes = ", ".join(p for p in params if not p.startswith("_")) or "none"
    base = factory.func if isinstance(factory, partial) else factory
    open_ended = any(p.kind is p.VAR_KEYWORD for p in params.values())
    for key, value in options.items():
        if key not in params and open_ended:
            continue
        if key not in params:
            if key in inspect.signature(base).parameters:
                raise TypeError(
                    f"benchmark {name!r}: {key} is set by the name, not by --set; name the "
                    "variant you want instead (see secreason eval --list)"
                )
            raise TypeError(f"benchmark {name!r} takes no option {key!r}; its options: {takes}")
        default = params[key].default
        if type(default) in (int, float) and (
            isinstance(value, bool) or not isinstance(value, (int, float))
        ):
            kind = "an integer" if type(default) is int else "a number"
            raise TypeError(f"benchmark {name!r}: {key}: expected {kind}, got {value!r}")


def _unknown(name: str) -> str:
    known = [*benchmark_names(), *suite_names(), *ALIASES]
    close = difflib.get_close_matches(name.lower(), known, n=3, cutoff=0.5)
    close += [k for k in known if k.startswith(name.lower()) and k not in close][: 3 - len(close)]
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return (
        f"unknown benchmark {name!r}; {hint}suites: {', '.join(suite_names())}; "
        "every name: secreason eval --list"
    )
