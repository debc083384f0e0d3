"""The guarded OpenAI-compatible server: one request's path from body to audit line.

    body -> limits -> system prompt -> input guard -> engine -> reasoning split
         -> output guard -> response (JSON or SSE) -> audit record

Every step is a call into the module that owns it; this file only orders them. Two
rules shape the streaming path: reasoning deltas are sent before content deltas (the
split comes from the reasoning contract, see :mod:`stream_split`), and when output
moderation is on, nothing is sent until the guard has seen the whole completion (a
refusal cannot be unsent).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from secreason.backends.base import Message, SamplingParams
from secreason.reasoning import Split, split
from secreason.serve.config import ServeConfig
from secreason.serve.engine import Engine, EngineError, StreamInfo
from secreason.serve.guard import Guard, Side, output_text
from secreason.serve.limits import GuardrailsMiddleware, KeyLimits, read_body
from secreason.serve.metrics import ServerStats, engine_metrics
from secreason.serve.outcome import Outcome
from secreason.serve.protocol import (
    ChatRequest,
    ChunkWriter,
    RequestError,
    completion_body,
    error_body,
    new_completion_id,
    parse_chat_request,
)
from secreason.serve.stream_split import Kind, StopStrings, StreamSplitter
from secreason.serve.system_prompt import apply_system_prompt, client_turns
from secreason.serve.trail import AuditTrail, sent_text

log = logging.getLogger("secreason.serve")
T = TypeVar("T")


class Deployment:
    """The served model with its guard, system prompt, limits and audit log."""

    def __init__(
        self,
        config: ServeConfig,
        engine: Engine,
        guard: Guard | None = None,
        guard_engine: Engine | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.guard = guard
        self.guard_engine = guard_engine
        self.stats = ServerStats()
        prompt = config.system_prompt
        self.prompt_version = None if prompt.mode == "off" or not prompt.text else prompt.version
        self.served_name = config.model.served_name or _served_name(
            config.model.path or engine.model_id or "model"
        )
        # The names a request may use (others get 404): the served name, the configured
        # path, and the generic alias "model" (the README's examples send it).
        self.model_names = {self.served_name, "model", *filter(None, [config.model.path])}
        self.trail = AuditTrail(config, self.served_name, self.prompt_version)
        self.audit = self.trail.log  # the audit file (None: off)

    # ------------------------------------------------------------------ steps

    async def _timed(self, request: Request, awaitable: Awaitable[T]) -> T:
        start = time.perf_counter()
        try:
            return await awaitable
        finally:
            request.scope["state"]["model_s"] += time.perf_counter() - start

    async def _moderate(
        self,
        request: Request,
        side: Side,
        messages: list[Message],
        outcome: Outcome,
        reply: str | None,
    ) -> bool:
        """Run one side of the guard if enabled; True when the request must be refused."""
        cfg = self.config.guard
        if self.guard is None or not (cfg.input if side == "input" else cfg.output):
            return False
        decision = await self._timed(request, self.guard.check(side, messages, reply))
        outcome.guard[side] = decision.as_dict()
        outcome.guard_ms[side] = 1000 * decision.elapsed_s
        if decision.blocked:
            outcome.refuse(decision, cfg.refusal_message)
        return bool(decision.blocked)

    async def _prepare(self, messages: list[Message], params: SamplingParams) -> None:
        """The engine's admission check (context length, template), as a client error."""
        try:
            await self.engine.prepare(messages, params)
        except EngineError as error:
            raise RequestError(error.status, str(error), "messages") from None

    def _reply_for_guard(self, text: str, result: Split, sent: str = "") -> str:
        """Every generated character (reasoning too unless ``guard.screen_reasoning`` is
        off): text before ``<think>`` is screened like the rest, and so is ``sent``."""
        cfg = self.config.guard
        screen = cfg.screen_reasoning and cfg.output_includes_reasoning
        return output_text(text, result, screen_reasoning=screen, sent=sent)

    def _apply_split(self, outcome: Outcome, result: Split) -> None:
        outcome.status = result.status
        outcome.reasoning = None if result.status == "no_reasoning" else result.reasoning
        outcome.answer = result.answer

    async def _record(
        self,
        request: Request,
        chat: ChatRequest | None,
        outcome: Outcome,
        messages: list[Message] | None = None,
    ) -> None:
        await self.trail.record(request.scope["state"], chat, outcome, messages)

    # --------------------------------------------------------------- handlers

    async def chat(self, request: Request) -> Response:
        started = time.perf_counter()
        request.scope["state"].setdefault("started", started)
        limits = self.config.limits
        with self.engine.arriving():  # a batching engine waits for this request
            try:
                raw = await read_body(request, limits.max_body_bytes, limits.body_timeout_s)
                parse = functools.partial(
                    parse_chat_request,
                    raw,
                    max_tokens_limit=limits.max_tokens,
                    default_max_tokens=limits.default_max_tokens,
                    models=self.model_names,
                )
                # A large body (20k turns: ~0.1 s) is parsed off the event loop, so that
                # one client cannot stall every other stream.
                chat = await asyncio.to_thread(parse) if len(raw) > 1 << 16 else parse()
                prompt = self.config.system_prompt
                # Client text stays text (control strings broken), then the policy's prompt.
                neutralise = self.engine.neutralise.messages
                # A large body is scanned off the event loop (1 MB of markup: ~0.1 s).
                client = (
                    await asyncio.to_thread(neutralise, chat.messages)
                    if len(raw) > 1 << 16
                    else neutralise(chat.messages)
                )
                messages = apply_system_prompt(client, prompt.text, prompt.mode)
                await self._prepare(messages, chat.params)
            except RequestError as error:
                refused_outcome = Outcome(
                    finish_reason="error", error=error.message, http_status=error.status
                )
                await self._record(request, None, refused_outcome)
                return _error(error.status, error.message, error.param, error.code)
            # The guard reads every client turn that reaches the model (not the
            # deployment's own prompt); the output check reuses it.
            screened = client_turns(client, prompt.text, prompt.mode)
            request.scope["state"]["guard_turns"] = screened
            outcome = Outcome()
            refused = await self._moderate(request, "input", screened, outcome, None)
        if chat.stream:
            return StreamingResponse(
                self._stream(request, chat, messages, outcome, refused, started),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
            )
        if not refused:
            try:
                deadline = started + limits.request_timeout_s
                # The deadline and a client hanging up both cancel the generation itself.
                generation = await self._timed(
                    request,
                    _before(
                        deadline,
                        _unless_disconnected(request, self.engine.complete(messages, chat.params)),
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
                await self._record(request, chat, outcome, messages)
                return _error(
                    status, f"{message} (request id {request.scope['state']['request_id']})"
                )
            result = split(generation.full_text(), prefilled=self.engine.prefilled)
            self._apply_split(outcome, result)
            outcome.finish_reason = generation.finish_reason
            outcome.prompt_tokens = generation.prompt_tokens
            outcome.completion_tokens = generation.completion_tokens
            await self._moderate(
                request,
                "output",
                request.scope["state"]["guard_turns"],
                outcome,
                self._reply_for_guard(generation.full_text(), result),
            )
        await self._record(request, chat, outcome, messages)
        body = completion_body(
            new_completion_id(),
            self.served_name,
            content=outcome.answer,
            reasoning=outcome.reasoning,
            finish_reason=outcome.finish_reason,
            prompt_tokens=outcome.prompt_tokens,
            completion_tokens=outcome.completion_tokens,
            refusal=outcome.refusal,
            extra=outcome.extension(
                request.scope["state"]["request_id"],
                self.prompt_version,
                self.config.system_prompt.mode,
            ),
        )
        return JSONResponse(body)

    async def _deltas(
        self, request: Request, messages: list[Message], chat: ChatRequest, info: StreamInfo
    ) -> AsyncIterator[str]:
        """The engine's stream with model time accounted and the request deadline applied."""
        state = request.scope["state"]
        deadline = time.perf_counter() + self.config.limits.request_timeout_s
        iterator = self.engine.stream(messages, chat.params, info).__aiter__()
        try:
            while True:
                start = time.perf_counter()
                try:
                    delta = await _before(deadline, iterator.__anext__())
                except StopAsyncIteration:
                    return
                finally:
                    state["model_s"] += time.perf_counter() - start
                yield delta
        finally:
            await iterator.aclose()  # type: ignore[attr-defined]

    async def _stream(
        self,
        request: Request,
        chat: ChatRequest,
        messages: list[Message],
        outcome: Outcome,
        refused: bool,
        started: float,
    ) -> AsyncIterator[bytes]:
        """SSE events; the audit record is written before ``[DONE]`` (a client may hang
        up as soon as it sees it) or, if the client leaves early, synchronously on exit."""
        recorded = False
        delivered: list[bytes] = []  # events handed to the connection (after the yield)
        try:
            async for event in self._events(request, chat, messages, outcome, refused):
                if event.endswith(ChunkWriter.DONE):
                    if outcome.error:  # ended by an error event: what went out before it
                        outcome.sent = sent_text(delivered)
                    await self._record(request, chat, outcome, messages)
                    recorded = True
                yield event
                delivered.append(event)
        finally:
            if not recorded:
                outcome.error = outcome.error or "client disconnected"
                outcome.finish_reason = "error"
                outcome.sent = sent_text(delivered)
                self.trail.record_now(request.scope["state"], chat, outcome, messages)

    async def _events(
        self,
        request: Request,
        chat: ChatRequest,
        messages: list[Message],
        outcome: Outcome,
        refused: bool,
    ) -> AsyncIterator[bytes]:
        writer = ChunkWriter(new_completion_id(), self.served_name)
        yield writer.delta({"role": "assistant", "content": ""})
        pieces: list[tuple[Kind, str]] = []
        if not refused:
            buffered = self.guard is not None and self.config.guard.output
            splitter = StreamSplitter(prefilled=self.engine.prefilled)
            stops = StopStrings(chat.params.stop)  # a partial match is held, never sent
            info = StreamInfo()
            try:
                deltas = self._deltas(request, messages, chat, info)
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
            self._apply_split(outcome, result)
            outcome.finish_reason = info.finish_reason
            outcome.prompt_tokens = info.prompt_tokens
            outcome.completion_tokens = info.completion_tokens
            if splitter.diverged:
                log.warning(
                    "request %s: malformed reasoning tags, the stream diverged from the split",
                    request.scope["state"]["request_id"],
                )
            if buffered:
                refused = await self._moderate(
                    request,
                    "output",
                    request.scope["state"]["guard_turns"],
                    outcome,
                    self._reply_for_guard(
                        splitter.text, result, "".join(t for k, t in pieces if k == "content")
                    ),
                )
        tail = [writer.content(outcome.answer)] if refused else [writer.piece(*p) for p in pieces]
        tail.append(writer.delta({}, finish_reason=outcome.finish_reason))
        if chat.include_usage:
            tail.append(writer.usage(outcome.prompt_tokens, outcome.completion_tokens))
        yield b"".join([*tail, ChunkWriter.DONE])

    async def readiness(self) -> dict[str, dict[str, Any]]:
        """Each dependency's state: the model, and the guard when one screens requests."""
        engines = {"model": self.engine}
        if self.guard is not None and self.guard_engine is not None:
            engines["guard"] = self.guard_engine
        checks: dict[str, dict[str, Any]] = {}
        for name, engine in engines.items():
            try:
                ok, detail = await asyncio.wait_for(engine.ready(), 5.0)
            except Exception as error:  # a check that fails is an answer, not a crash
                ok, detail = False, f"{type(error).__name__}: {error}"[:200]
            checks[name] = {"ready": ok, "detail": detail}
        return checks

    def cancel_all(self) -> int:
        """Stop the generations in progress (the drain deadline passed)."""
        cancelled = 0
        for engine in (self.engine, self.guard_engine):
            cancel = getattr(engine, "cancel_all", None)
            if cancel is not None:
                cancelled += cancel()
        return cancelled

    async def aclose(self) -> None:
        """Release the engines (threads, connections) and the audit file at shutdown."""
        for engine in (self.engine, self.guard_engine):
            if engine is not None:
                await engine.aclose()
        self.trail.close()

    def models(self) -> dict[str, Any]:
        owner = (
            "secreason-benchmark-fixed-text"
            if self.config.model.backend == "fixed-text" and not self.config.model.upstream
            else "secreason"
        )
        entry = {
            "id": self.served_name,
            "object": "model",
            "created": 0,
            "owned_by": owner,
            # the policy a client's eval records (secreason eval --backend openai reads it)
            "secreason": {
                "system_prompt": {
                    "mode": self.config.system_prompt.mode,
                    "version": self.prompt_version,
                }
            },
        }
        return {"object": "list", "data": [entry]}


class ClientGone(Exception):
    """The client hung up before its answer was ready."""

    def __init__(self) -> None:
        super().__init__("client disconnected")


async def _unless_disconnected(request: Request, awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` unless the client disconnects first; then it is cancelled
    (a generation nobody will read stops) and :class:`ClientGone` is raised.

    One watcher task per request (the work stays in the caller's task): the watcher
    cancels the caller when ``http.disconnect`` arrives."""
    caller = asyncio.current_task()
    assert caller is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone = True
        caller.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await awaitable
    except asyncio.CancelledError:
        if not gone:
            raise  # a deadline or the shutdown, not the client
        if sys.version_info >= (3, 11):
            caller.uncancel()  # the cancellation was ours: it ends here
        raise ClientGone() from None
    finally:
        watcher.cancel()


async def _before(deadline: float, awaitable: Awaitable[T]) -> T:
    """Await with a deadline (perf_counter time); cheap on 3.11+, no task per call."""
    if sys.version_info >= (3, 11):
        loop = asyncio.get_running_loop()
        async with asyncio.timeout_at(loop.time() + deadline - time.perf_counter()):
            return await awaitable
    return await asyncio.wait_for(awaitable, deadline - time.perf_counter())


def _served_name(path: str) -> str:
    """A local folder is served by its last part, or for a training output
    (``runs/demo/rl/final``, ``.../checkpoint-500``) by the run's parts (``demo-rl``);
    a hub id or upstream name as given."""
    folder = Path(path)
    if not folder.is_dir():
        return path
    parts = [p for p in folder.parts if p not in ("", "/", ".")]
    if parts and (parts[-1] == "final" or parts[-1].startswith("checkpoint-")):
        run = parts[:-1]
        if "runs" in run:
            run = run[len(run) - run[::-1].index("runs") :]
        return "-".join(run[-2:]) or parts[-1]
    return folder.name or path


def _error(status: int, message: str, param: str | None = None, code: str = "") -> Response:
    body = error_body(status, message, param, code)
    return Response(body, status, media_type="application/json")


def create_app(deployment: Deployment) -> GuardrailsMiddleware:
    """The ASGI app, with the protection middleware outermost."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await deployment.aclose()

    app = FastAPI(
        title="secreason", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )

    async def health(request: Request) -> Response:
        """Liveness: the process answers. Whether it can serve is ``/ready``."""
        return JSONResponse({"status": "ok", "model": deployment.served_name})

    async def ready(request: Request) -> Response:
        """Readiness: the model AND (when configured) the guard can be reached now."""
        checks = await deployment.readiness()
        ok = all(check["ready"] for check in checks.values())
        body = {"status": "ready" if ok else "not ready", "checks": checks}
        return JSONResponse(body, 200 if ok else 503)

    async def models(request: Request) -> Response:
        return JSONResponse(deployment.models())

    async def metrics(request: Request) -> Response:
        """Bounded summaries (see :mod:`.metrics`), limited per key by the middleware."""
        body = {**deployment.stats.snapshot(), **engine_metrics(deployment.engine)}
        return JSONResponse(body)

    # Plain routes (no dependency injection or response models): the handlers parse and
    # validate by hand, and this is the hot path.
    app.add_route("/health", health, methods=["GET"])
    app.add_route("/ready", ready, methods=["GET"])
    app.add_route("/v1/models", models, methods=["GET"])
    app.add_route("/metrics", metrics, methods=["GET"])
    app.add_route("/v1/chat/completions", deployment.chat, methods=["POST"])

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> Response:
        request_id = request.scope.get("state", {}).get("request_id", "?")
        return _error(500, f"internal error (request id {request_id})")

    @app.exception_handler(404)
    async def not_found(request: Request, error: Exception) -> Response:
        return _error(404, f"no route {request.method} {request.url.path}")

    @app.exception_handler(405)
    async def not_allowed(request: Request, error: Exception) -> Response:
        return _error(405, f"method {request.method} not allowed on {request.url.path}")

    limits = deployment.config.limits
    keys = deployment.config.api_keys()
    per_key = limits.max_concurrent_per_key or (
        max(1, limits.max_concurrent // 2) if len(keys) > 1 else limits.max_concurrent
    )
    return GuardrailsMiddleware(
        app,
        api_keys=keys,
        max_body_bytes=limits.max_body_bytes,
        max_concurrent=limits.max_concurrent,
        stats=deployment.stats,
        key_names=limits.named_api_keys,
        key_limits=KeyLimits(per_key, limits.requests_per_minute_per_key, limits.rate_burst),
        metered_paths=("/metrics",),
        metered_limits=KeyLimits(
            limits.metrics_concurrent_per_key,
            limits.metrics_per_minute_per_key,
            limits.metrics_burst,
            what="/metrics calls",
        ),
        on_unrecorded=deployment.trail.record_unanswered,
    )
