"""What a run is asked to do (:class:`RunSettings`) and what it returns per benchmark.

Why a module of its own: the settings decide every cache key and every number of a
run, and the command line, the report, the preflight and the runner all read them;
keeping them apart from the machinery that generates and scores lets each of those
import the settings without importing a model backend. :class:`BenchmarkResult` is
the record the runner hands to the report: per protocol, one metrics dict per trial.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from secreason.backends.base import SamplingParams
from secreason.evals.base import Benchmark, Reference
from secreason.tasks.base import Protocol

Prefill = Literal["auto", "yes", "no"]


@dataclass
class RunSettings:
    """Everything that decides what a run generates and how it is scored."""

    model: str = ""
    revision: str | None = None
    backend: str = "transformers"
    trials: int = 1
    seed: int | None = None
    limit: int | None = None
    protocols: tuple[Protocol, ...] = ("official", "strict")
    #: where data comes from: one source for every benchmark, or per benchmark name or
    #: family prefix (``{"ctibench": "path/", "cybermetric-2000": "file.json"}``)
    data: str | dict[str, str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    prefilled: Prefill = "auto"
    reask: int | None = None
    rescore: bool = False
    #: per benchmark, the most new tokens the model's context leaves after the longest
    #: prompt (set by the eval command's preflight; max_tokens is clamped to it)
    max_tokens_cap: dict[str, int] = field(default_factory=dict)
    #: run greedy benchmarks (temperature 0) once whatever ``trials`` says: every trial
    #: would repeat the same output (the eval command sets this and says so)
    greedy_once: bool = False
    #: also score the de-duplicated set (``evals.dedup``), as ``dedup/<metric>`` keys
    dedup: bool = False

    def sampling(self, benchmark: Benchmark, trial: int) -> SamplingParams:
        """The benchmark's decoding with CLI overrides; trial ``t`` uses seed + t."""
        base = benchmark.sampling
        seed = self.seed if self.seed is not None else (base.seed or 0)
        max_tokens = base.max_tokens if self.max_tokens is None else self.max_tokens
        cap = self.max_tokens_cap.get(benchmark.name)
        return replace(
            base,
            temperature=base.temperature if self.temperature is None else self.temperature,
            top_p=base.top_p if self.top_p is None else self.top_p,
            max_tokens=max_tokens if cap is None else min(max_tokens, cap),
            seed=seed + trial,
        )

    def trials_for(self, benchmark: Benchmark) -> int:
        """Greedy decoding gives the same output every trial, so it runs once."""
        greedy = self.sampling(benchmark, 0).temperature == 0
        return 1 if self.greedy_once and greedy else self.trials

    def source(self, benchmark: Benchmark) -> str | None:
        """The data source for one benchmark (None: its default, usually a hub id)."""
        if not isinstance(self.data, dict):
            return self.data
        name = benchmark.name
        matches = [k for k in self.data if k == name or name.startswith(k + "-") or k == "*"]
        if not matches:
            return None
        # The most specific entry wins: the exact name, then the longest prefix, then "*".
        best = max(matches, key=lambda k: (k == name, k != "*", len(k)))
        return self.data[best]

    def prefilled_for(self, recorded: bool) -> bool:
        """Whether a cached completion started inside ``<think>`` (``--prefilled``)."""
        return recorded if self.prefilled == "auto" else self.prefilled == "yes"

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(self).items()}


@dataclass
class BenchmarkResult:
    """Metrics of one benchmark: per protocol, one metrics dict per trial."""

    name: str
    headline: str
    references: tuple[Reference, ...]
    n_samples: int
    metrics: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    generated: int = 0
    cached: int = 0
    samples_log: dict[str, str] = field(default_factory=dict)
