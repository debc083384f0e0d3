"""SendWatch: one sweeper bounds every write of an answer (see serve/awaiting.py).

A slow write is cut with the builtin TimeoutError, a prompt one never is, a cancellation
that is not the watch's own (a deadline, a disconnect, the shutdown) stays a
cancellation, and the sweeper task ends once nothing is being written."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from secreason.serve.awaiting import SendWatch


def _sender(delay_s: float) -> Any:
    async def send(message: Any) -> None:
        await asyncio.sleep(delay_s)

    return send


def test_a_write_past_the_timeout_is_cut_and_a_prompt_one_is_not() -> None:
    async def run() -> None:
        watch = SendWatch(0.2)
        await watch.send(_sender(0.0), {"type": "http.response.body"})
        with pytest.raises(TimeoutError):
            await watch.send(_sender(30.0), {"type": "http.response.body"})
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0  # the cut was taken back
        # the caller goes on normally after a cut (its record is still written)
        await watch.send(_sender(0.0), {"type": "http.response.body"})
        await asyncio.sleep(watch.tick * 2 + 0.05)
        assert watch._sweeper is not None and watch._sweeper.done()

    asyncio.run(asyncio.wait_for(run(), 20))


def test_many_writers_share_one_sweeper_and_only_the_stuck_ones_are_cut() -> None:
    async def run() -> list[str]:
        watch = SendWatch(0.3)

        async def one(delay_s: float) -> str:
            try:
                await watch.send(_sender(delay_s), {})
                return "sent"
            except TimeoutError:
                return "cut"

        sweepers = set()

        async def spy() -> None:
            while True:
                if watch._sweeper is not None and not watch._sweeper.done():
                    sweepers.add(watch._sweeper)
                await asyncio.sleep(0.01)

        spying = asyncio.ensure_future(spy())
        got = await asyncio.gather(*(one(d) for d in (0.0, 0.05, 30.0, 0.1, 30.0)))
        spying.cancel()
        assert len(sweepers) == 1
        return list(got)

    assert asyncio.run(asyncio.wait_for(run(), 20)) == ["sent", "sent", "cut", "sent", "cut"]


def test_a_cancellation_that_is_not_the_watchs_stays_a_cancellation() -> None:
    async def run() -> None:
        watch = SendWatch(30.0)
        writer = asyncio.ensure_future(watch.send(_sender(60.0), {}))
        await asyncio.sleep(0.05)
        writer.cancel()  # a deadline or a disconnect elsewhere
        with pytest.raises(asyncio.CancelledError):
            await writer
        assert not watch._began and not watch._cut

    asyncio.run(asyncio.wait_for(run(), 20))
