"""The OpenAI chat-completions wire format, as much of it as this server speaks.

Kept apart from the app so that what a client may send (and the 400s it gets for the
rest) and what it gets back are readable in one place. Requests are validated by hand
rather than by a schema library so that every error names the offending field the
way OpenAI's own errors do, and so that the hot path stays cheap.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from secreason.backends.base import Message, SamplingParams
from secreason.serve import strict_json
from secreason.serve.errors import RequestError
from secreason.serve.strict_json import MAX_DEPTH

ROLES = ("system", "developer", "user", "assistant", "tool")


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
    #: The client sent no max_tokens: the server's default may be shortened to fit.
    max_tokens_default: bool = False


_LOCAL_PATH = re.compile(r"^(?:[/.~\\]|[A-Za-z]:[\\/])")
#: OpenAI's own limits on stop sequences.
MAX_STOPS, MAX_STOP_CHARS = 4, 256
SEED_RANGE = (-(1 << 63), (1 << 63) - 1)  # what torch.manual_seed and vLLM accept
#: A temperature below this is greedy decoding, as vLLM treats it: dividing logits by a
#: denormal (1e-300) overflows them, and sampling from the result crashes the model.
GREEDY_BELOW = 1e-5

#: Fields that would change what the answer means if silently ignored: refused unless
#: they hold their neutral value (listed second). Other unknown fields are ignored.
UNSUPPORTED: dict[str, tuple[object, ...]] = {
    "tools": (None, []),
    "functions": (None, []),
    "tool_choice": (None, "none", "auto"),
    "function_call": (None, "none", "auto"),
    "response_format": (None, {"type": "text"}),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "logit_bias": (None, {}),
    "presence_penalty": (None, 0),
    "frequency_penalty": (None, 0),
    "audio": (None,),
    "prediction": (None,),
    "modalities": (None, ["text"]),
}


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
            text = part.get("text", "")
            if not isinstance(text, str):
                raise RequestError(400, "a text part's text must be a string", f"{where}[{i}].text")
            parts.append(text)
        return "".join(parts)
    raise RequestError(400, "content must be a string or a list of text parts", where)


def _tool_calls_text(calls: Any, where: str) -> str:
    """An assistant turn's tool calls, written into its text so that the model and the
    guard both see them (this server does not run tools: ``tools`` is refused)."""
    if calls is None:
        return ""
    if not isinstance(calls, list):
        raise RequestError(400, "tool_calls must be a list", where)
    lines = []
    for i, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        arguments = function.get("arguments", "") if isinstance(function, dict) else None
        if not isinstance(name, str) or not isinstance(arguments, str):
            raise RequestError(
                400,
                "a tool call needs function.name and function.arguments strings",
                f"{where}[{i}]",
            )
        lines.append(f"[tool call {name}: {arguments}]")
    return "\n".join(lines)


def _message(message: Any, i: int) -> Message:
    if not isinstance(message, dict) or message.get("role") not in ROLES:
        raise RequestError(400, f"role must be one of {', '.join(ROLES)}", f"messages[{i}].role")
    role = "system" if message["role"] == "developer" else message["role"]
    content = _text_of(message.get("content"), f"messages[{i}].content")
    calls = _tool_calls_text(message.get("tool_calls"), f"messages[{i}].tool_calls")
    if calls and role != "assistant":
        raise RequestError(
            400, "only assistant turns carry tool_calls", f"messages[{i}].tool_calls"
        )
    return {
        "role": role,
        "content": f"{content}\n{calls}" if content and calls else content or calls,
    }


def _number(
    body: dict[str, Any], name: str, kind: type, default: Any, low: float, high: float
) -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(400, f"{name} must be a number", name)
    if isinstance(value, float) and not math.isfinite(value):  # int(inf) would raise
        raise RequestError(400, f"{name} must be a finite number", name)
    if kind is int and int(value) != value:
        raise RequestError(400, f"{name} must be an integer", name)
    if not low <= value <= high:
        raise RequestError(400, f"{name} must be between {low} and {high}", name)
    return kind(value)


def _same(value: Any, neutral: object) -> bool:
    """JSON equality without Python's ``False == 0`` (``0`` and ``0.0`` are the same)."""
    if isinstance(value, bool) or isinstance(neutral, bool) or value is None or neutral is None:
        return value is neutral
    return bool(value == neutral)


