"""What one request produced, and the three views of it the deployment keeps.

The same outcome becomes the client's response extension (what the guard decided), the
server log line (no prompt text) and the audit record (everything an auditor needs,
user content optionally redacted). Keeping the three views together means they cannot
drift apart: the record says exactly what the client was told.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from secreason.backends.base import Message
from secreason.serve.audit import redact
from secreason.serve.guard import GuardDecision
from secreason.serve.protocol import ChatRequest


@dataclass
class Outcome:
    reasoning: str | None = None
    answer: str = ""
    finish_reason: str = "stop"
    status: str = ""  # the reasoning contract's split status
    prompt_tokens: int = 0
    completion_tokens: int = 0
    guard: dict[str, Any] = field(default_factory=dict)  # side -> decision
    refusal: str | None = None
    refusal_reason: str | None = None
    error: str | None = None
    http_status: int = 200
    # What the client was actually sent (a stream torn down by its client: what had
    # been handed to the connection before it went); None: the response above, whole.
    sent: dict[str, str] | None = None
    guard_ms: dict[str, float] = field(default_factory=dict)  # side -> guard time

    def refuse(self, decision: GuardDecision, message: str) -> None:
        """Replace the completion by the refusal; the reasoning is never returned with it."""
        self.reasoning, self.answer, self.finish_reason = None, message, "content_filter"
        self.refusal, self.refusal_reason = message, decision.reason

    def summary(self) -> str:
        """The log line's fields: counts and verdicts, never text."""
        return (
            f"finish={self.finish_reason} status={self.status or '-'} "
            f"tokens={self.prompt_tokens}/{self.completion_tokens} "
            f"refused={self.refusal_reason is not None} error={self.error}"
        )

    def extension(
        self,
        request_id: str,
        system_prompt_version: str | None,
        system_prompt_mode: str | None = None,
    ) -> dict[str, Any]:
        """The ``secreason`` field added to a chat completion."""
        guard = {
            side: {k: decision[k] for k in ("blocked", "status", "categories")}
            for side, decision in self.guard.items()
        }
        return {
            "secreason": {
                "request_id": request_id,
                "system_prompt_version": system_prompt_version,
                "system_prompt_mode": system_prompt_mode,
                "split_status": self.status or None,
                "guard": guard,
                "refusal_reason": self.refusal_reason,
            }
        }


def audit_record(
    outcome: Outcome,
    chat: ChatRequest | None,
    *,
    request_id: str,
    model: str,
    system_prompt_version: str | None,
    redact_user: bool,
    latency_ms: float,
    model_messages: list[Message] | None = None,
    key_id: str | None = None,
    client: str | None = None,
    model_ms: float = 0.0,
    dropped: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The audit line. ``messages`` is what the MODEL saw (after the system-prompt policy;
    the client's own messages when the request never reached that step); ``dropped``
    what the client sent that the policy kept from the model, as the client sent it;
    ``sent`` is what the client received."""
    seen = model_messages if model_messages is not None else chat.messages if chat else None
    messages = [
        {**m, "content": redact(m["content"])} if redact_user and m["role"] == "user" else m
        for m in seen or []
    ]
    # Client text the model never saw is the client's text: redacted with the user turns.
    kept_out = [{**m, "content": redact(m["content"])} if redact_user else m for m in dropped or []]
    if outcome.sent is not None:
        sent = outcome.sent
    elif outcome.http_status != 200:
        sent = {"error": outcome.error or ""}
    else:
        sent = {"reasoning": outcome.reasoning or "", "content": outcome.answer}
    return {
        "request_id": request_id,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "key_id": key_id,
        "client": client,
        "status": outcome.http_status,
        "model": model,
        "system_prompt_version": system_prompt_version,
        "stream": chat.stream if chat else None,
        "messages": messages if seen is not None else None,
        "dropped": kept_out,
        "params": chat.params.as_dict() if chat else None,
        "reasoning": outcome.reasoning,
        "answer": outcome.answer,
        "sent": sent,
        "split_status": outcome.status,
        "finish_reason": outcome.finish_reason,
        "guard": outcome.guard,
        "refusal_reason": outcome.refusal_reason,
        "error": outcome.error,
        "usage": {"prompt": outcome.prompt_tokens, "completion": outcome.completion_tokens},
        "latency_ms": round(latency_ms, 2),
        "timings": {
            "total_ms": round(latency_ms, 2),
            "model_ms": round(model_ms, 2),
            "guard_ms": {side: round(ms, 2) for side, ms in outcome.guard_ms.items()},
        },
    }
