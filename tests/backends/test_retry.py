"""The shared retry policy: which failures retry, how long to wait, how many attempts."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from secreason.backends.retry import backoff_delay, call_with_retries, retry_after, retryable

REQUEST = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")


def status(code: int, retry_after_header: str | None = None) -> openai.APIStatusError:
    headers = {"retry-after": retry_after_header} if retry_after_header is not None else {}
    response = httpx.Response(code, headers=headers, request=REQUEST)
    return openai.APIStatusError(f"HTTP {code}", response=response, body=None)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (status(429), True),
        (status(500), True),
        (status(503), True),
        (status(408), True),
        (status(400), False),  # a bad request stays bad
        (status(401), False),
        (status(404), False),
        (openai.APIConnectionError(request=REQUEST), True),
        (openai.APITimeoutError(request=REQUEST), True),
        (ValueError("bug"), False),
    ],
    ids=["429", "500", "503", "408", "400", "401", "404", "connection", "timeout", "bug"],
)
def test_what_is_retried(error: BaseException, expected: bool) -> None:
    assert retryable(error) is expected


@pytest.mark.parametrize(
    ("retry", "header", "low", "high"),
    [
        (0, None, 0.5, 1.0),  # base 1 s, jittered to half..full
        (3, None, 4.0, 8.0),
        (10, None, 30.0, 60.0),  # capped
        (0, "7", 7.0, 7.0),  # the server's Retry-After wins when longer
        (0, "600", 60.0, 60.0),  # ...but never past the cap
        (0, "soon", 0.5, 1.0),  # an unreadable header is ignored
    ],
)
def test_backoff_delay(retry: int, header: str | None, low: float, high: float) -> None:
    error = status(429, header) if header is not None else None
    for _ in range(20):
        assert low <= backoff_delay(retry, error, base=1.0, cap=60.0) <= high


def test_retry_after_reads_only_real_headers() -> None:
    assert retry_after(status(429, "2.5")) == 2.5
    assert retry_after(status(429)) is None and retry_after(None) is None


def test_call_with_retries_counts_attempts_and_stops_on_fatal() -> None:
    calls: list[int] = []
    retried: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise status(503, "0")
        return "ok"

    result = asyncio.run(
        call_with_retries(flaky, max_retries=5, base=0.001, on_retry=lambda n, e: retried.append(n))
    )
    assert result == "ok" and len(calls) == 3 and retried == [0, 1]

    async def fatal() -> str:
        raise status(400)

    with pytest.raises(openai.APIStatusError) as err:
        asyncio.run(call_with_retries(fatal, max_retries=5, base=0.001))
    assert err.value.attempts == 1  # type: ignore[attr-defined]

    async def down() -> str:
        raise openai.APIConnectionError(request=REQUEST)

    with pytest.raises(openai.APIConnectionError) as err2:
        asyncio.run(call_with_retries(down, max_retries=2, base=0.001))
    assert err2.value.attempts == 3  # type: ignore[attr-defined]
