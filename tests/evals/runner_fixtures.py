"""A toy multiple-choice benchmark and a scripted backend for runner tests.

The benchmark is a real :class:`Benchmark` over the real ``mcq`` task; the backend is a
real :class:`Backend` whose completions are a pure function of the prompt, so tests can
count exactly what was generated and know every expected score by hand.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from secreason.backends.base import Backend, Generation, Message, SamplingParams
from secreason.evals.base import Benchmark, Reference
from secreason.tasks.base import Sample, Task
from secreason.tasks.mcq import MCQ

GOLD = "ABCDABCDAB"


class ToyMCQ(Benchmark):
    name = "toy-mcq"
    headline = "accuracy"
    sampling = SamplingParams(temperature=0.0, max_tokens=32, seed=42)
    references = (Reference("Foundation-Sec-8B-Reasoning", "accuracy", 0.5, protocol="strict"),)

    def __init__(self, n: int = 10, strict_instruction: str = "", reask: int = 0) -> None:
        self.n = n
        self.strict_instruction = strict_instruction
        self.reask = reask
        self._task = MCQ()

    @property
    def task(self) -> Task:
        return self._task

    def load(self, source: str | Path | None = None, limit: int | None = None) -> list[Sample]:
        rows = range(self.n if limit is None else min(limit, self.n))
        return [
            Sample(
                id=f"toy-{i}",
                task="mcq",
                messages=[
                    {"role": "system", "content": "You are a security expert."},
                    {"role": "user", "content": f"Question Q{i}: pick one of A, B, C, D."},
                ],
                reference=GOLD[i % len(GOLD)],
                meta={"index": i},
            )
            for i in rows
        ]


class ScriptedBackend(Backend):
    """Answers ``Q<i>`` with a fixed letter; ``bad`` items first answer off-format.

    Items in ``wrong`` get a wrong letter; items in ``bad`` answer without a letter for
    their first ``bad_times`` requests (to exercise re-asks).
    """

    prefilled = False

    def __init__(
        self,
        wrong: set[int] | None = None,
        bad: set[int] | None = None,
        bad_times: int = 1,
        fail_after_calls: int | None = None,
        batch_size: int = 4,
    ) -> None:
        self.model_id = "scripted"
        self.wrong = wrong or set()
        self.bad = bad or set()
        self.bad_times = bad_times
        self.fail_after_calls = fail_after_calls
        self.batch_size = batch_size
        self.calls = 0
        self.prompts: list[str] = []
        self.seeds: list[int | None] = []

    def generate(
        self, conversations: Sequence[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        if self.fail_after_calls is not None and self.calls >= self.fail_after_calls:
            raise RuntimeError("scripted crash")
        self.calls += 1
        out = []
        for conversation in conversations:
            user = conversation[-1]["content"]
            self.prompts.append(user)
            self.seeds.append(params.seed)
            index = int(re.search(r"Q(\d+)", user).group(1))  # type: ignore[union-attr]
            seen = sum(p == user for p in self.prompts)
            if index in self.bad and seen <= self.bad_times:
                answer = "I cannot decide."
            else:
                letter = GOLD[index % len(GOLD)]
                if index in self.wrong:
                    letter = "D" if letter != "D" else "A"
                answer = f"Answer: {letter}"
            out.append(Generation(f"<think>reasoning about Q{index}</think>\n{answer}"))
        return out
