"""The OpenAI chat-completions wire format, as much of it as this server speaks.

Kept apart from the app so that what a client may send (and the 400s it gets for the
rest) and what it gets back are readable in one place. Requests are validated by hand
rather than by a schema library so that every error names the offending field the
way OpenAI's own errors do, and so that the hot path stays cheap.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from secreason.backends.base import Message, SamplingParams

ROLES = ("system", "developer", "user", "assistant", "tool")


class RequestError(Exception):
    """A client error, rendered as OpenAI's ``{"error": {...}}`` body."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code or {
            400: "invalid_request",
            401: "invalid_api_key",
            404: "not_found",
            413: "request_too_large",
            429: "too_many_requests",
            504: "timeout",
        }.get(status, "error")


def error_body(status: int, message: str, param: str | None = None, code: str = "") -> bytes:
    kind = "invalid_request_error" if 400 <= status < 500 else "server_error"
    error = RequestError(status, message, param, code)
    body = {"error": {"message": message, "type": kind, "param": param, "code": error.code}}
    return json.dumps(body).encode()


@dataclass
class ChatRequest:
    model: str
    messages: list[Message]
    params: SamplingParams
    stream: bool = False
    include_usage: bool = False


def _text_of(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):
        parts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise RequestError(400, "only text content parts are supported", f"{where}[{i}]")
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise RequestError(400, "content must be a string or a list of text parts", where)


def _number(
    body: dict[str, Any], name: str, kind: type, default: Any, low: float, high: float
) -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(400, f"{name} must be a number", name)
    if kind is int and int(value) != value:
        raise RequestError(400, f"{name} must be an integer", name)
    if not low <= value <= high:
        raise RequestError(400, f"{name} must be between {low} and {high}", name)
    return kind(value)


def parse_chat_request(
    raw: bytes, *, max_tokens_limit: int, default_max_tokens: int
) -> ChatRequest:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise RequestError(400, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise RequestError(400, "request body must be a JSON object")
    messages_in = body.get("messages")
    if not isinstance(messages_in, list) or not messages_in:
        raise RequestError(400, "messages must be a non-empty list", "messages")
    messages: list[Message] = []
    for i, message in enumerate(messages_in):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise RequestError(
                400, f"role must be one of {', '.join(ROLES)}", f"messages[{i}].role"
            )
        role = "system" if message["role"] == "developer" else message["role"]
        messages.append(
            {"role": role, "content": _text_of(message.get("content"), f"messages[{i}].content")}
        )
    _number(body, "n", int, 1, 1, 1)  # one choice per request
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    name = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    if max_tokens is None:
        max_tokens = default_max_tokens
    elif isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise RequestError(400, f"{name} must be a positive integer", name)
    elif max_tokens > max_tokens_limit:
        raise RequestError(
            400, f"{name}={max_tokens} exceeds this server's limit of {max_tokens_limit}", name
        )
    stop = body.get("stop") or ()
    if isinstance(stop, str):
        stop = (stop,)
    if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) for s in stop):
        raise RequestError(400, "stop must be a string or a list of strings", "stop")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise RequestError(400, "seed must be an integer", "seed")
    params = SamplingParams(
        temperature=_number(body, "temperature", float, 0.0, 0.0, 2.0),
        top_p=_number(body, "top_p", float, 1.0, 0.0, 1.0),
        max_tokens=max_tokens,
        seed=seed,
        stop=tuple(stop),
    )
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError(400, "stream must be true or false", "stream")
    options = body.get("stream_options") or {}
    include_usage = bool(options.get("include_usage")) if isinstance(options, dict) else False
    model = body.get("model")
    if not isinstance(model, str):
        raise RequestError(400, "model must be a string", "model")
    return ChatRequest(model, messages, params, stream, include_usage)


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def completion_body(
    completion_id: str,
    model: str,
    *,
    content: str,
    reasoning: str | None,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
    refusal: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": refusal}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
        message["reasoning"] = reasoning
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        **(extra or {}),
    }


class ChunkWriter:
    """Builds the SSE lines of one streamed completion."""

    def __init__(self, completion_id: str, model: str) -> None:
        self._head = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

    def _event(self, payload: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps({**self._head, **payload}).encode() + b"\n\n"

    def delta(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return self._event({"choices": [choice]})

    def reasoning(self, text: str) -> bytes:
        return self.delta({"reasoning_content": text, "reasoning": text})

    def content(self, text: str) -> bytes:
        return self.delta({"content": text})

    def piece(self, kind: str, text: str) -> bytes:
        return self.reasoning(text) if kind == "reasoning" else self.content(text)

    def usage(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        return self._event({"choices": [], "usage": usage})

    @staticmethod
    def error(status: int, message: str) -> bytes:
        return b"data: " + error_body(status, message) + b"\n\n"

    DONE = b"data: [DONE]\n\n"
