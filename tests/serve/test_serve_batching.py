"""Batching in the real server: concurrent clients of ``secreason serve`` share batches.

An eval at concurrency 16 is a closed loop (each client sends its next request once
answered) and sends a seed with every request. Through real HTTP, on loopback, the
server must still form a few full batches from such a load, not one per request, and
every answer must be the one the model gives alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from serve_fixtures import BENIGN_PROMPT, Server, read_metrics

pytestmark = pytest.mark.slow

CLIENTS, PER_CLIENT = 16, 2


def _closed_loop(base_url: str, seeded: bool) -> list[str]:
    """``CLIENTS`` clients, each sending ``PER_CLIENT`` greedy requests one after another
    (with a different seed each when ``seeded``); the answers in request order."""
    client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="none", max_retries=0)

    async def one(index: int) -> str:
        extra: dict[str, Any] = {"seed": index} if seeded else {}
        response = await client.chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": BENIGN_PROMPT}],
            max_tokens=40,
            temperature=0,
            **extra,
        )
        return response.choices[0].message.content or ""

    async def worker(k: int) -> list[str]:
        return [await one(k * PER_CLIENT + i) for i in range(PER_CLIENT)]

    async def run() -> list[str]:
        try:
            answers = await asyncio.gather(*(worker(k) for k in range(CLIENTS)))
        finally:
            await client.close()
        return [a for per_worker in answers for a in per_worker]

    return asyncio.run(run())


@pytest.mark.parametrize("seeded", [True, False], ids=["seed-per-request", "no-seed"])
def test_concurrent_clients_share_batches(
    start_server: Callable[..., Server], chat_model_dir: Path, seeded: bool
) -> None:
    server = start_server(
        {
            # A generous refill window: the test checks batching, not the machine's speed.
            "model": {"path": str(chat_model_dir), "served_name": "tiny", "batch_refill_wait": 2},
            "system_prompt": {"mode": "off"},
        },
        f"batching-{'seeded' if seeded else 'plain'}",
    )
    alone = _answer_alone(server.base_url)
    before = read_metrics(server)
    answers = _closed_loop(server.base_url, seeded)
    after = read_metrics(server)

    requests = CLIENTS * PER_CLIENT
    assert answers == [alone] * requests, "batching changed a greedy answer"
    batches = after["batches"] - before["batches"]
    sizes = after["batch_sizes"][-batches:]
    assert after["batched_requests"] - before["batched_requests"] == requests
    # Seeds once split greedy requests into batches of one; a closed loop once
    # alternated 15, 1, 15, 1. Two rounds of 16 clients fit in a handful of batches.
    assert batches <= requests // 4, sizes
    assert max(sizes) == CLIENTS, sizes
    assert after["model_busy_s"] > before["model_busy_s"]


def _answer_alone(base_url: str) -> str:
    """The answer to the same request sent alone."""
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="none", max_retries=0)
    response = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": BENIGN_PROMPT}],
        max_tokens=40,
        temperature=0,
    )
    return response.choices[0].message.content or ""
