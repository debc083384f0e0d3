"""The teacher's HTTP client: an OpenAI-compatible endpoint asked defensively.

Endpoints misbehave, so every request has a timeout and is retried with exponential
backoff (and ``Retry-After``) on timeouts, connection errors, HTTP 429/5xx, unparsable
bodies and empty choices; bad requests, auth errors and unknown models fail at once.
Concurrency and the request rate are bounded. The ``openai`` client is used directly
(its own retries off) because this per-request failure classification is what the
teacher's counts are made of. Kept apart from :mod:`secreason.data.teacher` (which
judges what comes back) because transport and judgement change for different reasons.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from secreason.backends.retry import backoff_delay
from secreason.tasks.base import Sample

if TYPE_CHECKING:
    from secreason.data.teacher import TeacherConfig


class RetryableError(Exception):
    """A response worth asking again for (timeout, 429, 5xx, garbage body, no choices)."""


class FatalError(Exception):
    """A response that retrying will not fix (bad request, auth, unknown model)."""


@dataclass
class RequestResult:
    text: str | None
    finish_reason: str | None = None
    error: str | None = None
    attempts: int = 0


class _RateLimiter:
    """Spaces request starts at least ``1/rps`` apart (None: no limit)."""

    def __init__(self, rps: float | None) -> None:
        self.interval = 1.0 / rps if rps else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


def _parse_completion(response: Any, reasoning_field: str) -> tuple[str, str | None]:
    """Text and finish reason from a chat completion, or RetryableError on a bad body."""
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list):
        raise RetryableError(f"unparsable response body ({type(response).__name__})")
    if not choices:
        raise RetryableError("empty choices")
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    if not isinstance(content, str):
        raise RetryableError("choice has no message content")
    extra = getattr(message, "model_extra", None) or {}
    reasoning = None
    # vLLM's reasoning parsers name the field reasoning_content, newer releases reasoning.
    for name in dict.fromkeys((reasoning_field, "reasoning")):
        reasoning = reasoning or getattr(message, name, None) or extra.get(name)
    if not isinstance(reasoning, str):
        reasoning = None
    if reasoning and "<think>" not in content:
        content = f"<think>\n{reasoning}\n</think>\n{content}"
    return content, getattr(choices[0], "finish_reason", None)


def _classify(err: Exception) -> Exception:
    import openai

    if isinstance(err, (RetryableError, FatalError)):
        return err
    if isinstance(err, (openai.APITimeoutError, openai.APIConnectionError, asyncio.TimeoutError)):
        return RetryableError(f"timeout or connection error ({type(err).__name__})")
    if isinstance(err, openai.APIStatusError):
        code = err.status_code
        if code == 429 or code >= 500 or code == 408:
            return RetryableError(f"HTTP {code}")
        return FatalError(f"HTTP {code}: {str(err)[:200]}")
    if isinstance(err, (json.JSONDecodeError, ValueError, openai.APIResponseValidationError)):
        return RetryableError(f"unparsable response body ({type(err).__name__})")
    return RetryableError(f"{type(err).__name__}: {str(err)[:200]}")


class EndpointTeacher:
    """Sends prompts to an OpenAI-compatible endpoint with retries and limits."""

    def __init__(self, config: TeacherConfig) -> None:
        import openai

        self.config = config
        self.name = f"{config.model}@{config.fingerprint()}"
        self.client = openai.AsyncOpenAI(
            base_url=config.base_url,
            api_key=os.environ.get(config.api_key_env) or "EMPTY",
            max_retries=0,
            timeout=config.timeout_s,
        )
        self._sem = asyncio.Semaphore(config.concurrency)
        self._limiter = _RateLimiter(config.requests_per_second)

    async def request(self, sample: Sample) -> RequestResult:
        cfg = self.config
        last = "no attempt"
        previous: Exception | None = None
        for attempt in range(cfg.max_retries + 1):
            if attempt:
                # The shared policy: exponential backoff with jitter, or Retry-After.
                wait = backoff_delay(
                    attempt - 1, previous, base=cfg.backoff_base_s, cap=cfg.backoff_max_s
                )
                await asyncio.sleep(wait)
            try:
                async with self._sem:
                    await self._limiter.wait()
                    response = await asyncio.wait_for(
                        self.client.chat.completions.create(
                            model=cfg.model,
                            messages=sample.messages,  # type: ignore[arg-type]
                            temperature=cfg.temperature,
                            top_p=cfg.top_p,
                            max_tokens=cfg.max_tokens,
                            extra_body=cfg.extra_body or None,
                        ),
                        timeout=cfg.timeout_s * 1.5,
                    )
                text, finish = _parse_completion(response, cfg.reasoning_field)
                return RequestResult(text, finish, attempts=attempt + 1)
            except Exception as raw:  # noqa: BLE001 - every failure is classified below
                err = _classify(raw)
                last = str(err)
                if isinstance(err, FatalError):
                    return RequestResult(None, error=last, attempts=attempt + 1)
                previous = raw
        return RequestResult(
            None,
            error=f"gave up after {cfg.max_retries + 1} attempts: {last}",
            attempts=cfg.max_retries + 1,
        )

    async def close(self) -> None:
        await self.client.close()
