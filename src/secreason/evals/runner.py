"""The evaluation runner: trials, cached generation, resume, scoring, per-sample logs.

A benchmark says what to ask and how to score; a backend says how to generate; the
runner owns everything in between, in three passes over each benchmark:

1. **plan**: for every trial, protocol and sample, the conversation to send and its
   cache key. Official and strict prompts that are identical share one key, so one
   generation serves both protocols.
2. **generate**: only the keys missing from the cache, longest prompts first, in
   batches the backend likes; each batch is appended to the cache as soon as it
   returns. Benchmarks that re-ask on a bad format (CyberMetric's evaluator) get
   further rounds, each attempt keyed separately. The backend is built only if
   something is missing, so rescoring never loads a model.
3. **score**: every completion through the benchmark's own judge (the task layer's one
   parser), per-sample logs written, metrics aggregated per trial and protocol.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from secreason.backends.base import Backend, Generation, Message, SamplingParams
from secreason.evals.base import Benchmark, ItemResult, Reference
from secreason.evals.cache import CachedBackend, CacheRecord, GenerationCache, generation_key
from secreason.evals.dedup import dedup_metrics
from secreason.evals.length_stats import length_stats
from secreason.tasks.base import Judgement, Protocol, Sample

Prefill = Literal["auto", "yes", "no"]


def progress(iterable: Iterable[Any] | None = None, **options: Any) -> Any:
    """A tqdm bar on stderr with rate and ETA (``SECREASON_PROGRESS=0`` turns bars off);
    away from a terminal it redraws at most every 30 s, so batch logs stay short."""
    import os

    from tqdm.auto import tqdm

    disable = os.environ.get("SECREASON_PROGRESS") == "0"
    interval = 0.1 if sys.stderr.isatty() else 30.0
    return tqdm(
        iterable,
        file=sys.stderr,
        dynamic_ncols=True,
        disable=disable,
        mininterval=interval,
        **options,
    )


def prompt_size(messages: Sequence[Message]) -> int:
    """How long a conversation is, for dispatch order: the runner hands prompts to a
    backend longest first, so batches of similar length pad least (in the transformers
    backend and at a batching server alike) and the slowest items start early."""
    return sum(len(m["content"]) for m in messages)


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


@dataclass
class _Planned:
    key: str
    sample: Sample
    messages: list[Message]
    attempt: int = 0


class MissingGenerations(RuntimeError):
    pass


class Runner:
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

    def log_path(self, benchmark: Benchmark, trial: int, protocol: Protocol) -> Path:
        return self.out / "samples" / benchmark.name / f"trial-{trial}.{protocol}.jsonl"

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

    def _key(self, messages: list[Message], params: SamplingParams, attempt: int = 0) -> str:
        system = next((m["content"] for m in messages if m["role"] == "system"), None)
        return generation_key(
            self.settings.model,
            self.settings.revision,
            messages,
            params,
            system_prompt=system,
            attempt=attempt,
        )

    def _generate_trial(
        self,
        benchmark: Benchmark,
        samples: Sequence[Sample],
        params: SamplingParams,
        cache: GenerationCache,
        trial: int,
    ) -> dict[Protocol, dict[str, CacheRecord]]:
        """Fill the cache for one trial; return each protocol's final record per sample."""
        final: dict[Protocol, dict[str, CacheRecord]] = {}
        plans: dict[Protocol, list[_Planned]] = {}
        for protocol in self.settings.protocols:
            plans[protocol] = [
                _Planned(self._key(m, params), s, m)
                for s in samples
                for m in [benchmark.messages(s, protocol)]
            ]
        self._fill(cache, [p for plan in plans.values() for p in plan], params, benchmark, trial)

        reask = benchmark.reask if self.settings.reask is None else self.settings.reask
        for protocol, plan in plans.items():
            current = {p.sample.id: p for p in plan}
            for attempt in range(1, reask + 1 if protocol == "official" else 1):
                again: list[_Planned] = []
                for planned in current.values():
                    if planned.attempt != attempt - 1:
                        continue  # settled in an earlier round
                    record = cache.get(planned.key)
                    assert record is not None
                    messages = benchmark.reask_messages(
                        planned.sample,
                        record.generation().full_text(),
                        protocol,
                        prefilled=self.prefilled_for(record.prefilled),
                    )
                    if messages is not None:
                        key = self._key(messages, params, attempt)
                        again.append(_Planned(key, planned.sample, messages, attempt))
                if not again:
                    break
                self._fill(cache, again, params, benchmark, trial, label=f"re-ask {attempt}")
                current.update({p.sample.id: p for p in again})
            final[protocol] = {}
            for sid, planned in current.items():
                record = cache.get(planned.key)
                assert record is not None
                final[protocol][sid] = record
        return final

    def _fill(
        self,
        cache: GenerationCache,
        planned: Sequence[_Planned],
        params: SamplingParams,
        benchmark: Benchmark,
        trial: int,
        label: str = "generate",
    ) -> None:
        todo: dict[str, _Planned] = {}
        self._needed.update(item.key for item in planned)
        for item in planned:
            if item.key not in cache and item.key not in todo:
                todo[item.key] = item
        if not todo:
            return
        if self.settings.rescore:
            raise MissingGenerations(
                f"{benchmark.name} trial {trial}: {len(todo)} generation(s) are not in "
                f"{cache.path}; rescoring never generates: run without --rescore first, or "
                "give the --model, --revision and sampling options of the run that made them"
            )
        backend = self.backend()
        items = sorted(todo.values(), key=lambda p: -prompt_size(p.messages))
        size = max(1, int(getattr(backend, "batch_size", 16) or 16))
        bar = progress(
            total=len(items),
            desc=f"{benchmark.name} t{trial} {label}",
            unit="gen",
        )
        try:
            for start in range(0, len(items), size):
                chunk = items[start : start + size]
                made = backend.generate([p.messages for p in chunk], params)
                if len(made) != len(chunk):
                    raise RuntimeError(
                        f"backend returned {len(made)} generations for {len(chunk)} prompts"
                    )
                cache.append(
                    [
                        CacheRecord.from_generation(
                            p.key, p.sample.id, g, attempt=p.attempt, prefilled=backend.prefilled
                        )
                        for p, g in zip(chunk, made, strict=True)
                    ]
                )
                self._made += len(chunk)
                bar.update(len(chunk))
        finally:
            bar.close()

    def prefilled_for(self, recorded: bool) -> bool:
        """Whether a cached completion started inside ``<think>`` (``--prefilled``)."""
        mode = self.settings.prefilled
        return recorded if mode == "auto" else mode == "yes"

    # ------------------------------------------------------------------- score

    def score(
        self,
        benchmark: Benchmark,
        samples: Sequence[Sample],
        completions: dict[str, Generation],
        protocol: Protocol,
        *,
        prefilled: dict[str, bool] | None = None,
        judge: Backend | None = None,
        trial: int = 0,
        attempts: dict[str, int] | None = None,
    ) -> tuple[dict[str, float], Path]:
        """Judge every sample's completion (missing ones count as empty), log, aggregate."""
        prefilled = prefilled or {}
        texts = {
            s.id: completions[s.id].full_text() if s.id in completions else "" for s in samples
        }
        flags = {s.id: self.prefilled_for(prefilled.get(s.id, False)) for s in samples}
        judgements = self._judge_all(benchmark, samples, texts, flags, protocol, judge)
        results = [
            ItemResult(s.id, protocol, j, {"trial": trial})
            for s, j in zip(samples, judgements, strict=True)
        ]
        metrics = dict(benchmark.metrics(samples, results, protocol))
        n = len(results) or 1
        metrics.setdefault("n", float(len(results)))
        metrics.setdefault(
            "invalid_rate", sum(r.judgement.score.status == "invalid" for r in results) / n
        )
        metrics["unclosed_rate"] = sum(r.judgement.split.status == "unclosed" for r in results) / n
        metrics["format_ok_rate"] = sum(r.judgement.format.ok for r in results) / n
        metrics["truncated_rate"] = (
            sum(completions[s.id].finish_reason == "length" for s in samples if s.id in completions)
            / n
        )
        metrics["missing"] = float(sum(s.id not in completions for s in samples))
        metrics.update(length_stats(results, {k: v for k, v in completions.items() if k in texts}))
        if self.settings.dedup:
            metrics.update(dedup_metrics(benchmark, samples, results, protocol))

        path = self.log_path(benchmark, trial, protocol)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as handle:
            for sample, judgement in zip(samples, judgements, strict=True):
                gen = completions.get(sample.id)
                line = {
                    "id": sample.id,
                    "trial": trial,
                    "protocol": protocol,
                    "prompt": benchmark.messages(sample, protocol),
                    "reference": sample.reference,
                    "completion": texts[sample.id],
                    "reasoning": judgement.split.reasoning,
                    "finish_reason": gen.finish_reason if gen else None,
                    "attempts": (attempts or {}).get(sample.id, 1 if gen else 0),
                    **judgement.as_dict(),
                }
                handle.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
        return metrics, path

    def _judge_all(
        self,
        benchmark: Benchmark,
        samples: Sequence[Sample],
        texts: dict[str, str],
        flags: dict[str, bool],
        protocol: Protocol,
        judge: Backend | None,
    ) -> list[Judgement]:
        many = getattr(benchmark, "judge_many", None)
        if judge is not None and many is not None:
            # Model judges: batch the judge's generations, grouped by prefill flag.
            verdicts: dict[str, Judgement] = {}
            size = max(1, int(getattr(judge, "batch_size", 16) or 16))
            bar = progress(total=len(samples), desc=f"{benchmark.name} judge", unit="item")
            for start in range(0, len(samples), size):
                chunk = samples[start : start + size]
                for flag in (False, True):
                    part = [s for s in chunk if flags[s.id] == flag]
                    if part:
                        made = many(
                            part, [texts[s.id] for s in part], protocol, judge, prefilled=flag
                        )
                        verdicts.update(zip([s.id for s in part], made, strict=True))
                bar.update(len(chunk))
            bar.close()
            return [verdicts[s.id] for s in samples]
        return [
            benchmark.judge(s, texts[s.id], protocol, prefilled=flags[s.id], judge_backend=judge)
            for s in samples
        ]


