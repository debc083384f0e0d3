"""One chat request, from its body to its answer: the order of the checks is the policy.

    body -> limits (middleware) -> parse -> neutralise control strings -> system-prompt
         policy -> context check -> input guard -> model -> reasoning split
         -> output guard -> JSON (or :mod:`.streaming` for SSE) -> audit record

Every step is a call into the module that owns it; this module only orders them, so
that the order (nothing reaches the model unvalidated and unscreened; every outcome,
refusals included, is recorded) can be read in one place. A refusal before the model is
a 4xx naming the problem; an engine failure, a deadline or a client that hung up stops
the generation and leaves a record with the detail while the client gets a generic
message and the request id.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from secreason.reasoning import split
from secreason.serve.awaiting import ClientGone, before, unless_disconnected
from secreason.serve.engine import EngineError
from secreason.serve.limits import read_body
from secreason.serve.outcome import Outcome
from secreason.serve.protocol import (
    RequestError,
    completion_body,
    error_body,
    new_completion_id,
    parse_chat_request,
)
from secreason.serve.streaming import stream_events
from secreason.serve.system_prompt import apply_system_prompt, client_turns

if TYPE_CHECKING:
    from secreason.serve.deployment import Deployment


async def handle_chat(deployment: Deployment, request: Request) -> Response:
    """``POST /v1/chat/completions``: a JSON completion, or hand-off to the SSE stream."""
    started = time.perf_counter()
    request.scope["state"].setdefault("started", started)
    limits = deployment.config.limits
    with deployment.engine.arriving():  # a batching engine waits for this request
        try:
            raw = await read_body(request, limits.max_body_bytes, limits.body_timeout_s)
            parse = functools.partial(
                parse_chat_request,
                raw,
                max_tokens_limit=limits.max_tokens,
                default_max_tokens=limits.default_max_tokens,
                models=deployment.model_names,
            )
            # A large body (20k turns: ~0.1 s) is parsed off the event loop, so that
            # one client cannot stall every other stream.
            chat = await asyncio.to_thread(parse) if len(raw) > 1 << 16 else parse()
            prompt = deployment.config.system_prompt
            # Client text stays text (control strings broken), then the policy's prompt.
            neutralise = deployment.engine.neutralise.messages
            # A large body is scanned off the event loop (1 MB of markup: ~0.1 s).
            client = (
                await asyncio.to_thread(neutralise, chat.messages)
                if len(raw) > 1 << 16
                else neutralise(chat.messages)
            )
            messages = apply_system_prompt(client, prompt.text, prompt.mode)
            chat.params = await deployment.prepare(
                messages, chat.params, fit=chat.max_tokens_default
            )
        except RequestError as error:
            refused_outcome = Outcome(
                finish_reason="error", error=error.message, http_status=error.status
            )
            await deployment.record(request, None, refused_outcome)
            return error_response(error.status, error.message, error.param, error.code)
        # The guard reads every client turn that reaches the model (not the
        # deployment's own prompt); the output check reuses it.
        screened = client_turns(client, prompt.text, prompt.mode)
        request.scope["state"]["guard_turns"] = screened
        outcome = Outcome()
        refused = await deployment.moderate(request, "input", screened, outcome, None)
    if chat.stream:
        return StreamingResponse(
            stream_events(deployment, request, chat, messages, outcome, refused),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )
    if not refused:
        try:
            deadline = started + limits.request_timeout_s
            # The deadline and a client hanging up both cancel the generation itself.
            generation = await deployment.timed(
                request,
                before(
                    deadline,
                    unless_disconnected(request, deployment.engine.complete(messages, chat.params)),
                ),
            )
        except (EngineError, TimeoutError, ClientGone) as error:
            status = (
                error.status
                if isinstance(error, EngineError)
                else 499
                if isinstance(error, ClientGone)
                else 504
            )
            message = str(error) or "the model timed out"
            outcome.error = getattr(error, "detail", None) or message  # the detail
            outcome.finish_reason = "error"
            outcome.http_status = status
            await deployment.record(request, chat, outcome, messages)
            return error_response(
                status, f"{message} (request id {request.scope['state']['request_id']})"
            )
        result = split(generation.full_text(), prefilled=deployment.engine.prefilled)
        deployment.apply_split(outcome, result)
        outcome.finish_reason = generation.finish_reason
        outcome.prompt_tokens = generation.prompt_tokens
        outcome.completion_tokens = generation.completion_tokens
        await deployment.moderate(
            request,
            "output",
            request.scope["state"]["guard_turns"],
            outcome,
            deployment.reply_for_guard(generation.full_text(), result),
        )
    await deployment.record(request, chat, outcome, messages)
    body = completion_body(
        new_completion_id(),
        deployment.served_name,
        content=outcome.answer,
        reasoning=outcome.reasoning,
        finish_reason=outcome.finish_reason,
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        refusal=outcome.refusal,
        extra=outcome.extension(
            request.scope["state"]["request_id"],
            deployment.prompt_version,
            deployment.config.system_prompt.mode,
        ),
    )
    return JSONResponse(body)


def error_response(status: int, message: str, param: str | None = None, code: str = "") -> Response:
    """A JSON error in OpenAI's shape (the message names the field when there is one)."""
    body = error_body(status, message, param, code)
    return Response(body, status, media_type="application/json")
