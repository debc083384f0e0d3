"""The real server, on loopback, through the official ``openai`` client.

Two processes serve the whole module: ``guarded`` runs the tiny chat model locally with
the tiny guard model on both sides, API keys, tight limits and an audit log; ``proxy``
is a second ``secreason serve`` in front of it (the ``vllm serve`` layout), which is
also the one killed with SIGKILL mid-load to check that its audit log holds only whole
lines.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from serve_fixtures import (
    BENIGN_PROMPT,
    HARMFUL_OUTPUT_PROMPT,
    SAFE_QUESTIONS,
    TEST_SYSTEM_PROMPT,
    UNSAFE_QUESTIONS,
    Server,
)

from secreason.serve.audit import read_audit

pytestmark = pytest.mark.slow

KEY = "test-key-1"
REFUSAL = "Refused by the test deployment's guard."


@pytest.fixture(scope="module")
def guarded(
    start_server: Callable[..., Server],
    chat_model_dir: Path,
    guard_model_dir: Path,
    serve_workdir: Path,
) -> Server:
    config: dict[str, Any] = {
        "model": {"path": str(chat_model_dir), "served_name": "tiny-reasoner", "max_batch_size": 4},
        "guard": {"model": str(guard_model_dir), "refusal_message": REFUSAL},
        "limits": {
            "api_keys": [KEY],
            "max_body_bytes": 20_000,
            "max_tokens": 64,
            "default_max_tokens": 64,
            "max_concurrent": 2,
        },
        "audit": {"path": str(serve_workdir / "guarded-audit.jsonl"), "fsync": False},
        "system_prompt": {"text": TEST_SYSTEM_PROMPT, "version": "test-v1"},
    }
    return start_server(config, "guarded")


@pytest.fixture(scope="module")
def client(guarded: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=guarded.base_url + "/v1", api_key=KEY, max_retries=0)


def _ask(client: openai.OpenAI, prompt: str, **kwargs: Any) -> Any:
    return client.chat.completions.create(
        model="tiny-reasoner", messages=[{"role": "user", "content": prompt}], **kwargs
    )


def _audit(server_dir: Path, name: str) -> list[dict[str, Any]]:
    return list(read_audit(server_dir / name))


def test_models_and_health(client: openai.OpenAI, guarded: Server) -> None:
    assert [m.id for m in client.models.list().data] == ["tiny-reasoner"]
    assert httpx.get(guarded.base_url + "/health").json()["status"] == "ok"


def test_chat_splits_reasoning_from_answer(client: openai.OpenAI, serve_workdir: Path) -> None:
    response = _ask(client, BENIGN_PROMPT)
    message = response.choices[0].message
    assert message.content == "Answer: CWE-89"
    assert message.reasoning_content == "The input reaches a query unchecked."  # type: ignore[attr-defined]
    assert message.reasoning == message.reasoning_content  # type: ignore[attr-defined]
    assert response.choices[0].finish_reason == "stop"
    extra = response.model_extra["secreason"]  # type: ignore[index]
    assert (
        extra["guard"]["input"]["status"] == "safe" and extra["guard"]["output"]["status"] == "safe"
    )
    record = next(
        r
        for r in _audit(serve_workdir, "guarded-audit.jsonl")
        if r["request_id"] == extra["request_id"]
    )
    assert record["system_prompt_version"] == "test-v1"
    assert record["reasoning"] == message.reasoning_content  # type: ignore[attr-defined]
    assert record["answer"] == "Answer: CWE-89" and record["refusal_reason"] is None


def test_streaming_sends_reasoning_then_content(client: openai.OpenAI) -> None:
    kinds, reasoning, content, finish = [], "", "", None
    stream = _ask(client, BENIGN_PROMPT, stream=True, stream_options={"include_usage": True})
    usage = None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            if getattr(delta, "reasoning_content", None):
                kinds.append("reasoning")
                reasoning += delta.reasoning_content  # type: ignore[attr-defined]
            if delta.content:
                kinds.append("content")
                content += delta.content
            finish = choice.finish_reason or finish
    assert kinds and kinds == sorted(kinds, key=lambda k: k == "content")
    assert "reasoning" in kinds and "content" in kinds
    assert (reasoning, content, finish) == (
        "The input reaches a query unchecked.",
        "Answer: CWE-89",
        "stop",
    )
    assert usage is not None and usage.completion_tokens > 0


def test_unclosed_reasoning_reports_length(client: openai.OpenAI) -> None:
    response = _ask(client, BENIGN_PROMPT, max_tokens=3)
    choice = response.choices[0]
    assert choice.message.content == ""
    assert choice.message.reasoning_content  # type: ignore[attr-defined]
    assert choice.finish_reason == "length"
    assert response.model_extra["secreason"]["split_status"] == "unclosed"  # type: ignore[index]


def test_input_guard_refuses(client: openai.OpenAI, serve_workdir: Path) -> None:
    response = _ask(client, UNSAFE_QUESTIONS[0])
    choice = response.choices[0]
    assert choice.message.content == REFUSAL and choice.message.refusal == REFUSAL
    assert choice.finish_reason == "content_filter"
    assert getattr(choice.message, "reasoning_content", None) is None
    extra = response.model_extra["secreason"]  # type: ignore[index]
    assert extra["guard"]["input"] == {"blocked": True, "status": "unsafe", "categories": ["S2"]}
    assert "output" not in extra["guard"], "a refused input must not reach the model"
    assert "S2 Non-Violent Crimes" in extra["refusal_reason"]
    record = next(
        r
        for r in _audit(serve_workdir, "guarded-audit.jsonl")
        if r["request_id"] == extra["request_id"]
    )
    assert record["guard"]["input"]["raw"].strip() == "unsafe\nS2"


def test_output_guard_refuses_streamed_reply(client: openai.OpenAI) -> None:
    chunks = list(_ask(client, HARMFUL_OUTPUT_PROMPT, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    leaked = "".join(
        getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices
    )
    assert text == REFUSAL and not leaked, "the blocked reply (or its reasoning) leaked"
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    plain = _ask(client, HARMFUL_OUTPUT_PROMPT)
    guard = plain.model_extra["secreason"]["guard"]  # type: ignore[index]
    assert guard["input"]["status"] == "safe" and guard["output"]["categories"] == ["S2"]


def test_safe_question_passes_both_sides(client: openai.OpenAI) -> None:
    guard = _ask(client, SAFE_QUESTIONS[0]).model_extra["secreason"]["guard"]  # type: ignore[index]
    assert guard["input"]["blocked"] is False


def test_auth(guarded: Server) -> None:
    for key in ("wrong", ""):
        bad = openai.OpenAI(base_url=guarded.base_url + "/v1", api_key=key or "x", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as caught:
            _ask(bad, BENIGN_PROMPT)
        assert caught.value.status_code == 401
    response = httpx.post(guarded.base_url + "/v1/chat/completions", json={})
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


def test_limits(client: openai.OpenAI, guarded: Server) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        _ask(client, BENIGN_PROMPT, max_tokens=65)
    assert caught.value.status_code == 400 and "max_tokens" in str(caught.value)
    headers = {"authorization": f"Bearer {KEY}"}
    url = guarded.base_url + "/v1/chat/completions"
    body = {"model": "m", "messages": [{"role": "user", "content": "x" * 30_000}]}
    big = httpx.post(url, json=body, headers=headers)
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"

    def chunked() -> Any:
        yield json.dumps(body).encode()

    unsized = httpx.post(url, content=chunked(), headers=headers)  # no Content-Length
    assert unsized.status_code == 413
    broken = httpx.post(url, content=b"{not json", headers=headers)
    assert broken.status_code == 400 and "Traceback" not in broken.text
    assert broken.json()["error"]["type"] == "invalid_request_error"


def test_burst_beyond_concurrency_gets_429(client: openai.OpenAI) -> None:
    statuses: list[int] = []
    barrier = threading.Barrier(10)

    def call() -> None:
        barrier.wait()  # all ten leave together
        try:
            _ask(client, BENIGN_PROMPT, max_tokens=40)
            statuses.append(200)
        except openai.APIStatusError as error:
            statuses.append(error.status_code)
            assert error.response.json()["error"]["code"] == "too_many_requests"

    threads = [threading.Thread(target=call) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(set(statuses)) == [200, 429], statuses
    assert _ask(client, BENIGN_PROMPT).choices[0].message.content == "Answer: CWE-89"


# ---------------------------------------------------------------------------- proxy


def test_proxy_relays_and_resplits(
    start_server: Callable[..., Server], guarded: Server, serve_workdir: Path
) -> None:
    audit = serve_workdir / "proxy-audit.jsonl"
    proxy_config: dict[str, Any] = {
        "model": {"path": "tiny-reasoner", "upstream": guarded.base_url + "/v1"},
        "system_prompt": {"mode": "off"},
        "limits": {"max_tokens": 64, "default_max_tokens": 40},
        "audit": {"path": str(audit)},
    }
    env_key = {"SECREASON_UPSTREAM_API_KEY": KEY}
    proxy = start_server(proxy_config, "proxy", env=env_key)
    client = openai.OpenAI(base_url=proxy.base_url + "/v1", api_key="none", max_retries=0)
    message = _ask(client, BENIGN_PROMPT).choices[0].message
    assert (message.content, message.reasoning_content) == (  # type: ignore[attr-defined]
        "Answer: CWE-89",
        "The input reaches a query unchecked.",
    )
    kinds = []
    for chunk in _ask(client, BENIGN_PROMPT, stream=True):
        delta = chunk.choices[0].delta if chunk.choices else None
        if delta is not None and getattr(delta, "reasoning_content", None):
            kinds.append("reasoning")
        if delta is not None and delta.content:
            kinds.append("content")
    assert kinds and kinds == sorted(kinds, key=lambda k: k == "content") and "content" in kinds
    refused = _ask(client, UNSAFE_QUESTIONS[1]).choices[0]
    assert refused.message.content == REFUSAL, "the upstream's guard refusal must pass through"

    # Load the proxy, kill it with SIGKILL mid-flight, and read its audit log.
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                _ask(client, SAFE_QUESTIONS[1], stream=bool(time.time_ns() % 2), max_tokens=20)
            except openai.APIStatusError:
                continue  # the upstream's own 429s pass through; keep loading
            except openai.OpenAIError:
                return

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    time.sleep(1.5)
    proxy.kill(signal.SIGKILL)
    stop.set()
    for worker in workers:
        worker.join(30)
    records = list(read_audit(audit))  # raises on a torn line
    assert len(records) > 3, "the load never reached the audit log"
    assert all(r["model"] == "tiny-reasoner" and "request_id" in r for r in records)

    again = start_server(proxy_config, "proxy-restarted", env=env_key)
    restarted = openai.OpenAI(base_url=again.base_url + "/v1", api_key="none", max_retries=0)
    _ask(restarted, BENIGN_PROMPT)
    assert len(list(read_audit(audit))) == len(records) + 1


def test_streamed_unclosed_reasoning_reports_length(client: openai.OpenAI) -> None:
    chunks = list(_ask(client, BENIGN_PROMPT, stream=True, max_tokens=3))
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasoning = "".join(
        getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices
    )
    assert content == "" and reasoning
    assert chunks[-1].choices[0].finish_reason == "length"


def test_server_log_holds_no_prompt_text(client: openai.OpenAI, guarded: Server) -> None:
    _ask(client, "a very particular phrase 1234")
    log = guarded.log_path.read_text()
    assert "finish=" in log, "the request line is missing"
    assert "particular phrase" not in log and BENIGN_PROMPT not in log


def test_timeouts_answer_504(start_server: Callable[..., Server]) -> None:
    """A model slower than the request deadline: JSON 504, or an error event mid-stream."""
    slow = start_server(
        {
            "model": {
                "backend": "fixed-text",
                "fixed_text_delay_s": 1.0,
                "served_name": "tiny-reasoner",
            },
            "limits": {"request_timeout_s": 0.2},
        },
        "slow",
    )
    client = openai.OpenAI(base_url=slow.base_url + "/v1", api_key="none", max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        _ask(client, "q")
    assert caught.value.status_code == 504 and "request id" in caught.value.message
    with httpx.stream(
        "POST",
        slow.base_url + "/v1/chat/completions",
        json={"model": "model", "stream": True, "messages": [{"role": "user", "content": "q"}]},
    ) as response:
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert json.loads(events[-2][6:])["error"]["code"] == "timeout"
    assert events[-1] == "data: [DONE]"
