"""Benchmarks whose rows carry their own prompt: CTIBench and AthenaBench.

Both build their task lazily (AthenaBench's TAA and CTIBench's TAA rebuild it on the
alias maps a load reads) and both MCQ files take the same few-shot and option-shuffling
switches. The two suites wrote that code once each; it lives here once for both.
"""

from __future__ import annotations

from pathlib import Path

from secreason.evals.base import Benchmark
from secreason.evals.fewshot import with_fewshot
from secreason.evals.shuffle import orders, shuffled
from secreason.evals.sources import limited
from secreason.tasks.base import Sample, Task


class RowPromptBenchmark(Benchmark):
    """A benchmark whose task is built on first use by :meth:`make_task`."""

    def __init__(self) -> None:
        self._task: Task | None = None

    @property
    def task(self) -> Task:
        if self._task is None:
            self._task = self.make_task()
        return self._task

    def make_task(self) -> Task:  # pragma: no cover - every subclass sets one
        raise NotImplementedError


class ChoiceVariants(RowPromptBenchmark):
    """Mixin for a multiple-choice file: ``fewshot=N`` examples, ``shuffle=K`` orders.

    Put it before the suite's base class; ``option_count`` is how many options a row has.
    """

    option_count = 4

    def __init__(
        self, *, shuffle: int = 1, shuffle_seed: int = 0, fewshot: int = 0, fewshot_seed: int = 0
    ) -> None:
        super().__init__()
        self.shuffle, self.shuffle_seed = int(shuffle), int(shuffle_seed)
        self.fewshot, self.fewshot_seed = int(fewshot), int(fewshot_seed)
        orders(self.option_count, self.shuffle, 0, 0)  # a bad count fails before any model loads
        with_fewshot([], self.fewshot)

    def load(self, source: str | Path | None = None, limit: int | None = None) -> list[Sample]:
        # The suite's own loader: this mixin always stands before the suite's base class.
        samples = super().load(source, None if self.fewshot else limit)  # type: ignore[safe-super]
        if self.fewshot:  # examples from the whole file, whatever --limit keeps
            samples = limited(with_fewshot(samples, self.fewshot, seed=self.fewshot_seed), limit)
        return shuffled(samples, self.shuffle, self.shuffle_seed) if self.shuffle > 1 else samples
