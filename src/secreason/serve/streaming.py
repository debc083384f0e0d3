"""The streamed answer: model deltas assembled into SSE events, and their audit record.

Streaming is where the server's promises are easiest to break, so it has a module of
its own. Reasoning deltas go out before content deltas (the split comes from the
reasoning contract, see :mod:`stream_split`); a tail that could become a stop string is
held back, never sent; when output moderation is on, nothing is sent until the guard
has seen the whole completion (a refusal cannot be unsent). Whatever ends the stream (a
finish, an engine error, a deadline, a bug, the client hanging up), the client gets an
error event and ``[DONE]`` where it can still read them, and the audit record holds
what was actually handed to the connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING

from starlette.requests import Request

from secreason.backends.base import Message
from secreason.serve.awaiting import before
from secreason.serve.engine import EngineError, StreamInfo
from secreason.serve.outcome import Outcome
from secreason.serve.protocol import ChatRequest, ChunkWriter, new_completion_id
from secreason.serve.stream_split import Kind, StopStrings, StreamSplitter
from secreason.serve.trail import sent_text

if TYPE_CHECKING:
    from secreason.serve.deployment import Deployment

log = logging.getLogger("secreason.serve")


async def stream_events(
    deployment: Deployment,
    request: Request,
    chat: ChatRequest,
    messages: list[Message],
    outcome: Outcome,
    refused: bool,
) -> AsyncIterator[bytes]:
    """SSE events; the audit record is written before ``[DONE]`` (a client may hang
    up as soon as it sees it) or, if the client leaves early, synchronously on exit."""
    recorded = False
    delivered: list[bytes] = []  # events handed to the connection (after the yield)
    info = StreamInfo()  # the engine's counts, known once its stream is closed
    events = _events(deployment, request, chat, messages, outcome, refused, info)
    try:
        # Closed here, not left to the garbage collector: a stream cut short (deadline,
        # error, client gone) is closed down to the engine first, so the record holds
        # the tokens the model generated, not zero.
        async with aclosing(events):  # type: ignore[type-var]
            async for event in events:
                if event.endswith(ChunkWriter.DONE):
                    if outcome.error:  # ended by an error event: what went out before it
                        outcome.sent = sent_text(delivered)
                        _count(outcome, info)
                    await deployment.record(request, chat, outcome, messages)
                    recorded = True
                yield event
                delivered.append(event)
    finally:
        if not recorded:
            gone = request.scope["state"].get("gone")  # e.g. it stopped taking bytes
            outcome.error = outcome.error or gone or "client disconnected"
            outcome.finish_reason = "error"
            outcome.sent = sent_text(delivered)
            _count(outcome, info)
            deployment.trail.record_now(request.scope["state"], chat, outcome, messages)


def _count(outcome: Outcome, info: StreamInfo) -> None:
    """A cut stream's usage: what the engine counted up to the cut."""
    outcome.prompt_tokens = outcome.prompt_tokens or info.prompt_tokens
    outcome.completion_tokens = outcome.completion_tokens or info.completion_tokens


async def _events(
    deployment: Deployment,
    request: Request,
    chat: ChatRequest,
    messages: list[Message],
    outcome: Outcome,
    refused: bool,
    info: StreamInfo,
) -> AsyncIterator[bytes]:
    writer = ChunkWriter(new_completion_id(), deployment.served_name)
    yield writer.delta({"role": "assistant", "content": ""})
    pieces: list[tuple[Kind, str]] = []
    if not refused:
        buffered = deployment.guard is not None and deployment.config.guard.output
        splitter = StreamSplitter(prefilled=deployment.engine.prefilled)
        stops = StopStrings(chat.params.stop)  # a partial match is held, never sent
        try:
            deltas = _deltas(deployment, request, messages, chat, info)
            async with aclosing(deltas) as deltas:  # type: ignore[type-var]
                async for delta in deltas:
                    fed = splitter.feed(stops.feed(delta))
                    if buffered:
                        pieces.extend(fed)
                    elif fed:  # one write per model delta, however many events it makes
                        yield b"".join(writer.piece(kind, text) for kind, text in fed)
                    if stops.hit:
                        break  # closing the stream stops the generation
        except Exception as error:
            request_id = request.scope["state"]["request_id"]
            if isinstance(error, (EngineError, TimeoutError)):
                status = error.status if isinstance(error, EngineError) else 504
                message = str(error) or "the model timed out"
                outcome.error = getattr(error, "detail", None) or message
            else:  # a bug: the stream still ends with an error event and [DONE]
                log.exception("stream of request %s failed", request_id)
                status, message = 500, "internal error"
                outcome.error = f"{type(error).__name__}: {error}"[:500]
            outcome.finish_reason = "error"
            yield ChunkWriter.error(status, f"{message} (request id {request_id})") + (
                ChunkWriter.DONE
            )
            return
        pieces.extend(splitter.feed(stops.finish()))
        last, result = splitter.finish()
        pieces.extend(last)
        deployment.apply_split(outcome, result)
        outcome.finish_reason = info.finish_reason
        outcome.prompt_tokens = info.prompt_tokens
        outcome.completion_tokens = info.completion_tokens
        if splitter.diverged:
            log.warning(
                "request %s: malformed reasoning tags, the stream diverged from the split",
                request.scope["state"]["request_id"],
            )
        if buffered:
            refused = await deployment.moderate(
                request,
                "output",
                request.scope["state"]["guard_turns"],
                outcome,
                deployment.reply_for_guard(
                    splitter.text, result, "".join(t for k, t in pieces if k == "content")
                ),
            )
    tail = [writer.content(outcome.answer)] if refused else [writer.piece(*p) for p in pieces]
    tail.append(writer.delta({}, finish_reason=outcome.finish_reason))
    if chat.include_usage:
        tail.append(writer.usage(outcome.prompt_tokens, outcome.completion_tokens))
    yield b"".join([*tail, ChunkWriter.DONE])


async def _deltas(
    deployment: Deployment,
    request: Request,
    messages: list[Message],
    chat: ChatRequest,
    info: StreamInfo,
) -> AsyncIterator[str]:
    """The engine's stream with model time accounted and the request deadline applied."""
    state = request.scope["state"]
    deadline = time.perf_counter() + deployment.config.limits.request_timeout_s
    iterator = deployment.engine.stream(messages, chat.params, info).__aiter__()
    try:
        while True:
            start = time.perf_counter()
            try:
                delta = await before(deadline, iterator.__anext__())
            except StopAsyncIteration:
                return
            finally:
                state["model_s"] += time.perf_counter() - start
            yield delta
    finally:
        await iterator.aclose()  # type: ignore[attr-defined]
