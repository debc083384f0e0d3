"""The interface the HTTP layer awaits, whatever produces the completions.

The request path (:mod:`.deployment`, :mod:`.handler`, :mod:`.streaming`) only ever
talks to an :class:`Engine`: a local model with batching (:mod:`.local_engine`,
:mod:`.continuous`) or an OpenAI-compatible upstream (:mod:`.upstream`). Keeping the
interface, its error and its stream report in a module of their own lets both engines
(and the guard, which is an engine too) depend on them without depending on each other.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass

from secreason.backends.base import Generation, Message, SamplingParams
from secreason.serve.sanitize import GENERIC_NEUTRALISER, Neutraliser


@dataclass
class StreamInfo:
    """Filled in by :meth:`Engine.stream` once the stream has ended."""

    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0


class EngineError(Exception):
    """The model side failed; ``status`` is what the client should see (502/504)."""

    def __init__(self, message: str, status: int = 502, detail: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail or message  # for the log and audit; the client sees ``message``


class Engine(ABC):
    """Completions for the HTTP layer, whole or streamed; see :mod:`.engine` for the kinds."""

    model_id: str = ""
    prefilled: bool = False

    @abstractmethod
    async def complete(self, messages: list[Message], params: SamplingParams) -> Generation: ...

    @abstractmethod
    def stream(
        self, messages: list[Message], params: SamplingParams, info: StreamInfo
    ) -> AsyncIterator[str]:
        """Text deltas of the completion (think tags included)."""

    #: Breaks chat-template control strings in client text (see :mod:`..sanitize`): the
    #: generic shapes here, a local engine adds its tokenizer's own.
    neutralise: Neutraliser = GENERIC_NEUTRALISER

    async def prepare(self, messages: list[Message], params: SamplingParams) -> int | None:
        """Check, before it is queued, that this conversation can be served: raises
        :class:`EngineError` (400) naming the problem; returns its prompt tokens if known.
        A request refused here never joins a batch, so it cannot fail its companions."""
        return None

    def arriving(self) -> contextlib.AbstractContextManager[None]:
        """Held by the HTTP layer while a request is read, parsed and screened, before
        it reaches the engine: a batching engine waits for such requests."""
        return contextlib.nullcontext()

    def known_context(self) -> int | None:
        """The model's context in tokens as known now (None: unknown); ``/v1/models``
        reports it as ``max_model_len``, the field vLLM uses, so clients can size
        ``max_tokens``."""
        return None

    async def ready(self) -> tuple[bool, str]:
        """Whether a request sent now can be answered, and why not (for ``/ready``)."""
        return True, "ok"

    async def aclose(self) -> None:  # noqa: B027  (optional hook)
        pass
