"""The generate pass of a run: plan every request, generate only what the cache lacks.

Why a module of its own: what to send and when to call the model is the costly half of
a run and the one that must resume after a crash without redoing work, so its rules
live together here (``evals.scoring`` turns the completions into numbers):

* **plan**: for every trial, protocol and sample, the conversation to send and its
  cache key. Official and strict prompts that are identical share one key, so one
  generation serves both protocols.
* **generate**: only the keys missing from the cache, longest prompts first, in
  batches the backend likes; each batch is appended to the cache as soon as it
  returns. Benchmarks that re-ask on a bad format (CyberMetric's evaluator) get
  further rounds, each attempt keyed separately. The backend is built only when
  something is missing, so rescoring never loads a model.

:class:`GenerationPass` is a mixin of :class:`~secreason.evals.runner.Runner`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from secreason.backends.base import Backend, Message, SamplingParams
from secreason.evals.base import Benchmark
from secreason.evals.cache import CacheRecord, GenerationCache, generation_key
from secreason.evals.run_settings import RunSettings
from secreason.tasks.base import Protocol, Sample


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
class _Planned:
    key: str
    sample: Sample
    messages: list[Message]
    attempt: int = 0


class MissingGenerations(RuntimeError):
    pass


class GenerationPass:
    """Plan, re-ask and fill the generation cache (mixed into the runner)."""

    settings: RunSettings
    _needed: set[str]
    _made: int

    def backend(self) -> Backend:  # pragma: no cover - the runner provides it
        raise NotImplementedError

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
                        prefilled=self.settings.prefilled_for(record.prefilled),
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
