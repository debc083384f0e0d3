"""One retry policy for every request to a model server (backends and the data teacher).

Which failures are worth another try (connection errors, timeouts, HTTP 408/409/425/429
and 5xx) and how long to wait before it (exponential backoff with jitter, never less
than the server's ``Retry-After``, never more than a cap) used to be written twice.
The OpenAI client's own retries stay off where this is used, because callers count
attempts and report them (a run's log says how often a server failed, and the teacher
files every item under the error that ended it).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
RETRY_STATUS = frozenset({408, 409, 425, 429})


def retryable(error: BaseException) -> bool:
    """True for failures another attempt may fix (network, timeout, overload, 5xx)."""
    import openai

    if isinstance(error, (openai.APIConnectionError, openai.APITimeoutError, TimeoutError)):
        return True
    if isinstance(error, openai.APIStatusError):
        return error.status_code in RETRY_STATUS or error.status_code >= 500
    return False


def retry_after(error: BaseException | None) -> float | None:
    """Seconds the server asked to wait (HTTP ``Retry-After``), when it said so."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    header = headers.get("retry-after") if headers is not None else None
    try:
        return max(0.0, float(header)) if header else None
    except ValueError:
        return None


def backoff_delay(
    retry: int, error: BaseException | None = None, *, base: float = 1.0, cap: float = 60.0
) -> float:
    """Seconds before retry number ``retry`` (0 = the first retry)."""
    jittered = min(cap, base * 2**retry) * (0.5 + random.random() / 2)
    return min(cap, max(jittered, retry_after(error) or 0.0))


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    max_retries: int,
    base: float = 1.0,
    cap: float = 60.0,
    should_retry: Callable[[BaseException], bool] = retryable,
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> T:
    """Await ``call()``, retrying what ``should_retry`` accepts up to ``max_retries``
    times; the last error is raised with ``attempts`` (how many were made) set on it."""
    retry = 0
    while True:
        try:
            return await call()
        except Exception as error:
            if retry >= max_retries or not should_retry(error):
                error.attempts = retry + 1  # type: ignore[attr-defined]
                raise
            if on_retry is not None:
                on_retry(retry, error)
            await asyncio.sleep(backoff_delay(retry, error, base=base, cap=cap))
            retry += 1
