"""Two bounds on any await of the model: a deadline, and the client still being there.

A 504 or a closed connection must stop the work, not only the answer: a generation
nobody will read would otherwise hold the single model thread (or an upstream slot)
for everyone queued behind it. Both helpers cancel the awaited work itself; the
engines turn that cancellation into a stopped row or a closed upstream stream.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable
from typing import TypeVar

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
