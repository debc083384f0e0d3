"""A request without max_tokens gets what the prompt leaves of the context.

The README's first curl (no max_tokens) against the demo model (1,024 positions, a
~570-token system prompt) was a 400 because the server's default, 1,024, was checked as
if the client had asked for it. As vLLM does, a default is shortened to fit; a value
the client sent is still refused, and the refusal says what would fit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_fixtures import Server

CONTEXT = 1024  # the chat model's positions (serve_fixtures._small_config)
QUESTION = [{"role": "user", "content": "Which CWE fits CVE-2021-44228?"}]


@pytest.fixture(scope="module")
def server(start_server: Any, chat_model_dir: Path) -> Server:
    # Default limits: default_max_tokens 1024 = the whole context.
    return start_server({"model": {"path": str(chat_model_dir)}}, "default-max-tokens")


def _post(server: Server, body: dict[str, Any]) -> httpx.Response:
    url = server.base_url + "/v1/chat/completions"
    return httpx.post(url, json={"model": "model", **body}, timeout=120)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"messages": QUESTION}, id="absent"),
        pytest.param({"messages": QUESTION, "max_tokens": None}, id="null"),
    ],
)
def test_a_request_without_max_tokens_is_served_within_the_context(
    server: Server, body: dict[str, Any]
) -> None:
    answer = _post(server, body)
    assert answer.status_code == 200, answer.text
    usage = answer.json()["usage"]
    assert usage["prompt_tokens"] > 0
    assert usage["prompt_tokens"] + usage["completion_tokens"] <= CONTEXT


def test_a_streamed_request_without_max_tokens_is_served(server: Server) -> None:
    body = {"model": "model", "messages": QUESTION, "stream": True}
    url = server.base_url + "/v1/chat/completions"
    with httpx.stream("POST", url, json=body, timeout=120) as answer:
        assert answer.status_code == 200
        lines = [line for line in answer.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    assert all("error" not in json.loads(line[6:]) for line in lines[:-1])


def test_max_tokens_the_client_sent_is_refused_with_what_fits(server: Server) -> None:
    prompt_tokens = _post(server, {"messages": QUESTION, "max_tokens": 1}).json()["usage"][
        "prompt_tokens"
    ]
    answer = _post(server, {"messages": QUESTION, "max_tokens": CONTEXT})
    assert answer.status_code == 400, answer.text
    message = answer.json()["error"]["message"]
    assert f"send max_tokens <= {CONTEXT - prompt_tokens} " in message, message
    # What it names is served.
    fits = _post(server, {"messages": QUESTION, "max_tokens": CONTEXT - prompt_tokens})
    assert fits.status_code == 200, fits.text


def test_a_prompt_longer_than_the_context_is_refused_without_max_tokens_too(
    server: Server,
) -> None:
    answer = _post(server, {"messages": [{"role": "user", "content": "word " * 1100}]})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == "messages"
    assert "shorten the conversation" in error["message"], error


def test_the_start_line_names_the_engine_and_the_system_prompt_policy(server: Server) -> None:
    line = next(x for x in server.log().splitlines() if "serving " in x)
    assert "(transformers, engine batch)" in line, line
    assert "system_prompt=secreason-cyber-v1 (replace)" in line, line


def test_models_report_the_context_as_vllm_does(server: Server) -> None:
    """``max_model_len`` on the entry: ``secreason eval --backend openai`` sizes by it."""
    (entry,) = httpx.get(server.base_url + "/v1/models", timeout=30).json()["data"]
    assert entry["max_model_len"] == CONTEXT
