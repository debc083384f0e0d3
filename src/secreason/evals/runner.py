"""The evaluation runner: one model, many benchmarks, trials, resume, into one folder.

A benchmark says what to ask and how to score; a backend says how to generate; the
runner owns everything in between, in three passes over each benchmark:

1. **plan** and 2. **generate** (``evals.generation``): every request and its cache
   key, then only what the cache lacks, so a killed run resumes where it stopped and
   one generation serves both protocols when their prompts are equal.
3. **score** (``evals.scoring``): every completion through the benchmark's own judge
   (the task layer's one parser), per-sample logs, metrics per trial and protocol.

This module keeps what ties them together (backends built on first need, paths,
loading once, the loop over trials and protocols) and re-exports the names callers
import from here: :class:`RunSettings`, :class:`BenchmarkResult`,
:class:`MissingGenerations`, :func:`progress`, :func:`prompt_size`,
:func:`read_predictions` and :func:`score_predictions`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from secreason.backends.base import Backend
from secreason.evals.base import Benchmark
from secreason.evals.cache import CachedBackend, CacheRecord, GenerationCache
from secreason.evals.generation import GenerationPass, MissingGenerations, progress, prompt_size
from secreason.evals.run_settings import BenchmarkResult, RunSettings
from secreason.evals.scoring import ScoringPass, read_predictions, score_predictions
from secreason.tasks.base import Protocol, Sample

__all__ = [
    "BenchmarkResult",
    "MissingGenerations",
    "RunSettings",
    "Runner",
    "progress",
    "prompt_size",
    "read_predictions",
    "score_predictions",
]


class Runner(GenerationPass, ScoringPass):
    """Runs benchmarks against one model, resumably, into ``out_dir``."""

    def __init__(
        self,
        out_dir: str | Path,
        settings: RunSettings,
        backend: Backend | Callable[[], Backend] | None = None,
        *,
        judge: Backend | Callable[[], Backend] | None = None,
        judge_id: str = "",
    ) -> None:
        self.out = Path(out_dir)
        self.settings = settings
        self._backend = backend
        self._judge = judge
        self.judge_id = judge_id
        self._needed: set[str] = set()
        self._made = 0
        self._loaded: dict[str, list[Sample]] = {}

    # ---------------------------------------------------------------- backends

    def backend(self) -> Backend:
        if self._backend is None:
            raise MissingGenerations(
                "generations are missing from the cache and no model backend was given "
                "(rescoring only); rerun without --rescore to generate them"
            )
        if not isinstance(self._backend, Backend):
            print(f"loading {self.settings.model} ...", file=sys.stderr)
            self._backend = self._backend()
        return self._backend

    def judge_backend(self, benchmark: Benchmark) -> Backend | None:
        if not benchmark.needs_judge:
            return None
        if self._judge is None:
            raise ValueError(
                f"{benchmark.name} is scored by a judge model: pass --judge-model M "
                "(and --judge-backend/--judge-base-url if it is served)"
            )
        if not isinstance(self._judge, Backend):
            self._judge = self._judge()
        path = self.out / "cache" / benchmark.name / "judge.jsonl"
        return CachedBackend(self._judge, path)

    def close(self) -> None:
        for backend in (self._backend, self._judge):
            if isinstance(backend, Backend):
                backend.close()

    # ------------------------------------------------------------------- paths

    def cache_path(self, benchmark: Benchmark, trial: int) -> Path:
        return self.out / "cache" / benchmark.name / f"trial-{trial}.jsonl"

    # --------------------------------------------------------------------- run

    def load(self, benchmark: Benchmark) -> list[Sample]:
        """The benchmark's samples, loaded once (the preflight loads every benchmark
        before anything is generated; the run then reuses them)."""
        if benchmark.name in self._loaded:
            return self._loaded[benchmark.name]
        samples = benchmark.load(self.settings.source(benchmark), limit=self.settings.limit)
        ids = [s.id for s in samples]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{benchmark.name}: sample ids are not unique")
        self._loaded[benchmark.name] = samples
        return samples

    def run(self, benchmark: Benchmark) -> BenchmarkResult:
        samples = self.load(benchmark)
        result = BenchmarkResult(
            benchmark.name, benchmark.headline, benchmark.references, len(samples)
        )
        judge = self.judge_backend(benchmark)
        for trial in range(self.settings.trials_for(benchmark)):
            params = self.settings.sampling(benchmark, trial)
            cache = GenerationCache(self.cache_path(benchmark, trial))
            self._needed = set()
            self._made = 0
            final = self._generate_trial(benchmark, samples, params, cache, trial)
            result.generated += self._made
            result.cached += len(self._needed) - self._made
            for protocol in self.settings.protocols:
                completions = {sid: record.generation() for sid, record in final[protocol].items()}
                prefilled = {sid: record.prefilled for sid, record in final[protocol].items()}
                attempts = {sid: record.attempt + 1 for sid, record in final[protocol].items()}
                metrics, log = self.score(
                    benchmark,
                    samples,
                    completions,
                    protocol,
                    prefilled=prefilled,
                    judge=judge,
                    trial=trial,
                    attempts=attempts,
                )
                result.metrics.setdefault(protocol, []).append(metrics)
                result.samples_log[f"{trial}.{protocol}"] = str(log)
        return result

    def completions(
        self, benchmark: Benchmark, trial: int = 0
    ) -> dict[Protocol, dict[str, CacheRecord]]:
        """One trial's final completions per protocol, generated or read from the cache,
        without scoring (for modes that read more than the text, e.g. think-then-loglik)."""
        samples = self.load(benchmark)
        params = self.settings.sampling(benchmark, trial)
        cache = GenerationCache(self.cache_path(benchmark, trial))
        self._needed = set()
        self._made = 0
        return self._generate_trial(benchmark, samples, params, cache, trial)

    def prefilled_for(self, recorded: bool) -> bool:
        """Whether a cached completion started inside ``<think>`` (``--prefilled``)."""
        return self.settings.prefilled_for(recorded)
