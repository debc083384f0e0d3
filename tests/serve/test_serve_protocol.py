"""What a client may send: every rejected request names its field and gets a 400."""

from __future__ import annotations

import json

import pytest

from secreason.serve.protocol import RequestError, parse_chat_request

OK = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def _parse(body: object) -> object:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_chat_request(raw, max_tokens_limit=100, default_max_tokens=10)


def test_defaults_and_fields() -> None:
    chat = _parse({**OK, "temperature": 0.6, "top_p": 0.95, "seed": 7, "stop": "END"})
    assert chat.params.max_tokens == 10 and chat.params.temperature == 0.6  # type: ignore[attr-defined]
    assert chat.params.stop == ("END",) and chat.params.seed == 7  # type: ignore[attr-defined]
    assert not chat.stream  # type: ignore[attr-defined]


def test_content_parts_and_developer_role() -> None:
    message = {
        "role": "developer",
        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
    }
    chat = _parse({**OK, "messages": [message, OK["messages"][0]], "max_completion_tokens": 5})
    assert chat.messages[0] == {"role": "system", "content": "ab"}  # type: ignore[attr-defined]
    assert chat.params.max_tokens == 5  # type: ignore[attr-defined]


_CALL = {"type": "function", "function": {"name": "f", "arguments": "{}"}}
BAD = [
    ("not json", b"{nope", None),
    ("not an object", [1], None),
    ("no messages", {"model": "m"}, "messages"),
    ("empty messages", {**OK, "messages": []}, "messages"),
    ("bad role", {**OK, "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    (
        "image part",
        {**OK, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
        "messages[0].content[0]",
    ),
    ("content number", {**OK, "messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
    ("max_tokens over limit", {**OK, "max_tokens": 101}, "max_tokens"),
    ("max_tokens zero", {**OK, "max_tokens": 0}, "max_tokens"),
    ("max_tokens string", {**OK, "max_tokens": "5"}, "max_tokens"),
    ("max_completion_tokens over", {**OK, "max_completion_tokens": 1000}, "max_completion_tokens"),
    ("temperature high", {**OK, "temperature": 3}, "temperature"),
    ("temperature bool", {**OK, "temperature": True}, "temperature"),
    ("top_p high", {**OK, "top_p": 1.5}, "top_p"),
    ("n=2", {**OK, "n": 2}, "n"),
    ("stop list of ints", {**OK, "stop": [1]}, "stop"),
    ("seed float", {**OK, "seed": 1.5}, "seed"),
    ("stream string", {**OK, "stream": "yes"}, "stream"),
    ("model missing", {"messages": OK["messages"]}, "model"),
    # Text that no tokenizer can encode, wherever it is: refused naming the field.
    (
        "lone surrogate in content",
        b'{"model": "m", "messages": [{"role": "user", "content": "a\\ud800b"}]}',
        "messages[0].content",
    ),
    (
        "lone surrogate in a part",
        b'{"model": "m", "messages": [{"role": "user", "content": '
        b'[{"type": "text", "text": "\\udfff"}]}]}',
        "messages[0].content[0].text",
    ),
    ("lone surrogate in stop", b'{"model": "m", "stop": ["\\ud83d"], "messages": []}', "stop[0]"),
    (
        "raw surrogate bytes",
        b'{"model": "m", "messages": [{"role": "user", "content": "\xed\xa0\x80"}]}',
        "messages[0].content",
    ),
    ("nested past the limit", b'{"model": "m", "x": ' + b"[" * 40 + b"]" * 40 + b"}", None),
    ("nested past the recursion limit", b"[" * 100_000 + b"]" * 100_000, None),
    ("huge integer", b'{"model": "m", "messages": [], "max_tokens": 1' + b"0" * 5000 + b"}", None),
    (
        "temperature NaN",
        b'{"model": "m", "temperature": NaN, "messages": [{"role": "user", "content": "x"}]}',
        "temperature",
    ),
    ("temperature inf", {**OK, "temperature": 1e400}, "temperature"),
    ("seed past 64 bits", {**OK, "seed": 1 << 64}, "seed"),
    ("n huge", {**OK, "n": 10**30}, "n"),
    ("five stops", {**OK, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ("stop too long", {**OK, "stop": ["x" * 300]}, "stop"),
    (
        "text part not a string",
        {**OK, "messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]},
        "messages[0].content[0].text",
    ),
    ("stream_options a list", {**OK, "stream_options": [1]}, "stream_options"),
    # Fields that would change the answer's meaning if silently ignored.
    ("tools", {**OK, "tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ("tool_choice required", {**OK, "tool_choice": "required"}, "tool_choice"),
    ("functions", {**OK, "functions": [{"name": "f"}]}, "functions"),
    ("response_format json", {**OK, "response_format": {"type": "json_object"}}, "response_format"),
    ("logprobs", {**OK, "logprobs": True}, "logprobs"),
    ("top_logprobs", {**OK, "top_logprobs": 3}, "top_logprobs"),
    ("logit_bias", {**OK, "logit_bias": {"50256": -100}}, "logit_bias"),
    ("presence_penalty", {**OK, "presence_penalty": 0.5}, "presence_penalty"),
    ("n=0", {**OK, "n": 0}, "n"),
    (
        "tool_calls on a user turn",
        {**OK, "messages": [{"role": "user", "content": "x", "tool_calls": [_CALL]}]},
        "messages[0].tool_calls",
    ),
    (
        "tool call arguments not a string",
        {
            **OK,
            "messages": [
                {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]}
            ],
        },
        "messages[0].tool_calls[0]",
    ),
]


@pytest.mark.parametrize(("body", "param"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_requests(body: object, param: str | None) -> None:
    with pytest.raises(RequestError) as caught:
        _parse(body)
    assert caught.value.status == 400
    assert caught.value.param == param
    assert caught.value.message  # a message that names the problem


NEUTRAL = [
    {"tools": []},
    {"tool_choice": "none"},
    {"response_format": {"type": "text"}},
    {"logprobs": False},
    {"logit_bias": {}},
    {"presence_penalty": 0.0, "frequency_penalty": 0},
    {"n": 1},
    {"user": "someone", "metadata": {"a": "b"}},  # harmless unknown fields are ignored
]


@pytest.mark.parametrize("extra", NEUTRAL, ids=[",".join(e) for e in NEUTRAL])
def test_neutral_values_of_unsupported_fields_pass(extra: dict[str, object]) -> None:
    _parse({**OK, **extra})


def test_unknown_model_is_404() -> None:
    raw = json.dumps({**OK, "model": "gpt-4"}).encode()
    with pytest.raises(RequestError) as caught:
        parse_chat_request(raw, max_tokens_limit=9, default_max_tokens=9, models={"tiny", "model"})
    assert (caught.value.status, caught.value.param, caught.value.code) == (
        404,
        "model",
        "model_not_found",
    )
    assert "'gpt-4'" in caught.value.message and "'tiny'" in caught.value.message
    ok = parse_chat_request(
        json.dumps({**OK, "model": "tiny"}).encode(),
        max_tokens_limit=9,
        default_max_tokens=9,
        models={"tiny"},
    )
    assert ok.model == "tiny"


def test_surrogate_error_names_the_character() -> None:
    with pytest.raises(RequestError, match=r"lone surrogate \\ud800 at character 1"):
        _parse(b'{"model": "m", "messages": [{"role": "user", "content": "a\\ud800"}]}')


def test_tool_calls_reach_the_model_as_text() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "run", "arguments": '{"x": 1}'}}
    messages = [
        OK["messages"][0],
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
    ]
    chat = _parse({**OK, "messages": messages})
    assert chat.messages[1] == {"role": "assistant", "content": '[tool call run: {"x": 1}]'}  # type: ignore[attr-defined]
    assert chat.messages[2] == {"role": "tool", "content": "done"}  # type: ignore[attr-defined]
