"""The benchmark contract: a loader plus a protocol, one module per benchmark.

A benchmark module answers, in one place, every question a reader has about a number:
where the data comes from, which prompt and system prompt were sent, how the model
decoded, how the answer was extracted (``official`` and ``strict``) and how items are
aggregated. The runner (``evals.runner``) owns generation, caching and reports; a
benchmark never generates.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secreason.backends.base import Backend, SamplingParams
from secreason.tasks.base import Judgement, Protocol, Sample, Task


@dataclass(frozen=True)
class Reference:
    """A published number, with where it was published."""

    model: str
    metric: str
    value: float
    source: str = "arXiv 2601.21051"


@dataclass
class ItemResult:
    """One scored generation: what the report and per-sample logs are made of."""

    sample_id: str
    protocol: Protocol
    judgement: Judgement
    extra: dict[str, Any] = field(default_factory=dict)


class Benchmark(ABC):
    """Loader + protocol of one benchmark."""

    name: str = ""
    #: the hub dataset id or file name a user would load by default
    default_source: str = ""
    #: the protocol's system prompt (None: no system prompt)
    system_prompt: str | None = None
    #: the official decoding
    sampling: SamplingParams = SamplingParams()
    #: the metric compared against published numbers
    headline: str = "accuracy"
    references: tuple[Reference, ...] = ()

    @property
    @abstractmethod
    def task(self) -> Task:
        """The task that extracts and scores this benchmark's answers."""

    @abstractmethod
    def load(self, source: str | Path | None = None, limit: int | None = None) -> list[Sample]:
        """Samples ready to send: ``messages`` hold the benchmark's own prompt."""

    def judge(
        self,
        sample: Sample,
        completion: str,
        protocol: Protocol,
        *,
        prefilled: bool = False,
        judge_backend: Backend | None = None,
    ) -> Judgement:
        """Score one completion; benchmarks with model judges override this."""
        return self.task.judge(completion, sample.reference, protocol=protocol, prefilled=prefilled)

    def metrics(
        self, samples: Sequence[Sample], results: Sequence[ItemResult], protocol: Protocol
    ) -> dict[str, float]:
        """Aggregate per-item results under one protocol (default: the task's metrics)."""
        return self.task.aggregate([r.judgement.score for r in results])
