"""Any OpenAI-compatible server (vLLM, TGI, SGLang, hosted APIs) as a backend.

A served model answers one request at a time per connection but many at once overall,
so throughput comes from keeping ``concurrency`` requests in flight (a semaphore), not
from batching. The async client runs on one private event loop in a background
thread: synchronous callers (the runner, the teacher) get ``generate`` as usual, the
connection pool is reused across calls, and callers that already run an event loop do
not trip over it.

Failures that are worth retrying (connection errors, timeouts, 429, 5xx) are retried
with exponential backoff (honouring ``Retry-After``); anything else (a 400 for a bad
model name, say) fails at once with the server's message. The policy is the one in
:mod:`secreason.backends.retry`, shared with the data teacher.

Servers that split reasoning off (vLLM's reasoning parsers: ``reasoning_content``;
some others: ``reasoning``) fill :attr:`Generation.reasoning`, and
:meth:`Generation.full_text` puts it back between think tags for the contract.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any, TypeVar

from secreason.backends.base import Backend, Generation, Message, SamplingParams
from secreason.backends.retry import call_with_retries
from secreason.reasoning import THINK

T = TypeVar("T")


def _reasoning_of(message: Any) -> str | None:
    for name in ("reasoning_content", "reasoning"):
        value = getattr(message, name, None)
        if value is None:
            extra = getattr(message, "model_extra", None) or {}
            value = extra.get(name)
        if isinstance(value, str) and value:
            return value
    return None


class OpenAIBackend(Backend):
    """Chat completions against ``base_url`` with bounded concurrency and retries."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        concurrency: int = 16,
        timeout: float = 600.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        prefilled: bool = False,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model_id = model
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.concurrency = max(1, int(concurrency))
        self.batch_size = self.concurrency * 4  # how many the runner hands over at once
        self.timeout = timeout
        self.max_retries = max(0, int(max_retries))
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.prefilled = prefilled
        self.extra_body = dict(extra_body or {})
        self.retries = 0  # requests retried so far (for logs and tests)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------ event loop

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="secreason-openai", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _async_client(self) -> Any:
        if self._client is None:
            import openai

            self._client = openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=self.api_key,
                timeout=self.timeout,
                max_retries=0,
            )
        return self._client

    # -------------------------------------------------------------- requests

    def _request(self, conversation: list[Message], params: SamplingParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": conversation,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        if self.extra_body:
            body["extra_body"] = self.extra_body
        return body

    async def _one(
        self, conversation: list[Message], params: SamplingParams, gate: asyncio.Semaphore
    ) -> Generation:
        client = self._async_client()
        body = self._request(conversation, params)

        def count(_retry: int, _error: BaseException) -> None:
            self.retries += 1

        async with gate:
            try:
                response = await call_with_retries(
                    lambda: client.chat.completions.create(**body),
                    max_retries=self.max_retries,
                    base=self.backoff,
                    cap=self.max_backoff,
                    on_retry=count,
                )
            except Exception as error:
                raise RuntimeError(
                    f"{self.base_url} ({self.model_id}): request failed after "
                    f"{getattr(error, 'attempts', 1)} attempt(s): {error}"
                ) from error
        choice = response.choices[0]
        usage = getattr(response, "usage", None)
        text, reasoning = choice.message.content or "", _reasoning_of(choice.message)
        finish = choice.finish_reason or "stop"
        if reasoning is not None and not text.strip() and finish == "length":
            # The server split off reasoning that never closed: keep it unclosed, so the
            # contract counts it as such instead of seeing an empty closed answer.
            text, reasoning = THINK.open + reasoning, None
        return Generation(
            text=text,
            reasoning=reasoning,
            finish_reason=finish,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
        )

    async def agenerate(
        self, conversations: Sequence[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        """The async batch: every conversation in flight, at most ``concurrency`` at once."""
        gate = asyncio.Semaphore(self.concurrency)
        return list(
            await asyncio.gather(*(self._one(list(c), params, gate) for c in conversations))
        )

    def generate(
        self, conversations: Sequence[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        if not conversations:
            return []
        return self._run(self.agenerate(conversations, params))

    def stream(self, conversation: list[Message], params: SamplingParams) -> Iterator[str]:
        """Deltas of one streamed completion, server-split reasoning inside think tags."""
        import openai

        client = openai.OpenAI(
            base_url=self.base_url, api_key=self.api_key, timeout=self.timeout, max_retries=0
        )
        body = self._request(conversation, params)
        in_reasoning = False
        with client.chat.completions.create(stream=True, **body) as chunks:
            for chunk in chunks:
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta
                thought = _reasoning_of(delta)
                if thought:
                    if not in_reasoning:
                        in_reasoning = True
                        yield THINK.open
                    yield thought
                if delta.content:
                    if in_reasoning:
                        in_reasoning = False
                        yield THINK.close
                    yield delta.content
        # Reasoning still open at the end stays open: the contract reports it unclosed.
        client.close()

    def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        if self._client is not None:
            client, self._client = self._client, None
            asyncio.run_coroutine_threadsafe(client.close(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        loop.close()
