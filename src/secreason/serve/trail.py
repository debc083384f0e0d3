"""The deployment's audit trail: one record per request, whatever became of it.

Evidence is only evidence if it is complete, so recording does not depend on the path
a request took. The handler records what it knows (a 400 it refused, a completion, a
deadline, a client that hung up mid-stream with what had been sent until then); the
middleware asks :meth:`AuditTrail.record_unanswered` for every request that left no
record (401, 413, 429, a crash, a drain that cut it off). Building a record can itself
fail (an object the encoder chokes on, a bug): then a minimal line with ``audit_error``
is written instead, and the server keeps serving. :class:`~.audit.AuditLog` owns the
file (whole lines, rotation, retention, permissions); :class:`~.audit_queue.AuditQueue`
the one thread that writes refusals in batches (so a flood of them cannot queue ahead
of other clients' answers); :func:`~.outcome.audit_record` the record's fields.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import uuid
from collections.abc import Callable, MutableMapping
from typing import Any

from secreason.backends.base import Message
from secreason.serve.audit import AuditLog
from secreason.serve.audit_queue import REFUSED_BACKLOG, AuditQueue, Overflow, wake
from secreason.serve.config import ServeConfig
from secreason.serve.outcome import Outcome, audit_record
from secreason.serve.protocol import ChatRequest
from secreason.serve.system_prompt import dropped_turns

log = logging.getLogger("secreason.serve")

Build = Callable[[], "dict[str, Any] | None"]


class AuditTrail:
    """The log line and audit record of each request (the audit file is optional)."""

    def __init__(self, config: ServeConfig, model: str, prompt_version: str | None) -> None:
        self.config = config
        self.model = model
        self.prompt_version = prompt_version
        audit = config.audit
        self.log = (
            AuditLog(
                audit.path,
                max_bytes=audit.max_bytes,
                backups=audit.backups,
                retain_days=audit.retain_days,
                fsync=audit.fsync,
            )
            if audit.path
            else None
        )
        self.failures = 0  # records that could not be written whole (/metrics: audit_failures)
        self.queue = AuditQueue(self.log.sync) if self.log is not None else None
        self.overflow = Overflow()
        self.refused_backlog = REFUSED_BACKLOG

    def build(
        self,
        state: MutableMapping[str, Any],
        chat: ChatRequest | None,
        outcome: Outcome,
        messages: list[Message] | None = None,
        ended: float | None = None,
    ) -> dict[str, Any] | None:
        """Log the request's line (no prompt text unless asked) and build its record;
        ``messages`` is what the model saw (after the system-prompt policy), ``ended``
        when the request ended (perf_counter; default: now)."""
        request_id = state["request_id"]
        latency_ms = 1000 * ((ended or time.perf_counter()) - state["started"])
        log.info("request %s %s latency_ms=%.1f", request_id, outcome.summary(), latency_ms)
        if self.config.log_prompts and chat is not None:
            log.info("request %s messages=%s", request_id, chat.messages)
        if self.log is None:
            return None
        return audit_record(
            outcome,
            chat,
            request_id=request_id,
            model=self.model,
            system_prompt_version=self.prompt_version,
            redact_user=self.config.audit.redact_user,
            latency_ms=latency_ms,
            model_messages=messages,
            key_id=state.get("key_id"),
            client=state.get("client"),
            model_ms=max(0.0, 1000 * state["model_s"] - sum(outcome.guard_ms.values())),
            dropped=self._dropped(chat, messages),
        )

    def _dropped(
        self, chat: ChatRequest | None, messages: list[Message] | None
    ) -> list[dict[str, Any]]:
        """The client's turns the system-prompt policy kept from the model (only once the
        policy was applied: a request refused before that has ``messages`` None)."""
        if chat is None or messages is None:
            return []
        prompt = self.config.system_prompt
        return dropped_turns(chat.messages, prompt.text, prompt.mode)

    def write(self, state: MutableMapping[str, Any], build: Build, sync: bool = True) -> None:
        """Build and append the record; whatever fails, a minimal record is still tried
        (an audit line is never skipped silently, and never takes the server down).
        ``sync=False``: the caller flushes (the queue's one fsync per batch)."""
        state["recorded"] = True
        try:
            record = build()
            if record is not None and self.log is not None:
                self.log.write(record, sync)
            return
        except Exception as error:
            self.failures += 1
            log.exception("audit write failed for request %s", state["request_id"])
            failure = f"{type(error).__name__}: {error}"[:300]
        if self.log is None:
            return
        try:
            self.log.write(
                {
                    "request_id": state["request_id"],
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "key_id": state.get("key_id"),
                    "client": state.get("client"),
                    "audit_error": failure,
                },
                sync,
            )
        except Exception:
            log.exception("fallback audit write failed for request %s", state["request_id"])

    async def record(
        self,
        state: MutableMapping[str, Any],
        chat: ChatRequest | None,
        outcome: Outcome,
        messages: list[Message] | None = None,
        served: bool = True,
    ) -> None:
        """Record from the event loop, returning once the record is on disk. A request
        the handler ``served`` writes on a worker thread (group commit with the others:
        as many wait at once as requests are in flight, a bounded number); a request
        refused at the door goes through the audit queue's one thread, so a flood of
        them never fills the worker threads ahead of served requests. With no audit
        file, only the log line is written, without a thread hop."""
        build = functools.partial(self.build, state, chat, outcome, messages, time.perf_counter())
        if self.queue is None:
            self.write(state, build)
            return
        if served:
            await asyncio.to_thread(self.write, state, build)
            return
        loop = asyncio.get_running_loop()
        durable = loop.create_future()
        if self._submit(state, build, wake(loop, durable), served, outcome.http_status):
            await durable

    def _submit(
        self,
        state: MutableMapping[str, Any],
        build: Build,
        done: Callable[[], None],
        served: bool,
        status: int,
    ) -> bool:
        """Queue the write (False: nothing to wait for: written here and now, the queue
        being closed, or counted in the overflow summary, the refusals' backlog full)."""
        assert self.queue is not None
        state["recorded"] = True  # the middleware must not add a second record
        summary = None
        try:
            if not served:
                if self.queue.refused_pending() >= self.refused_backlog:
                    self.overflow.add(status, state.get("key_id") or state.get("client") or "?")
                    return False
                summary = self.overflow.take()
                if summary is not None:  # room again: the summary goes first
                    self.queue.submit(functools.partial(self._write_plain, summary), _noop, False)
                    summary = None
            self.queue.submit(functools.partial(self.write, state, build, False), done, served)
            return True
        except RuntimeError:  # the queue closed (shutdown began): write them here and now
            if summary is not None:  # taken from the overflow, so nobody else will write it
                self._write_plain(summary)
            self.write(state, build)
            return False

    def _write_plain(self, record: dict[str, Any]) -> None:
        assert self.log is not None
        try:
            self.log.write(record, False)
        except Exception:
            self.failures += 1
            log.exception("audit overflow summary could not be written")

    def record_now(
        self,
        state: MutableMapping[str, Any],
        chat: ChatRequest | None,
        outcome: Outcome,
        messages: list[Message] | None,
        served: bool = True,
    ) -> None:
        """Variant for where nothing can be awaited (a stream torn down by its client,
        the HTTP protocol's callbacks): queued, not waited for."""
        build = functools.partial(self.build, state, chat, outcome, messages, time.perf_counter())
        if self.queue is None:
            self.write(state, build)
        else:
            self._submit(state, build, _noop, served, outcome.http_status)

    async def record_unanswered(
        self, scope: MutableMapping[str, Any], status: int, message: str
    ) -> None:
        """The record of a request refused before the handler (401, 413, 429) or lost to
        a crash or the drain: the middleware's hook for any request that left none."""
        outcome = Outcome(finish_reason="error", error=message or None, http_status=status)
        await self.record(scope["state"], None, outcome, served=False)

    def record_refused(self, client: str | None, status: int, message: str) -> None:
        """The record of bytes refused before the app saw a request (the HTTP layer's
        400 for what is not HTTP, a connection cut for headers that never finished)."""
        state: dict[str, Any] = {
            "request_id": uuid.uuid4().hex[:16],
            "started": time.perf_counter(),
            "client": client,
            "key_id": None,
            "model_s": 0.0,
        }
        outcome = Outcome(finish_reason="error", error=message, http_status=status)
        self.record_now(state, None, outcome, None, served=False)

    def close(self) -> None:
        """Write what is queued (and any overflow summary), then close the file."""
        if self.queue is not None:
            self.queue.close()
            summary = self.overflow.take()
            if summary is not None:
                self._write_plain(summary)
        if self.log is not None:
            self.log.close()


def _noop() -> None:
    pass


def sent_text(events: list[bytes]) -> dict[str, str]:
    """What a client received, read back from the SSE events it was sent."""
    reasoning: list[str] = []
    content: list[str] = []
    for event in events:
        for line in event.split(b"\n\n"):
            if not line.startswith(b"data: {"):
                continue
            for choice in json.loads(line[6:]).get("choices") or []:
                delta = choice.get("delta") or {}
                reasoning.append(delta.get("reasoning_content") or "")
                content.append(delta.get("content") or "")
    return {"reasoning": "".join(reasoning), "content": "".join(content)}
