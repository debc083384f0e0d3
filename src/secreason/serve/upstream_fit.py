"""Refusing, before the upstream is called, a prompt its context cannot hold.

Without this, a too-long prompt costs an upstream round trip and comes back as the
upstream's own error (vLLM's 400, worded its way, or a 5xx from a server that fails
on it). The local engine refuses it on arrival with one clear 400; so does this, by the
same rule: prompt tokens + ``max_tokens`` over the context.

* The context is configured (``model.upstream_context``) or learnt from the upstream:
  vLLM's ``GET /v1/models`` reports ``max_model_len`` for each served name. A server
  that reports none (OpenAI, TGI) leaves the check to it. Until every replica has
  answered, they are asked again at most every ``probe_every_s``, so a replica that was
  down at the first request is learnt once it is up; the smallest context wins.
* Prompt tokens are counted with a local tokenizer and chat template
  (``model.upstream_tokenizer``; by default the model folder when ``model.path`` is one;
  loading it imports transformers, and torch with it, which a proxy otherwise never does).
  Without one, only ``max_tokens`` is checked (a prompt is at least one token): an
  estimate from characters cannot be made safe both ways, since a BPE token spans from
  one byte to well over a hundred (runs of spaces, repeated symbols), so any ratio either
  refuses prompts that would fit or misses ones that would not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from secreason.backends.base import Message, SamplingParams
from secreason.serve.engine_base import EngineError
from secreason.serve.prompt_fit import PromptCounter, load_counter

log = logging.getLogger("secreason.serve")


def reported_context(payload: Any, model_id: str) -> int | None:
    """``max_model_len`` of ``model_id`` in a ``GET /v1/models`` answer (None: absent)."""
    entries = payload.get("data") if isinstance(payload, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("id") == model_id:
            value = entry.get("max_model_len")
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


class UpstreamFit:
    """The admission check of :class:`~secreason.serve.upstream.UpstreamEngine`."""

    def __init__(
        self,
        model_id: str,
        *,
        context_length: int | None = None,
        counter: PromptCounter | None = None,
        probe_every_s: float = 60.0,
        probe_timeout_s: float = 2.0,
    ) -> None:
        self.model_id = model_id
        self.configured = context_length
        self.learnt: int | None = None
        self.counter = counter
        self.probe_every_s = probe_every_s
        self.probe_timeout_s = probe_timeout_s
        self._probed_at: float | None = None
        self._settled = False  # every replica has answered: nothing more to learn
        self._lock: asyncio.Lock | None = None

    async def context(self, clients: Sequence[httpx.AsyncClient]) -> int | None:
        """The context in tokens: configured, learnt, or asked for now (None: unknown)."""
        if self.configured is not None:
            return self.configured
        if self._settled:
            return self.learnt
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one probe for a burst of first requests
            now = time.monotonic()
            due = self._probed_at is None or now - self._probed_at >= self.probe_every_s
            if not self._settled and due:
                self._probed_at = now
                found, self._settled = await self._probe(clients)
                if found is not None:
                    self.learnt = found if self.learnt is None else min(self.learnt, found)
        return self.learnt

    async def _probe(self, clients: Sequence[httpx.AsyncClient]) -> tuple[int | None, bool]:
        """The smallest context the replicas report, and whether every one answered
        (then there is nothing more to learn)."""
        found, answered = [], 0
        for client in clients:
            try:
                response = await client.get("models", timeout=self.probe_timeout_s)
                response.raise_for_status()
                value = reported_context(response.json(), self.model_id)
            except (httpx.HTTPError, ValueError) as error:
                log.warning("upstream %s: no context learnt (%r)", client.base_url, error)
                continue
            answered += 1
            if value is not None:
                found.append(value)
        if found:
            log.info("upstream context: %d tokens (GET models)", min(found))
        return (min(found) if found else None), answered == len(clients)

    async def prepare(
        self,
        clients: Sequence[httpx.AsyncClient],
        messages: list[Message],
        params: SamplingParams,
    ) -> int | None:
        context = await self.context(clients)
        # Without a tokenizer only max_tokens is checked: a prompt is at least one token.
        if self.counter is None and context is not None and params.max_tokens >= context:
            raise EngineError(
                f"max_tokens={params.max_tokens} leaves no room for a prompt in the "
                f"model's context of {context} tokens",
                400,
            )
        if self.counter is None:
            return None
        self.counter.context_length = context
        return await self.counter.prepare(messages, params)


def local_counter(tokenizer: str | None, path: str) -> PromptCounter | None:
    """The counter for ``model.upstream_tokenizer`` (a failure to load it is an error),
    else for ``model.path`` when it is a folder holding a tokenizer, else None."""
    if tokenizer:
        try:
            return load_counter(tokenizer)
        except ValueError as error:
            raise ValueError(f"model.upstream_tokenizer: {error}") from None
    if path and (Path(path).expanduser() / "tokenizer_config.json").is_file():
        try:
            return load_counter(str(Path(path).expanduser()))
        except ValueError as error:
            log.warning("prompts are not counted before the upstream: %s", error)
    return None
