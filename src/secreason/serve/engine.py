"""Where completions come from: a local :class:`Backend` with batching, or an upstream.

The HTTP layer only ever awaits an :class:`Engine`. Two kinds exist:

* :class:`LocalEngine` wraps any :class:`~secreason.backends.base.Backend` (the
  transformers backend, or the benchmark's fixed-text backend). Backends are
  synchronous and batch-oriented, so concurrent requests are queued and handed to
  ``Backend.generate`` together (dynamic batching: what waits while the model is busy
  forms the next batch, grouped by sampling parameters). All model work runs on one
  worker thread, so the event loop never blocks on the model. See :class:`LocalEngine`
  for the rules that keep those batches full (settle, refill, one batch across seeds).
* :class:`UpstreamEngine` talks to an OpenAI-compatible server (``vllm serve``, TGI,
  another secreason) with an async HTTP client, relaying its SSE stream. When the
  upstream splits reasoning itself (``reasoning_content``), the text is put back inside
  think tags so that this server's reasoning contract reads every engine the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import inspect
import itertools
import json
import logging
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from secreason.backends.base import Backend, Generation, Message, SamplingParams
from secreason.reasoning import THINK
from secreason.serve.sanitize import (
    GENERIC_NEUTRALISER,
    Neutraliser,
    breaker_for,
    control_strings,
)

log = logging.getLogger("secreason.serve")


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

    async def ready(self) -> tuple[bool, str]:
        """Whether a request sent now can be answered, and why not (for ``/ready``)."""
        return True, "ok"

    async def aclose(self) -> None:  # noqa: B027  (optional hook)
        pass


Finish = tuple[str, int, int]  # finish_reason, prompt tokens, completion tokens
Producer = Callable[[Callable[[str], None], threading.Event], Finish]


# Event-loop steps without a new request before a batch is committed (see _settle): more
# than the few awaits a request takes from the socket to the queue.
SETTLE_STEPS = 8


@dataclass
class _Job:
    messages: list[Message]
    params: SamplingParams
    future: asyncio.Future[Generation]
    queued_at: float  # event-loop time it reached the queue
    # Set when the request no longer wants its generation (deadline, disconnect,
    # shutdown): the backend stops that row at its next token.
    cancel: threading.Event = field(default_factory=threading.Event)


def batch_key(params: SamplingParams) -> SamplingParams:
    """What requests must share to run as one batch: every sampling parameter but the seed.

    Greedy decoding never draws from the random stream, so its seed changes nothing.
    With sampling, the rows of one ``generate`` call draw from one shared stream, so a
    row's sample depends on its companions even when every seed agrees: splitting
    batches by seed would cost throughput without making a row reproducible. What a
    seed does mean is in :func:`batch_seed`.
    """
    return replace(params, seed=None)


def batch_seed(seeds: Sequence[int | None], sampling: bool) -> int | None:
    """The seed a batch runs with, from its requests' seeds in arrival order.

    Greedy: none (nothing is drawn). Sampling: the shared seed when all agree, so a
    request served alone (or with same-seed companions, as an eval trial sends them)
    replays exactly what local generation with that seed gives; mixed seeds derive one
    seed from all of them, so the same batch replays the same samples. Under concurrent
    load a seed is thus best effort, as OpenAI documents for its own ``seed``.
    """
    if not sampling or all(seed is None for seed in seeds):
        return None
    if len(set(seeds)) == 1:
        return seeds[0]
    digest = hashlib.blake2b(repr(tuple(seeds)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % (1 << 31)


class LocalEngine(Engine):
    """Dynamic batching in front of a synchronous backend.

    Requests that arrive while the model is busy wait in a queue and form the next
    batch (up to ``max_batch_size``, grouped by :func:`batch_key`). Taking only what
    waits at the instant the model frees up starves closed-loop clients (an eval at
    concurrency N sends its next request when an answer comes back): a batch of 15
    finishes while one request waits, that one runs alone, and the 15 clients that were
    just answered queue behind it, so batches alternate 15, 1, 15, 1. Hence the refill
    rule: after a batch of B requests, while fewer than B + (those already waiting) are
    queued, the loop waits for the answered clients to come back, at most
    ``refill_wait`` times the last batch's model time counted from when it ended. A
    lone client costs nothing (B = 1 and it is the one that returns), an idle server
    waits for nothing, and the added latency is bounded by a fraction of a batch.
    Before any batch starts, the event loop is also allowed to settle (:meth:`_settle`),
    so that a burst of requests that arrived together is not split into 1 + the rest,
    and requests the HTTP layer is still reading, or a client is still sending as part of
    a burst, are waited for (:meth:`_await_arrivals`).
    """

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
        self._counter: Any = None  # a private tokenizer copy (the model thread uses its own)
        self.context_length: int | None = None
        if tokenizer is not None:
            self.neutralise = Neutraliser(control_strings(tokenizer), breaker_for(tokenizer))
            self.context_length = _context_length(backend)
        self.max_batch_size = max(1, max_batch_size)
        self.batch_wait_s = batch_wait_ms / 1000
        self.refill_wait = max(0.0, refill_wait)
        self.arrival_wait_s = max(0.0, arrival_wait_ms) / 1000
        self.burst_gap_s = max(0.0, burst_gap_ms) / 1000
        self._arriving = 0  # requests the HTTP layer holds that are not queued yet
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="secreason-model")
        self._queue: asyncio.Queue[_Job] | None = None
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

    def _ensure_worker(self) -> asyncio.Queue[_Job]:
        if self._queue is None or self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._batch_loop(self._queue))
        return self._queue

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1

    async def prepare(self, messages: list[Message], params: SamplingParams) -> int | None:
        render = getattr(self.backend, "render", None)
        if render is None or getattr(self.backend, "tokenizer", None) is None:
            return None
        tokens = await asyncio.to_thread(self._count, render, messages)
        if self.context_length and tokens + params.max_tokens > self.context_length:
            raise EngineError(
                f"the prompt is {tokens} tokens; with max_tokens={params.max_tokens} it "
                f"exceeds the model's context of {self.context_length} tokens",
                400,
            )
        return tokens

    def _count(self, render: Callable[[list[Message]], str], messages: list[Message]) -> int:
        try:
            prompt = render(messages)
        except Exception as error:  # e.g. a template that requires alternating roles
            raise EngineError(
                f"the model's chat template refused this conversation: {error}"[:500], 400
            ) from None
        if self._counter is None:
            import copy

            tokenizer = self.backend.tokenizer  # type: ignore[attr-defined]
            try:
                self._counter = copy.deepcopy(tokenizer)
            except Exception:  # a tokenizer that cannot be copied is shared (read only)
                self._counter = tokenizer
        try:
            return len(self._counter(prompt, add_special_tokens=False)["input_ids"])
        except Exception as error:  # refused here, it cannot fail a batch later
            raise EngineError(f"the prompt could not be tokenised: {error}"[:300], 400) from None

    async def complete(self, messages: list[Message], params: SamplingParams) -> Generation:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Generation] = loop.create_future()
        job = _Job(messages, params, future, loop.time())
        self._ensure_worker().put_nowait(job)
        try:
            return await future
        except BaseException:  # deadline, disconnect or shutdown: stop the row's work
            if not job.cancel.is_set():
                job.cancel.set()
                self.cancelled += 1
            raise

    async def _collect(
        self, queue: asyncio.Queue[_Job], expected: int, deadline: float
    ) -> list[_Job]:
        """The next batch: the first request (waited for without limit), everything else
        queued, and, until ``deadline``, requests still expected from answered clients."""
        loop = asyncio.get_running_loop()
        jobs = [await queue.get()]
        if self.batch_wait_s:
            await asyncio.sleep(self.batch_wait_s)
        await self._settle(queue, len(jobs))
        target = min(self.max_batch_size, expected)
        while len(jobs) < self.max_batch_size:
            if not queue.empty():
                jobs.append(queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if len(jobs) >= target or remaining <= 0:
                break
            try:
                jobs.append(await asyncio.wait_for(queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        await self._await_arrivals(queue, jobs)
        return jobs

    async def _await_arrivals(self, queue: asyncio.Queue[_Job], jobs: list[_Job]) -> None:
        """Add to ``jobs`` the requests the server has already accepted but not yet queued.

        A client's burst reaches the queue over milliseconds (each request is read,
        parsed and screened in turn), longer than :meth:`_settle` covers, so without
        this the first batch of a burst would start with whatever was parsed first. A
        lone client costs nothing: its request has left :meth:`arriving` when it is
        queued. The client side of a burst is paced too: a client spends a few
        milliseconds on each request (3-4 ms for the openai client here), so the next one
        may not have reached the server yet. Hence a batch holding two or more requests,
        the last queued under ``burst_gap_ms`` ago, waits until that gap has passed with
        nothing new. A lone request never waits for it, nor does a batch whose last
        request came in longer ago. Everything is bounded by ``arrival_wait_ms`` (a slow
        input guard is not waited for).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.arrival_wait_s
        while len(jobs) < self.max_batch_size:
            if not queue.empty():
                jobs.append(queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if not self._arriving or remaining <= 0:
                # One more settle: a request that just left arriving() is a step or
                # two from the queue.
                await self._settle(queue, len(jobs))
                if not queue.empty():
                    continue
                # The queue is FIFO: the last job taken is the one that came in last.
                wait = min(jobs[-1].queued_at + self.burst_gap_s, deadline) - loop.time()
                if len(jobs) < 2 or wait <= 0:
                    return
                try:
                    jobs.append(await asyncio.wait_for(queue.get(), wait))
                except asyncio.TimeoutError:
                    return
                continue
            # Poll: a request may also leave arriving() refused, never to be queued.
            with contextlib.suppress(asyncio.TimeoutError):
                jobs.append(await asyncio.wait_for(queue.get(), min(remaining, 0.002)))

    async def _settle(self, queue: asyncio.Queue[_Job], taken: int) -> None:
        """Let the event loop finish what it already holds before the model is committed.

        Requests that reached the socket together (a client's burst of N) are parsed one
        event-loop step at a time, so the first one alone would otherwise start a batch
        while the rest are a few steps behind. Yielding until the queue stops growing for
        :data:`SETTLE_STEPS` steps costs microseconds when nothing else is pending (a
        lone client), and never waits on a clock.
        """
        quiet = 0
        while quiet < SETTLE_STEPS and taken + queue.qsize() < self.max_batch_size:
            before = queue.qsize()
            await asyncio.sleep(0)
            quiet = quiet + 1 if queue.qsize() == before else 0

    async def _batch_loop(self, queue: asyncio.Queue[_Job]) -> None:
        loop = asyncio.get_running_loop()
        answered, deadline = 0, 0.0  # the last batch's requests; when to stop refilling
        while True:
            jobs = await self._collect(queue, queue.qsize() + answered, deadline)
            started = loop.time()
            groups: dict[SamplingParams, list[_Job]] = {}
            for job in jobs:
                if not job.future.done() and not job.cancel.is_set():
                    groups.setdefault(batch_key(job.params), []).append(job)
            for key, group in groups.items():
                await self._run_batch(key, group)
            ended = loop.time()
            self.busy_s += ended - started
            answered, deadline = len(jobs), ended + self.refill_wait * (ended - started)

    async def _run_batch(self, key: SamplingParams, group: list[_Job]) -> None:
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
            info.finish_reason, info.prompt_tokens, info.completion_tokens = result
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

    def _stream_ended(self, stop: threading.Event) -> None:
        self.running -= 1
        self._live.discard(stop)

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


def _context_length(backend: Any) -> int | None:
    """Positions the model can attend to (its config), else the tokenizer's own limit."""
    config = getattr(getattr(backend, "model", None), "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(getattr(backend, "tokenizer", None), "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 1_000_000 else None


#: Upstream statuses the client is shown (with the upstream's message): what it asked
#: for was refused. Every other non-200 is a generic 502 (the detail goes to the audit).
CLIENT_ERRORS = {400: 400, 413: 413, 422: 400, 429: 429}


def _text(value: Any) -> str:
    """An upstream text field: a string or null, anything else is malformed."""
    if value is None or isinstance(value, str):
        return value or ""
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _count(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"expected a token count, got {value!r}"[:100])
    return value


def _stop_at(text: str, stops: Sequence[str]) -> int | None:
    """Where the first stop string in ``text`` starts (None: no stop string in it)."""
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(hits) if hits else None


class UpstreamEngine(Engine):
    """A client of OpenAI-compatible servers: the scaling path (e.g. ``vllm serve``).

    ``base_url`` may list several replicas separated by commas; requests go to them in
    turn (round robin), each replica with its own connection pool.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 600.0,
        prefilled: bool = False,
        max_connections: int = 256,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        self.model_id = model
        self.prefilled = prefilled
        self.extra_body = dict(extra_body or {})
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._clients = [
            httpx.AsyncClient(
                base_url=url.strip().rstrip("/") + "/",
                headers=headers,
                timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
                limits=httpx.Limits(max_connections=max_connections),
            )
            for url in base_url.split(",")
            if url.strip()
        ]
        self._turn = itertools.cycle(self._clients)

    @property
    def _client(self) -> httpx.AsyncClient:
        return next(self._turn)

    def _body(
        self, messages: list[Message], params: SamplingParams, stream: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            **self.extra_body,
            "model": self.model_id,
            "messages": messages,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "stream": stream,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    @staticmethod
    def _raise_for(response: httpx.Response, text: str) -> None:
        if response.status_code != 200:
            try:
                detail = json.loads(text)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                detail = text[:200]
            message = f"upstream answered {response.status_code}: {detail}"
            if response.status_code in CLIENT_ERRORS:
                # A complaint about the request (too long, too many) is the client's to
                # see; 401/403/404 say this server is misconfigured, not the client.
                raise EngineError(message, CLIENT_ERRORS[response.status_code])
            # A server error's text may hold the upstream's internals (paths, stack
            # traces): the client gets a generic message, the audit the detail.
            raise EngineError("the upstream model failed", 502, detail=message)

    async def complete(self, messages: list[Message], params: SamplingParams) -> Generation:
        try:
            response = await self._client.post(
                "chat/completions", json=self._body(messages, params, False)
            )
        except httpx.TimeoutException:
            raise EngineError("upstream timed out", 504) from None
        except httpx.HTTPError as error:
            raise EngineError(f"upstream unreachable: {type(error).__name__}") from None
        self._raise_for(response, response.text)
        try:
            data = response.json()
            choice = data["choices"][0]
            message = choice["message"]
            usage = data.get("usage") or {}
            reasoning = _text(message.get("reasoning_content") or message.get("reasoning"))
            text, finish = _text(message.get("content")), _text(choice.get("finish_reason"))
            # An upstream that ignores ``stop`` is cut here, as a stream is (reasoning
            # comes first: a stop string in it ends the answer too).
            for stops in (params.stop,) if params.stop else ():
                cut = _stop_at(reasoning, stops)
                if cut is not None:
                    reasoning, text, finish = reasoning[:cut], "", "stop"
                elif (cut := _stop_at(text, stops)) is not None:
                    text, finish = text[:cut], "stop"
            return Generation(
                text=text,
                reasoning=reasoning or None,
                finish_reason=finish or "stop",
                prompt_tokens=_count(usage.get("prompt_tokens")),
                completion_tokens=_count(usage.get("completion_tokens")),
            )
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
            detail = f"upstream sent a malformed completion: {type(error).__name__}: {error}"
            raise EngineError("upstream sent a malformed completion", detail=detail[:500]) from None

    async def stream(
        self, messages: list[Message], params: SamplingParams, info: StreamInfo
    ) -> AsyncIterator[str]:
        in_reasoning = False
        ended = False
        try:
            async with self._client.stream(
                "POST", "chat/completions", json=self._body(messages, params, True)
            ) as response:
                if response.status_code != 200:
                    self._raise_for(response, (await response.aread()).decode(errors="replace"))
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        ended = True
                        break
                    chunk = json.loads(payload)
                    if "error" in chunk:
                        raise EngineError(
                            "the upstream model failed mid-stream",
                            detail=f"upstream stream error: {chunk['error']}"[:2000],
                        )
                    if chunk.get("usage"):
                        info.prompt_tokens = _count(chunk["usage"].get("prompt_tokens"))
                        info.completion_tokens = _count(chunk["usage"].get("completion_tokens"))
                    for choice in chunk.get("choices") or []:
                        delta = choice.get("delta") or {}
                        thought = _text(delta.get("reasoning_content") or delta.get("reasoning"))
                        content = _text(delta.get("content"))
                        if thought:
                            if not in_reasoning:
                                in_reasoning = True
                                yield THINK.open
                            yield thought
                        if content:
                            if in_reasoning:
                                in_reasoning = False
                                yield THINK.close
                            yield content
                        if choice.get("finish_reason"):
                            info.finish_reason = _text(choice["finish_reason"])
                            ended = True
                if not ended:  # cut off (or not SSE at all): not a complete answer
                    raise EngineError(
                        "the upstream model failed mid-stream",
                        detail="upstream stream ended without [DONE] or a finish_reason",
                    )
        except httpx.TimeoutException:
            raise EngineError("upstream timed out", 504) from None
        except httpx.HTTPError as error:
            raise EngineError(f"upstream unreachable: {type(error).__name__}") from None
        except (ValueError, KeyError, TypeError, AttributeError):
            raise EngineError("upstream sent a malformed stream") from None

    async def ready(self, timeout_s: float = 2.0) -> tuple[bool, str]:
        """Every replica answers ``GET models`` (the cheapest call the API has).

        ``/ready`` needs no key, so the answer names a replica by its number, never by
        its address (the log has the address)."""
        for number, client in enumerate(self._clients, 1):
            try:
                response = await client.get("models", timeout=timeout_s)
            except httpx.HTTPError as error:
                problem = f"unreachable: {type(error).__name__}"
            else:
                if response.status_code == 200:
                    continue
                problem = f"answered {response.status_code}"
            log.warning("upstream %s %s", client.base_url, problem)
            return False, f"upstream {number} of {len(self._clients)} {problem}"
        return True, "ok"

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
