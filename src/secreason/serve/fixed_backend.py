"""FOR BENCHMARKING AND SMOKE TESTS ONLY: a backend that returns a fixed completion.

It is not a model. It exists so that ``benchmarks/serve_overhead.py`` can measure the
server's own cost (HTTP, JSON, reasoning split, batching, limits) with the model's
cost removed, and so that an operator can check a deployment's plumbing (keys, proxy,
limits) before a GPU is attached. Select it with ``model.backend: fixed-text``; the
server labels it in ``/v1/models`` (``owned_by: secreason-benchmark-fixed-text``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

from secreason.backends.base import Backend, Generation, Message, SamplingParams

FIXED_REASONING = (
    "The question asks about a weakness class. The description mentions input that reaches "
    "a query without neutralisation, which is the pattern of injection weaknesses."
)
FIXED_ANSWER = "The weakness is CWE-89 (SQL injection).\nAnswer: CWE-89"


class FixedTextBackend(Backend):
    """Answers every conversation with the same reasoning and answer, in ``chunks`` deltas
    (``delay_s`` before the first, ``chunk_delay_s`` between the others)."""

    def __init__(
        self,
        *,
        model_id: str = "fixed-text",
        delay_s: float = 0.0,
        chunks: int = 16,
        chunk_delay_s: float = 0.0,
    ) -> None:
        self.model_id = model_id
        self.delay_s = delay_s
        self.chunk_delay_s = chunk_delay_s  # a token rate, for streaming behaviour
        self.chunks = chunks
        self.text = f"<think>\n{FIXED_REASONING}\n</think>\n\n{FIXED_ANSWER}"

    def generate(
        self,
        conversations: Sequence[list[Message]],
        params: SamplingParams,
        *,
        cancel: Sequence[threading.Event] | None = None,
    ) -> list[Generation]:
        if self.delay_s:
            _pause(self.delay_s, cancel or ())
        words = len(self.text.split())
        return [
            Generation(
                self.text,
                prompt_tokens=sum(len(m["content"].split()) for m in c),
                completion_tokens=words,
            )
            for c in conversations
        ]

    def stream(
        self,
        conversation: list[Message],
        params: SamplingParams,
        *,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        events = (cancel,) if cancel is not None else ()
        if self.delay_s and _pause(self.delay_s, events):
            return
        size = max(1, len(self.text) // self.chunks)
        for start in range(0, len(self.text), size):
            if self.chunk_delay_s and start and _pause(self.chunk_delay_s, events):
                return
            yield self.text[start : start + size]


def _pause(seconds: float, cancel: Sequence[threading.Event]) -> bool:
    """Sleep like a model computing, cut short (True) once every request has cancelled,
    as the real backend stops at its next token."""
    if not cancel:
        time.sleep(seconds)
        return False
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if all(event.is_set() for event in cancel):
            return True
        time.sleep(min(left, 0.01))
    return False
