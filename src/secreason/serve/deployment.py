"""The deployment: one served model with its guard, system prompt, limits and audit trail.

It is the object every request handler works on, and the only one that knows how the
pieces are configured: which names a client may ask for, which side of the guard runs
and what it reads, how the engine's admission check becomes a client error, where the
audit record goes. Handlers (:mod:`.handler`, :mod:`.streaming`) call its steps so
that the plain and the streamed path screen, split and record in exactly one way; the
app factory (:mod:`.app`) routes to it; the server (:mod:`.server`) builds it and, on
shutdown, cancels and closes what it holds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from secreason.backends.base import Message, SamplingParams
from secreason.reasoning import Split
from secreason.serve.config import ServeConfig
from secreason.serve.engine import Engine, EngineError
from secreason.serve.guard import Guard, Side, output_text
from secreason.serve.handler import handle_chat
from secreason.serve.metrics import ServerStats
from secreason.serve.outcome import Outcome
from secreason.serve.prompt_fit import ContextOverflow
from secreason.serve.protocol import ChatRequest, RequestError
from secreason.serve.trail import AuditTrail

T = TypeVar("T")


class Deployment:
    """The served model with its guard, system prompt, limits and audit log."""

    ready_timeout_s = 5.0  # each dependency's readiness check (``/ready``)

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
        self.served_name = config.model.served_name or served_name(
            config.model.path or engine.model_id or "model"
        )
        # The names a request may use (others get 404): the served name, the configured
        # path, and the generic alias "model" (the README's examples send it).
        self.model_names = {self.served_name, "model", *filter(None, [config.model.path])}
        self.trail = AuditTrail(config, self.served_name, self.prompt_version)
        self.audit = self.trail.log  # the audit file (None: off)

    # ------------------------------------------------------------------ steps

    async def timed(self, request: Request, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable``, adding its time to the request's model time (the
        middleware's overhead figure is the request's time minus this)."""
        start = time.perf_counter()
        try:
            return await awaitable
        finally:
            request.scope["state"]["model_s"] += time.perf_counter() - start

    async def moderate(
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
        decision = await self.timed(request, self.guard.check(side, messages, reply))
        outcome.guard[side] = decision.as_dict()
        outcome.guard_ms[side] = 1000 * decision.elapsed_s
        if decision.blocked:
            outcome.refuse(decision, cfg.refusal_message)
        return bool(decision.blocked)

    async def prepare(
        self, messages: list[Message], params: SamplingParams, *, fit: bool = False
    ) -> SamplingParams:
        """The engine's admission check (context length, template), as a client error.

        ``fit``: the client sent no max_tokens, so the server's default is shortened to
        what the prompt leaves of the context (as vLLM does) instead of refused."""
        try:
            await self.engine.prepare(messages, params)
        except ContextOverflow as error:
            if not fit or error.room < 1:
                raise RequestError(error.status, str(error), "messages") from None
            return dataclasses.replace(params, max_tokens=error.room)
        except EngineError as error:
            raise RequestError(error.status, str(error), "messages") from None
        return params

    def reply_for_guard(self, text: str, result: Split, sent: str = "") -> str:
        """Every generated character (reasoning too unless ``guard.screen_reasoning`` is
        off): text before ``<think>`` is screened like the rest, and so is ``sent``."""
        cfg = self.config.guard
        screen = cfg.screen_reasoning and cfg.output_includes_reasoning
        return output_text(text, result, screen_reasoning=screen, sent=sent)

    def apply_split(self, outcome: Outcome, result: Split) -> None:
        """Put the reasoning contract's split of a completion into the outcome."""
        outcome.status = result.status
        outcome.reasoning = None if result.status == "no_reasoning" else result.reasoning
        outcome.answer = result.answer

    async def record(
        self,
        request: Request,
        chat: ChatRequest | None,
        outcome: Outcome,
        messages: list[Message] | None = None,
    ) -> None:
        """Write the request's audit record (``messages``: what the model saw)."""
        await self.trail.record(request.scope["state"], chat, outcome, messages)

    # --------------------------------------------------------------- handlers

    async def chat(self, request: Request) -> Response:
        """``POST /v1/chat/completions`` (see :mod:`.handler`)."""
        return await handle_chat(self, request)

    async def readiness(self) -> dict[str, dict[str, Any]]:
        """Each dependency's state: the model, and the guard when one screens requests."""
        engines = {"model": self.engine}
        if self.guard is not None and self.guard_engine is not None:
            engines["guard"] = self.guard_engine

        async def check(engine: Engine) -> dict[str, Any]:
            try:
                ok, detail = await asyncio.wait_for(engine.ready(), self.ready_timeout_s)
            except asyncio.TimeoutError:  # its str() is empty: say what happened
                ok, detail = False, f"no answer within {self.ready_timeout_s:g} s"
            except Exception as error:  # a check that fails is an answer, not a crash
                ok, detail = False, f"{type(error).__name__}: {error}"[:200]
            return {"ready": ok, "detail": detail}

        # At the same time: a silent model and a silent guard cost one bound, not two.
        results = await asyncio.gather(*(check(engine) for engine in engines.values()))
        return dict(zip(engines, results, strict=True))

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
        """``/v1/models``: the served name, its context (``max_model_len``, as vLLM,
        when the engine knows it) and the system-prompt policy in force."""
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
        context = self.engine.known_context()
        if context is not None:
            entry["max_model_len"] = context
        return {"object": "list", "data": [entry]}


def served_name(path: str) -> str:
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
