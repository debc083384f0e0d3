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
]


@pytest.mark.parametrize(("body", "param"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_requests(body: object, param: str | None) -> None:
    with pytest.raises(RequestError) as caught:
        _parse(body)
    assert caught.value.status == 400
    assert caught.value.param == param
