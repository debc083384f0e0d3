"""Continuous batching for the local model: transformers' own manager, opt-in.

The default :class:`~secreason.serve.local_engine.LocalEngine` runs one ``generate``
call at a time on one thread, so a long request or stream holds every later one until
it ends. transformers (5.x) ships a continuous batching manager
(``model.init_continuous_batching``): a background thread that admits and retires
requests between decode steps over a paged KV cache, so a short request is answered
while a long one is still decoding. ``model.engine: continuous`` serves through it;
this module adds only what the server's guarantees need on top of it:

* **Per-request sampling.** The manager samples for every row; greedy rows get
  ``top_k=1`` (the argmax, exactly what ``generate`` picks), sampled rows their own
  temperature and top-p with top-k off, through its per-request processors.
* **Cancellation.** A deadline, a client disconnect or a shutdown cancels the row in
  the manager (``cancel_request``), which frees it at the next step.
* **Stop strings.** A stream is plain deltas: the HTTP layer holds a partial match back
  and stops reading, which cancels the row. A whole completion is cut here, and its row
  cancelled as soon as a stop string appears.
* **Isolation.** Prompts are tokenised and checked against the context before they reach
  the manager. A failure inside a decode step fails every row of that step (and may stop
  the manager): each such row is retried once ALONE on a fresh manager, with new
  requests held back meanwhile, so only the request that fails by itself gets the 500.
  A stream that already sent text cannot be replayed and fails.

Not honoured here: ``seed`` (the manager draws from one stream seeded once), which the
server documents as best effort under concurrent load anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any

from secreason.backends.base import Generation, Message, SamplingParams
from secreason.serve.continuous_manager import (
    drop_handler,
    row_sampling,
    start_manager,
    stop_manager,
    vocab_size,
)
from secreason.serve.continuous_rows import ENDED, Decoder, Row
from secreason.serve.engine_base import EngineError, StreamInfo
from secreason.serve.local_engine import LocalEngine

if TYPE_CHECKING:
    from secreason.backends.transformers import TransformersBackend

log = logging.getLogger("secreason.serve")


class _StepFailed(Exception):
    """The manager reported an error for a row's step (the message is its error)."""


