"""A local model behind the engine interface: batched, cancellable, on one thread.

Backends (the transformers backend, the benchmark's fixed-text backend) are
synchronous, so every call runs on ONE worker thread and the event loop never blocks on
the model. Concurrent requests are queued and handed to ``Backend.generate`` together
(:mod:`.batching` decides which and when). Every request carries a cancel event that
the backend checks at each token, so a deadline, a client disconnect or a shutdown
stops the row's generation, not only its answer; a batch that fails is retried in halves
so that a bad request fails alone. Streams run one at a time on the same thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from secreason.backends.base import Backend, Generation, Message, SamplingParams
from secreason.serve.batching import BatchFormer, Job, batch_key, batch_seed
from secreason.serve.engine_base import Engine, EngineError, StreamInfo
from secreason.serve.prompt_fit import PromptCounter, context_length
from secreason.serve.sanitize import Neutraliser, breaker_for, control_strings

log = logging.getLogger("secreason.serve")

Finish = tuple[str, int, int]  # finish_reason, prompt tokens, completion tokens
Producer = Callable[[Callable[[str], None], threading.Event], Finish]


class LocalEngine(Engine):
    """Dynamic batching in front of a synchronous backend (see :mod:`.batching`)."""

    def __init__(
        self,
        backend: Backend,
        *,
        max_batch_size: int = 16,
        batch_wait_ms: float = 0.0,
        refill_wait: float = 0.2,
        arrival_wait_ms: float = 50.0,
        burst_gap_ms: float = 20.0,
    ):
        self.backend = backend
        self.model_id = backend.model_id
        self.prefilled = backend.prefilled
        tokenizer = getattr(backend, "tokenizer", None)
        render = getattr(backend, "render", None)
        self.context_length: int | None = None
        self._counter: PromptCounter | None = None
        if tokenizer is not None:
            self.neutralise = Neutraliser(control_strings(tokenizer), breaker_for(tokenizer))
            self.context_length = context_length(backend)
            if render is not None:
                self._counter = PromptCounter(tokenizer, render, self.context_length)
        self._former = BatchFormer(
            max_batch_size=max_batch_size,
            batch_wait_ms=batch_wait_ms,
            refill_wait=refill_wait,
            arrival_wait_ms=arrival_wait_ms,
            burst_gap_ms=burst_gap_ms,
        )
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="secreason-model")
        self._queue: asyncio.Queue[Job] | None = None
        self._worker: asyncio.Task[None] | None = None
        self.batch_sizes: deque[int] = deque(maxlen=1000)  # recent sizes, for /metrics
        self.batches = 0  # totals since start: batches run and the requests they held
        self.batched = 0
        self.busy_s = 0.0  # model time spent on batches (utilisation = busy_s / wall time)
        # Cancellation: a backend whose generate/stream take ``cancel=`` stops a row once
        # its event is set; one without it runs to the end (its result is discarded).
        self._cancel_generate = _accepts_cancel(backend.generate)
        self._cancel_stream = _accepts_cancel(backend.stream)
        self._live: set[threading.Event] = set()  # events of generations in progress
        self.running = 0  # generations on the model thread now (batches and streams)
        self.cancelled = 0  # requests that gave up on their generation before it ended

    def _ensure_worker(self) -> asyncio.Queue[Job]:
        if self._queue is None or self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._former.ran(0, 0.0, 0.0)  # a new loop expects no answered clients back
            self._worker = asyncio.get_running_loop().create_task(self._batch_loop(self._queue))
        return self._queue

    def arriving(self) -> contextlib.AbstractContextManager[None]:
        return self._former.arriving()

    async def prepare(self, messages: list[Message], params: SamplingParams) -> int | None:
        if self._counter is None:
            return None
        return await self._counter.prepare(messages, params)

    async def complete(self, messages: list[Message], params: SamplingParams) -> Generation:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Generation] = loop.create_future()
        job = Job(messages, params, future, loop.time())
        self._ensure_worker().put_nowait(job)
        try:
            return await future
        except BaseException:
            # A deadline, disconnect or shutdown cancels the wait (and so the future):
            # stop the row's work. A future the model failed is not a request giving up.
            gave_up = future.cancelled() or not future.done()
            if gave_up and not job.cancel.is_set():
                job.cancel.set()
                self.cancelled += 1
            raise

    async def _batch_loop(self, queue: asyncio.Queue[Job]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._former.next_batch(queue)
            started = loop.time()
            groups: dict[SamplingParams, list[Job]] = {}
            for job in jobs:
                if not job.future.done() and not job.cancel.is_set():
                    groups.setdefault(batch_key(job.params), []).append(job)
            for key, group in groups.items():
                await self._run_batch(key, group)
            ended = loop.time()
            self.busy_s += ended - started
            self._former.ran(len(jobs), started, ended)

    async def _run_batch(self, key: SamplingParams, group: list[Job]) -> None:
        seed = batch_seed([job.params.seed for job in group], key.temperature > 0)
        params = replace(key, seed=seed)
        self.batch_sizes.append(len(group))
        self.batches += 1
        self.batched += len(group)
        conversations = [job.messages for job in group]
        generate: Callable[..., list[Generation]] = self.backend.generate
        if self._cancel_generate:
            generate = functools.partial(generate, cancel=[job.cancel for job in group])
        events = {job.cancel for job in group}
        self._live |= events
        self.running += 1
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                self._executor, generate, conversations, params
            )
            if len(results) != len(group):
                raise RuntimeError(f"{len(results)} generations for {len(group)} prompts")
        except Exception:
            if len(group) > 1:
                # One bad request must not fail its companions: retry in halves until
                # the failing request runs alone (log2(n) extra runs, only on failure).
                log.warning("model failed on a batch of %d; retrying it in halves", len(group))
                half = len(group) // 2
                await self._run_batch(key, group[:half])
                await self._run_batch(key, group[half:])
                return
            log.exception("model failed on a batch of %d", len(group))
            for job in group:
                if not job.future.done():
                    job.future.set_exception(EngineError("the model failed", 500))
            return
        finally:
            self.running -= 1
            self._live -= events
        for job, result in zip(group, results, strict=True):
            if not job.future.done():
                job.future.set_result(result)

    def _producer(self, messages: list[Message], params: SamplingParams) -> Producer | None:
        """How to stream this backend: through its own ``stream`` (deltas as decoded), or
        ``None`` when it has none (then one batched generation is sent whole)."""
        backend = self.backend
        if type(backend).stream is Backend.stream:
            return None

        def produce(emit: Callable[[str], None], stop: threading.Event) -> Finish:
            parts: list[str] = []
            # With ``cancel=`` the backend stops at its next token once ``stop`` is set,
            # even when no text is coming out (a long prefill, special tokens).
            extra = {"cancel": stop} if self._cancel_stream else {}
            # Stop strings are the HTTP layer's (it holds a partial match back): a backend
            # that cut them itself would end the stream with that held prefix released.
            iterator = backend.stream(messages, replace(params, stop=()), **extra)
            try:
                for delta in iterator:
                    emit(delta)
                    parts.append(delta)
                    if stop.is_set():
                        break
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
            return self._stream_finish(messages, "".join(parts), params, len(parts))

        return produce

    def _stream_finish(
        self, messages: list[Message], text: str, params: SamplingParams, deltas: int
    ) -> Finish:
        """A stream carries no finish reason, so count tokens with the backend's tokenizer
        (re-tokenizing the text: exact for ordinary text, close for special-token tags)."""
        tokenizer = getattr(self.backend, "tokenizer", None)
        render = getattr(self.backend, "render", None)
        if tokenizer is None:
            return ("length" if deltas >= params.max_tokens else "stop", 0, deltas)
        completion = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        prompt = (
            len(tokenizer(render(messages), add_special_tokens=False)["input_ids"]) if render else 0
        )
        return ("length" if completion >= params.max_tokens else "stop", prompt, completion)

    async def stream(
        self, messages: list[Message], params: SamplingParams, info: StreamInfo
    ) -> AsyncIterator[str]:
        producer = self._producer(messages, params)
        if producer is None:
            # A backend without streaming still gets batched; it arrives in one piece.
            generation = await self.complete(messages, params)
            info.finish_reason = generation.finish_reason
            info.prompt_tokens = generation.prompt_tokens
            info.completion_tokens = generation.completion_tokens
            yield generation.full_text()
            return
        loop = asyncio.get_running_loop()
        pending: list[str] = []  # deltas the event loop has not taken yet
        lock = threading.Lock()
        ready = asyncio.Event()
        outcome: list[Finish | BaseException] = []
        stop = threading.Event()

        def emit(delta: str) -> None:  # on the model thread
            with lock:
                wake = not pending  # one wake-up per batch of deltas, not per delta
                pending.append(delta)
            if wake:
                loop.call_soon_threadsafe(ready.set)

        def produce() -> None:
            try:
                outcome.append(producer(emit, stop))
            except Exception as error:
                outcome.append(error)
            loop.call_soon_threadsafe(ready.set)

        self._live.add(stop)
        self.running += 1
        ended_itself = False
        future = loop.run_in_executor(self._executor, produce)
        try:
            while True:
                await ready.wait()
                ready.clear()
                # Deltas that piled up while the client was being served go out as one:
                # a fast model costs fewer events, a slow one still streams per token.
                with lock:
                    taken = "".join(pending)
                    pending.clear()
                    finished = bool(outcome)
                if taken:
                    yield taken
                if finished:  # every emit precedes the outcome, so nothing is left
                    break
            result = outcome[0]
            if isinstance(result, BaseException):
                log.error("model failed while streaming: %r", result)
                raise EngineError("the model failed", 500)
            info.finish_reason = result[0]
            # Read to its end, the row ended on an end-of-turn token its text does not
            # show: counted below, as a whole generation counts it (same usage either way).
            ended_itself = result[0] == "stop" and hasattr(self.backend, "tokenizer")
        finally:
            if not future.done() and not stop.is_set():
                self.cancelled += 1
            stop.set()
            future.add_done_callback(lambda _: self._stream_ended(stop))
            await asyncio.shield(future)
            if outcome and not isinstance(outcome[0], BaseException):
                # A consumer that stopped early (its stop string matched) still gets the
                # counts of what the model generated.
                _, info.prompt_tokens, info.completion_tokens = outcome[0]
                info.completion_tokens += int(ended_itself)

    def _stream_ended(self, stop: threading.Event) -> None:
        self.running -= 1
        self._live.discard(stop)

    def known_context(self) -> int | None:
        return self.context_length

    async def ready(self) -> tuple[bool, str]:
        if getattr(self.backend, "model", True) is None:
            return False, "the model is unloaded"
        if self._worker is not None and self._worker.done():
            return False, "the batching loop has stopped"
        return True, "ok"

    def cancel_all(self) -> int:
        """Stop every generation in progress (shutdown); returns how many were asked."""
        live = [event for event in self._live if not event.is_set()]
        for event in live:
            event.set()
        return len(live)

    async def aclose(self, timeout_s: float = 10.0) -> None:
        self.cancel_all()
        if self._worker is not None:
            self._worker.cancel()
        closing = asyncio.get_running_loop().run_in_executor(self._executor, self.backend.close)
        try:  # the model thread frees up at its next token; a stuck one is not waited on
            await asyncio.wait_for(asyncio.shield(closing), timeout_s)
        except asyncio.TimeoutError:
            log.error("the model thread did not stop within %.0f s of shutdown", timeout_s)
        self._executor.shutdown(wait=False)


def _accepts_cancel(method: Callable[..., Any]) -> bool:
    try:
        return "cancel" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False
