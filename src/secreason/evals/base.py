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

from secreason.backends.base import Backend, Message, SamplingParams
from secreason.tasks.base import Judgement, Protocol, Sample, Task


@dataclass(frozen=True)
class Reference:
    """A published number, with where it was published."""

    model: str
    metric: str
    value: float
    source: str = "arXiv 2601.21051"
    #: the protocol whose ``metric`` the published number corresponds to
    protocol: Protocol = "strict"


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
    #: what the strict protocol asks for on the final line (appended to the own prompt)
    strict_instruction: str = ""
    #: re-asks allowed when the official extraction fails (CyberMetric's evaluator: 5)
    reask: int = 0
    #: True when :meth:`judge` needs a ``judge_backend`` (model-judged benchmarks)
    needs_judge: bool = False

    @property
    @abstractmethod
    def task(self) -> Task:
        """The task that extracts and scores this benchmark's answers."""

    @abstractmethod
    def load(self, source: str | Path | None = None, limit: int | None = None) -> list[Sample]:
        """Samples ready to send: ``messages`` hold the benchmark's own prompt."""

    def messages(self, sample: Sample, protocol: Protocol) -> list[Message]:
        """The conversation to send under a protocol.

        ``official`` sends the benchmark's own prompt untouched. ``strict`` sends the same
        prompt with :attr:`strict_instruction` appended to the last user turn, so both
        protocols see the same question; when the two are equal the runner's prompt-keyed
        cache generates once.
        """
        if protocol == "official" or not self.strict_instruction:
            return [dict(m) for m in sample.messages]
        out = [dict(m) for m in sample.messages]
        last = max(i for i, m in enumerate(out) if m["role"] == "user")
        out[last]["content"] = f"{out[last]['content'].rstrip()}\n\n{self.strict_instruction}"
        return out

    def reask_messages(
        self, sample: Sample, completion: str, protocol: Protocol, *, prefilled: bool = False
    ) -> list[Message] | None:
        """The conversation to send again when a completion must be re-asked, else None.

        Only the official protocol re-asks, and only when the official extraction found
        nothing; the request is the same conversation again, as CyberMetric's evaluator
        does. How many attempts is the runner's call (:attr:`reask` by default, 0 = never);
        it keeps the last completion, so a never-valid item still counts, as invalid.
        """
        if protocol != "official":
            return None
        verdict = self.task.judge(
            completion, sample.reference, protocol=protocol, prefilled=prefilled
        )
        return None if verdict.extraction.ok else self.messages(sample, protocol)

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