def read_predictions(path: str | Path, samples: Sequence[Sample]) -> dict[str, Generation]:
    """Completions made elsewhere: JSONL lines with ``id`` (a sample id) or ``index``
    (the 0-based row of the benchmark file) and ``completion`` (optionally
    ``reasoning`` when the server split it off)."""
    by_id = {s.id: s for s in samples}
    by_index = {int(s.meta.get("index", i)): s for i, s in enumerate(samples)}
    out: dict[str, Generation] = {}
    source = Path(path)
    with source.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{source}:{number}"
            try:
                data = json.loads(line)
            except ValueError as error:
                raise ValueError(f"{where}: not a JSON line ({error})") from None
            if not isinstance(data, dict) or "completion" not in data:
                raise ValueError(f"{where}: a prediction needs 'completion' and 'id' or 'index'")
            if "id" in data:
                sample = by_id.get(str(data["id"]))
                what = f"id {data['id']!r}"
            elif "index" in data:
                index = data["index"]
                if isinstance(index, bool) or not isinstance(index, int):
                    raise ValueError(
                        f"{where}: 'index' must be a whole number (the 0-based row), "
                        f"got {index!r}"
                    )
                sample = by_index.get(index)
                what = f"index {index!r}"
            else:
                raise ValueError(f"{where}: a prediction needs 'id' or 'index' (0-based row)")
            if sample is None:
                raise ValueError(
                    f"{where}: {what} is not a row of this benchmark (or beyond --limit)"
                )
            if sample.id in out:
                raise ValueError(f"{where}: a second prediction for {sample.id}")
            completion = data["completion"]
            if not isinstance(completion, str):
                raise ValueError(f"{where}: 'completion' must be a string")
            reasoning = data.get("reasoning")
            out[sample.id] = Generation(
                text=completion,
                reasoning=reasoning if isinstance(reasoning, str) else None,
                finish_reason=str(data.get("finish_reason", "stop")),
            )
    return out


def score_predictions(runner: Runner, benchmark: Benchmark, path: str | Path) -> BenchmarkResult:
    """Score a predictions file under every protocol of the run (one trial)."""
    samples = runner.load(benchmark)
    completions = read_predictions(path, samples)
    if not completions:
        raise ValueError(f"{path}: no predictions (the file is empty); nothing to score")
    missing = len(samples) - len(completions)
    if missing:
        print(
            f"warning: {benchmark.name}: {missing} of {len(samples)} rows have no prediction; "
            "they are scored as empty completions (invalid)",
            file=sys.stderr,
        )
    judge = runner.judge_backend(benchmark)
    result = BenchmarkResult(benchmark.name, benchmark.headline, benchmark.references, len(samples))
    for protocol in runner.settings.protocols:
        metrics, log = runner.score(benchmark, samples, completions, protocol, judge=judge)
        result.metrics[protocol] = [metrics]
        result.samples_log[f"0.{protocol}"] = str(log)
    return result
