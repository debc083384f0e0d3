"""An OpenAI-compatible server behind the engine interface: the scaling path.

``vllm serve``, TGI or another secreason does the batching (continuous, on a GPU); this
engine relays requests to it with an async HTTP client and its SSE stream back. When the
upstream splits reasoning itself (``reasoning_content``), the text is put back inside
think tags so that this server's reasoning contract reads every engine the same way.
Upstream failures become :class:`EngineError` with a generic message for the client and
the detail (which may hold the upstream's internals) for the audit.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from secreason.backends.base import Generation, Message, SamplingParams
from secreason.reasoning import THINK
from secreason.serve.engine_base import Engine, EngineError, StreamInfo
from secreason.serve.prompt_fit import PromptCounter
from secreason.serve.sanitize import Neutraliser, breaker_for, control_strings
from secreason.serve.upstream_fit import UpstreamFit

log = logging.getLogger("secreason.serve")


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
    turn (round robin), each replica with its own connection pool. ``context_length``
    and ``counter`` (a local tokenizer) feed the admission check of :mod:`.upstream_fit`.
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
        context_length: int | None = None,
        counter: PromptCounter | None = None,
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
        # Prompts that cannot fit are refused here (see :mod:`.upstream_fit`); with the
        # served model's tokenizer at hand, its own control strings are broken too.
        self.fit = UpstreamFit(model, context_length=context_length, counter=counter)
        if counter is not None:
            tokenizer = counter.tokenizer
            self.neutralise = Neutraliser(control_strings(tokenizer), breaker_for(tokenizer))

    def known_context(self) -> int | None:
        """Configured, or learnt from the replicas (after the first request)."""
        return self.fit.configured if self.fit.configured is not None else self.fit.learnt

    async def prepare(self, messages: list[Message], params: SamplingParams) -> int | None:
        return await self.fit.prepare(self._clients, messages, params)

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
        """Every replica answers ``GET models`` (the cheapest call the API has), all
        asked at once: one after another, a few silent replicas would outlast the
        readiness check's own bound and leave it naming none.

        ``/ready`` needs no key, so the answer names a replica by its number, never by
        its address (the log has the address)."""

        async def problem(client: httpx.AsyncClient) -> str | None:
            try:
                response = await client.get("models", timeout=timeout_s)
            except httpx.HTTPError as error:
                return f"unreachable: {type(error).__name__}"
            return None if response.status_code == 200 else f"answered {response.status_code}"

        problems = await asyncio.gather(*(problem(client) for client in self._clients))
        for number, (client, found) in enumerate(zip(self._clients, problems, strict=True), 1):
            if found is not None:
                log.warning("upstream %s %s", client.base_url, found)
                return False, f"upstream {number} of {len(self._clients)} {found}"
        return True, "ok"

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