def _refuse_unsupported(body: dict[str, Any]) -> None:
    for name, neutral in UNSUPPORTED.items():
        if name in body and not any(_same(body[name], v) for v in neutral):
            raise RequestError(
                400,
                f"{name} is not supported by this server (see the README's serving section)",
                name,
            )
    if _number(body, "n", int, 1, 1, 128) != 1:  # a type or range error names itself
        raise RequestError(400, "n > 1 is not supported: one choice per request", "n")


def _stop(body: dict[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop") or ()
    if isinstance(stop, str):
        stop = (stop,)
    if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) for s in stop):
        raise RequestError(400, "stop must be a string or a list of strings", "stop")
    if len(stop) > MAX_STOPS or any(len(s) > MAX_STOP_CHARS for s in stop):
        raise RequestError(
            400,
            f"stop takes at most {MAX_STOPS} strings of up to {MAX_STOP_CHARS} characters",
            "stop",
        )
    return tuple(s for s in stop if s)


def parse_chat_request(
    raw: bytes,
    *,
    max_tokens_limit: int,
    default_max_tokens: int,
    models: Collection[str] | None = None,
) -> ChatRequest:
    """Validate a request body; every refusal names its field. ``models``: the names this
    server answers to (others get 404, as OpenAI answers an unknown model)."""
    try:
        body = strict_json.loads(raw)
    except RecursionError:
        raise RequestError(400, f"request body is nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as error:
        if "digits" in str(error):  # Python's bound on int parsing (a DoS guard)
            raise RequestError(400, f"request body holds a number too long: {error}") from None
        raise RequestError(400, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise RequestError(400, "request body must be a JSON object")
    strict_json.check_tree(body)
    messages_in = body.get("messages")
    if not isinstance(messages_in, list) or not messages_in:
        raise RequestError(400, "messages must be a non-empty list", "messages")
    messages = [_message(message, i) for i, message in enumerate(messages_in)]
    _refuse_unsupported(body)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    name = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    defaulted = max_tokens is None
    if max_tokens is None:
        max_tokens = default_max_tokens
    elif isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise RequestError(400, f"{name} must be a positive integer", name)
    elif max_tokens > max_tokens_limit:
        raise RequestError(
            400, f"{name}={max_tokens} exceeds this server's limit of {max_tokens_limit}", name
        )
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise RequestError(400, "seed must be an integer", "seed")
    if seed is not None and not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise RequestError(400, "seed must fit in a signed 64-bit integer", "seed")
    temperature = _number(body, "temperature", float, 0.0, 0.0, 2.0)
    params = SamplingParams(
        temperature=0.0 if temperature < GREEDY_BELOW else temperature,
        top_p=_number(body, "top_p", float, 1.0, 0.0, 1.0),
        max_tokens=max_tokens,
        seed=seed,
        stop=_stop(body),
    )
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError(400, "stream must be true or false", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise RequestError(400, "stream_options must be an object", "stream_options")
    include_usage = bool(options.get("include_usage"))
    model = body.get("model")
    if not isinstance(model, str):
        raise RequestError(400, "model must be a string", "model")
    if models is not None and model not in models:
        # A local folder is accepted as a name but never shown: it is the server's path.
        served = ", ".join(repr(m) for m in sorted(models) if not _LOCAL_PATH.match(m))
        raise RequestError(
            404,
            f"the model {model!r} does not exist here (served: {served})",
            "model",
            code="model_not_found",
        )
    return ChatRequest(model, messages, params, stream, include_usage, max_tokens_default=defaulted)


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
