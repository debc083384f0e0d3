"""Bounds on the server's awaits: a deadline, the client still being there, and a
client that keeps taking the bytes of its answer.

A 504 or a closed connection must stop the work, not only the answer: a generation
nobody will read would otherwise hold the single model thread (or an upstream slot)
for everyone queued behind it. Both helpers cancel the awaited work itself; the
engines turn that cancellation into a stopped row or a closed upstream stream.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.requests import Request

T = TypeVar("T")


class ClientGone(Exception):
    """The client hung up before its answer was ready."""

    def __init__(self) -> None:
        super().__init__("client disconnected")


async def unless_disconnected(request: Request, awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` unless the client disconnects first; then it is cancelled
    (a generation nobody will read stops) and :class:`ClientGone` is raised.

    One watcher task per request (the work stays in the caller's task): the watcher
    cancels the caller when ``http.disconnect`` arrives."""
    caller = asyncio.current_task()
    assert caller is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone = True
        caller.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await awaitable
    except asyncio.CancelledError:
        if not gone:
            raise  # a deadline or the shutdown, not the client
        if sys.version_info >= (3, 11):
            caller.uncancel()  # the cancellation was ours: it ends here
        raise ClientGone() from None
    finally:
        watcher.cancel()


async def before(deadline: float, awaitable: Awaitable[T]) -> T:
    """Await with a deadline (perf_counter time); cheap on 3.11+, no task per call.
    Raises the builtin :class:`TimeoutError`, which callers catch, on every version."""
    if sys.version_info >= (3, 11):
        loop = asyncio.get_running_loop()
        async with asyncio.timeout_at(loop.time() + deadline - time.perf_counter()):
            return await awaitable
    try:
        return await asyncio.wait_for(awaitable, deadline - time.perf_counter())
    except asyncio.TimeoutError:  # not the builtin before 3.11: a deadline would be a 500
        raise TimeoutError() from None


class SendWatch:
    """Bounds each write of an answer by ``timeout_s``: a client that stops taking bytes
    (a zero TCP window) must not hold its slot, or an upstream stream, for as long as it
    likes. One sweeper task serves every connection, instead of a timer per write: a
    timer per SSE chunk cost about a quarter of the saturated streaming throughput
    (``benchmarks/serve_overhead.py``). A write is cut between ``timeout_s`` and
    ``timeout_s + tick`` after it began; the sweeper ends when nothing is being written."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.tick = min(1.0, timeout_s / 2)
        self._began: dict[asyncio.Task[Any], float] = {}
        self._cut: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def send(self, send: Callable[[Any], Awaitable[None]], message: Any) -> None:
        """``send(message)``, or the builtin :class:`TimeoutError` once it took too long."""
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        self._began[task] = loop.time()
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = loop.create_task(self._sweep())
        try:
            await send(message)
        except asyncio.CancelledError:
            if task not in self._cut:
                raise  # a deadline, a disconnect or the shutdown: not ours
            self._cut.discard(task)
            if sys.version_info >= (3, 11):
                task.uncancel()
            raise TimeoutError() from None
        finally:
            self._began.pop(task, None)

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while self._began:
            await asyncio.sleep(self.tick)
            now = loop.time()
            for task, began in list(self._began.items()):
                if now - began >= self.timeout_s and task not in self._cut:
                    self._cut.add(task)
                    task.cancel()
