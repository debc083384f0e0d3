"""How waiting requests become batches: which may share one, and when to start it.

A synchronous backend runs one ``generate`` call at a time, so throughput comes from
what shares that call. Requests that arrive while the model is busy wait in a queue and
form the next batch (up to ``max_batch_size``, grouped by :func:`batch_key`). Taking only
what waits at the instant the model frees up starves closed-loop clients (an eval at
concurrency N sends its next request when an answer comes back): a batch of 15 finishes
while one request waits, that one runs alone, and the 15 clients that were just answered
queue behind it, so batches alternate 15, 1, 15, 1. Hence the refill rule: after a batch
of B requests, while fewer than B + (those already waiting) are queued, the former waits
for the answered clients to come back, at most ``refill_wait`` times the last batch's
model time counted from when it ended. A lone client costs nothing (B = 1 and it is the
one that returns), an idle server waits for nothing, and the added latency is bounded by
a fraction of a batch. Before any batch starts, the event loop is also allowed to settle
(:meth:`BatchFormer._settle`), so that a burst of requests that arrived together is not
split into 1 + the rest, and requests the HTTP layer is still reading, or a client is
still sending as part of a burst, are waited for (:meth:`BatchFormer._await_arrivals`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

from secreason.backends.base import Generation, Message, SamplingParams

# Event-loop steps without a new request before a batch is committed (see BatchFormer._settle): more
# than the few awaits a request takes from the socket to the queue.
SETTLE_STEPS = 8


@dataclass
class Job:
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


class BatchFormer:
    """Takes the next batch from a queue of :class:`Job` by the rules above."""

    def __init__(
        self,
        *,
        max_batch_size: int = 16,
        batch_wait_ms: float = 0.0,
        refill_wait: float = 0.2,
        arrival_wait_ms: float = 50.0,
        burst_gap_ms: float = 20.0,
    ) -> None:
        self.max_batch_size = max(1, max_batch_size)
        self.batch_wait_s = batch_wait_ms / 1000
        self.refill_wait = max(0.0, refill_wait)
        self.arrival_wait_s = max(0.0, arrival_wait_ms) / 1000
        self.burst_gap_s = max(0.0, burst_gap_ms) / 1000
        self._arriving = 0  # requests the HTTP layer holds that are not queued yet
        self._answered = 0  # the last batch's requests, expected back from closed loops
        self._refill_until = 0.0  # when to stop waiting for them

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """Held while a request is read, parsed and screened (see ``Engine.arriving``)."""
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1

    async def next_batch(self, queue: asyncio.Queue[Job]) -> list[Job]:
        """Wait for the first request, then gather the batch it starts."""
        return await self._collect(queue, queue.qsize() + self._answered, self._refill_until)

    def ran(self, size: int, started: float, ended: float) -> None:
        """Record a batch of ``size`` that held the model from ``started`` to ``ended``."""
        self._answered = size
        self._refill_until = ended + self.refill_wait * (ended - started)

    async def _collect(
        self, queue: asyncio.Queue[Job], expected: int, deadline: float
    ) -> list[Job]:
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

    async def _await_arrivals(self, queue: asyncio.Queue[Job], jobs: list[Job]) -> None:
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

    async def _settle(self, queue: asyncio.Queue[Job], taken: int) -> None:
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