class ContinuousEngine(LocalEngine):
    """The transformers backend's model behind transformers' continuous batching.

    ``cache_tokens`` sizes the paged KV cache in tokens (None: ``max_batch_size`` full
    contexts on CPU, where transformers would otherwise take 60 % of the free RAM; on a
    GPU transformers sizes it from free memory).
    """

    def __init__(
        self,
        backend: TransformersBackend,
        *,
        max_batch_size: int = 16,
        cache_tokens: int | None = None,
    ) -> None:
        super().__init__(backend, max_batch_size=max_batch_size)
        self.model_backend = backend  # typed: the backend's model, tokenizer and decoding
        model = getattr(backend, "model", None)
        if not hasattr(model, "init_continuous_batching"):
            raise ValueError(
                "model.engine: continuous needs the transformers backend and a transformers "
                "version with continuous batching (5.x)"
            )
        self.max_rows = max(1, max_batch_size)
        self._vocab = vocab_size(backend)
        self.cache_tokens = cache_tokens
        self._manager: Any = None
        self._ids = itertools.count()
        self._open = asyncio.Event()  # cleared while a failed row is retried alone
        self._open.set()
        self._solo = asyncio.Lock()
        self._inflight: set[Row] = set()
        self._encoder: Any = None  # a tokenizer copy for prompts (the loop decodes)
        self.restarts = 0  # managers rebuilt after a failure

    # ------------------------------------------------------------------ manager

    def _ensure_manager(self) -> Any:
        if self._manager is not None and self._manager.is_running():
            return self._manager
        if self._manager is not None:  # stopped by a failure: start a fresh one
            log.warning("continuous batching stopped; starting it again")
            self.restarts += 1
            self._stop_manager()
        self._manager = start_manager(
            self.model_backend,
            max_rows=self.max_rows,
            cache_tokens=self.cache_tokens,
            context_length=self.context_length,
        )
        return self._manager

    def _stop_manager(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            stop_manager(manager)

    def _submit(self, row: Row, retry: bool = True) -> None:
        manager = self._ensure_manager()
        row.request_id = f"secreason-{next(self._ids)}"
        # The handler is registered before the request exists, so no output is missed.
        manager.register_result_handler(row.request_id, row.events.put_nowait)
        accepted = manager.add_request(
            row.prompt_ids,
            request_id=row.request_id,
            max_new_tokens=row.params.max_tokens,
            streaming=True,
            eos_token_id=list(self.model_backend._eos_ids),
            **row_sampling(row.params, self._vocab),
        )
        if accepted is None:  # a manager stopping after a failure drops new requests
            drop_handler(manager, row.request_id)
            if retry:
                self._stop_manager()
                self._submit(row, retry=False)
                return
            raise EngineError("the model failed", 500)

    def _cancel(self, row: Row) -> None:
        manager = self._manager
        if manager is None or row.request_id is None:
            return
        manager.cancel_request(row.request_id)
        drop_handler(manager, row.request_id)  # a cancelled request gets no last output

    # ------------------------------------------------------------------ rows

    async def _run(self, row: Row, *, cancel_failed: bool) -> AsyncGenerator[Any, None]:
        """Submit ``row`` and yield the manager's outputs until its last one (or the
        shutdown); a failed step raises :class:`_StepFailed`. A row given up early is
        cancelled (and counted); a failed one too, uncounted, if ``cancel_failed``."""
        self._submit(row)
        self._inflight.add(row)
        self.running += 1
        failed = False
        try:
            while True:
                output = await row.events.get()
                if output is ENDED:  # the server is shutting down
                    row.finished = True
                    return
                if output.error is not None:
                    failed = True
                    raise _StepFailed(str(output.error))
                yield output
                if output.is_finished():
                    row.finished = True
                    return
        finally:
            self._inflight.discard(row)
            self.running -= 1
            if not row.finished and (cancel_failed or not failed):
                self._cancel(row)
                self.cancelled += not failed

    async def _outputs(self, row: Row) -> AsyncGenerator[Any, None]:
        """The manager's outputs for ``row`` (each with every token so far), retried
        alone once after a failure; the row is cancelled if the caller stops early."""
        await self._open.wait()
        try:
            async with contextlib.aclosing(self._run(row, cancel_failed=False)) as outputs:
                async for output in outputs:
                    yield output
            return
        except _StepFailed as error:
            failed = str(error)
        if row.sent:
            log.error("model failed on a request: %s", failed)
            raise EngineError("the model failed", 500)
        log.warning("model failed on a step (%s); retrying its request alone", failed)
        async for output in self._alone(row):
            yield output

    async def _alone(self, row: Row) -> AsyncGenerator[Any, None]:
        """Run ``row`` with no other request in the manager (new ones wait)."""
        async with self._solo:
            self._open.clear()
            try:
                while self._inflight:  # rows still running finish (or fail) first
                    await asyncio.sleep(0.01)
                row.reset()
                try:
                    async with contextlib.aclosing(self._run(row, cancel_failed=True)) as outputs:
                        async for output in outputs:
                            yield output
                except _StepFailed as error:
                    log.error("model failed on a request alone: %s", error)
                    raise EngineError("the model failed", 500) from None
            finally:
                self._open.set()

    async def _row(self, messages: list[Message], params: SamplingParams) -> Row:
        """Render and tokenise on the (otherwise idle) model thread, with a tokenizer
        copy: the event loop decodes with the backend's own at the same time."""
        backend = self.model_backend

        def encode() -> list[int]:
            if self._encoder is None:
                self._encoder = copy.deepcopy(backend.tokenizer)
            prompt = backend.render(list(messages))
            return list(self._encoder(prompt, add_special_tokens=False)["input_ids"])

        ids = await asyncio.get_running_loop().run_in_executor(self._executor, encode)
        return Row(ids, params, Decoder(backend._decode, set(backend._eos_ids)))

    # ------------------------------------------------------------------ engine

    async def complete(self, messages: list[Message], params: SamplingParams) -> Generation:
        row = await self._row(messages, params)
        tokens: list[int] = []
        async with contextlib.aclosing(self._outputs(row)) as outputs:
            async for output in outputs:
                tokens = list(output.generated_tokens)
                if params.stop and not output.is_finished():
                    delta = row.decoder.feed(tokens)
                    if delta and row.decoder.holds(params.stop, delta):
                        row.finished = True  # the rest is not needed (not a client's cancel)
                        self._cancel(row)
                        break
        return self.model_backend._to_generation(tokens, len(row.prompt_ids), params)

    async def stream(
        self, messages: list[Message], params: SamplingParams, info: StreamInfo
    ) -> AsyncIterator[str]:
        row = await self._row(messages, params)
        info.prompt_tokens = len(row.prompt_ids)
        tokens: list[int] = []
        try:
            async with contextlib.aclosing(self._outputs(row)) as outputs:
                async for output in outputs:
                    tokens = list(output.generated_tokens)
                    delta = row.decoder.feed(tokens)
                    if output.is_finished():
                        delta += row.decoder.flush(tokens)
                    if delta:
                        row.sent = True
                        yield delta
            info.finish_reason = row.decoder.finish(tokens, params)[0]
        finally:
            # A consumer that stopped early (its stop string matched) still gets the
            # count of what the model generated.
            info.completion_tokens = row.decoder.finish(tokens, params)[1]

    async def ready(self) -> tuple[bool, str]:
        if getattr(self.model_backend, "model", None) is None:
            return False, "the model is unloaded"
        if self._manager is not None and not self._manager.is_running():
            return True, "ok (continuous batching restarts at the next request)"
        return True, "ok"

    def cancel_all(self) -> int:
        rows = list(self._inflight)
        for row in rows:
            self._cancel(row)
            row.events.put_nowait(ENDED)
        return len(rows)

    async def aclose(self, timeout_s: float = 10.0) -> None:
        self.cancel_all()
        await asyncio.to_thread(self._stop_manager)
        await super().aclose(timeout_s)
