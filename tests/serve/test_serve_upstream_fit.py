"""Upstream mode refuses a prompt its context cannot hold, before the upstream is called.

The upstream here is a loopback fake shaped like ``vllm serve``: ``GET /v1/models``
reports ``max_model_len`` (or not, like OpenAI), and a chat request whose prompt is too
long gets vLLM's own 400 (prompt size estimated by words, so a test can tell which side
refused). Every POST is counted, so a test shows the upstream was never asked.
Prompts are counted with the real tiny chat model's tokenizer and template.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_upstream import JSONHandler, start_fake, v1_url
from serve_fixtures import Server

from secreason.backends.base import SamplingParams
from secreason.serve.engine import EngineError, UpstreamEngine
from secreason.serve.prompt_fit import load_counter
from secreason.serve.upstream_fit import reported_context

MODEL = "fake-model"


class _Upstream(ThreadingHTTPServer):
    posts = 0
    gets = 0
    max_model_len: int | None = 64
    up = True


class _Handler(JSONHandler):
    server: _Upstream

    def do_GET(self) -> None:
        self.server.gets += 1
        if not self.server.up:
            self.send_json(503, {"error": {"message": "loading"}})
            return
        entry: dict[str, Any] = {"id": self.server.model_id, "object": "model"}
        if self.server.max_model_len is not None:
            entry["max_model_len"] = self.server.max_model_len
        self.send_json(200, {"object": "list", "data": [entry]})

    def do_POST(self) -> None:
        self.server.posts += 1
        body = self.read_json()
        words = sum(len(str(m.get("content") or "").split()) for m in body["messages"])
        limit = self.server.max_model_len or 10**9
        if words + body["max_tokens"] > limit:
            message = f"This model's maximum context length is {limit} tokens (vLLM wording)"
            self.send_json(400, {"error": {"message": message}})
            return
        choice = {"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}
        self.send_json(200, {"choices": [choice], "usage": {"prompt_tokens": words}})


def _start(model_id: str = MODEL, max_model_len: int | None = 64) -> _Upstream:
    server = start_fake(_Handler, _Upstream)
    server.model_id = model_id  # type: ignore[attr-defined]
    server.max_model_len = max_model_len
    return server


@pytest.fixture()
def upstream() -> Iterator[_Upstream]:
    server = _start()
    yield server
    server.shutdown()


def _ask(engine: UpstreamEngine, text: str, max_tokens: int) -> tuple[int | None, str]:
    """Prepare then complete, as the app does: (prompt tokens, answer text)."""
    messages = [{"role": "user", "content": text}]
    params = SamplingParams(max_tokens=max_tokens)

    async def run() -> tuple[int | None, str]:
        try:
            tokens = await engine.prepare(messages, params)
            return tokens, (await engine.complete(messages, params)).text
        finally:
            await engine.aclose()

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"data": [{"id": MODEL, "max_model_len": 4096}]}, 4096),
        ({"data": [{"id": "other", "max_model_len": 8}, {"id": MODEL, "max_model_len": 9}]}, 9),
        ({"data": [{"id": "other", "max_model_len": 4096}]}, None),  # not our model
        ({"data": [{"id": MODEL}]}, None),  # OpenAI, TGI: no such field
        ({"data": [{"id": MODEL, "max_model_len": "4096"}]}, None),
        ({"data": [{"id": MODEL, "max_model_len": True}]}, None),
        ({"data": [{"id": MODEL, "max_model_len": 0}]}, None),
        ({"data": [{"id": MODEL, "max_model_len": -5}]}, None),
        ({"data": {"id": MODEL}}, None),
        ({"data": ["x", None]}, None),
        ([], None),
        (None, None),
    ],
)
def test_reported_context_reads_only_a_sound_max_model_len(payload: Any, expected: Any) -> None:
    assert reported_context(payload, MODEL) == expected


def test_too_long_prompt_is_refused_before_the_upstream(
    upstream: _Upstream, chat_model_dir: Path
) -> None:
    counter = load_counter(str(chat_model_dir))
    text = "Which weakness is described in sample A?"
    tokens = counter.count([{"role": "user", "content": text}])
    assert 8 < tokens < 60
    fits = UpstreamEngine(v1_url(upstream), MODEL, counter=counter)
    assert _ask(fits, text, max_tokens=64 - tokens) == (tokens, "ok")  # exactly the context
    assert upstream.posts == 1

    over = UpstreamEngine(v1_url(upstream), MODEL, counter=load_counter(str(chat_model_dir)))
    with pytest.raises(EngineError) as caught:
        _ask(over, text, max_tokens=64 - tokens + 1)
    assert caught.value.status == 400
    assert str(caught.value) == (
        f"the prompt is {tokens} tokens; with max_tokens={64 - tokens + 1} it exceeds "
        f"the model's context of 64 tokens: send max_tokens <= {64 - tokens} or a shorter "
        "conversation"
    ), "the same words as the local engine's refusal"
    assert upstream.posts == 1, "a refused prompt must never reach the upstream"


def test_without_a_tokenizer_only_max_tokens_is_checked(upstream: _Upstream) -> None:
    with pytest.raises(EngineError) as caught:
        _ask(UpstreamEngine(v1_url(upstream), MODEL), "hi", max_tokens=64)
    assert caught.value.status == 400 and "context of 64 tokens" in str(caught.value)
    assert upstream.posts == 0
    # Under the context, the upstream decides (its own 400 still reaches the client).
    assert _ask(UpstreamEngine(v1_url(upstream), MODEL), "hi", max_tokens=63) == (None, "ok")
    with pytest.raises(EngineError) as caught:
        _ask(UpstreamEngine(v1_url(upstream), MODEL), "a b c", max_tokens=63)
    assert caught.value.status == 400 and "vLLM wording" in str(caught.value)


def test_a_configured_context_wins_and_none_reported_means_no_check(
    chat_model_dir: Path,
) -> None:
    silent = _start(max_model_len=None)  # answers GET models without max_model_len
    try:
        counter = load_counter(str(chat_model_dir))
        engine = UpstreamEngine(v1_url(silent), MODEL, counter=counter)
        tokens, text = _ask(engine, "hello", max_tokens=100_000)
        assert text == "ok" and tokens is not None and tokens > 0
        configured = UpstreamEngine(v1_url(silent), MODEL, counter=counter, context_length=20)
        assert (engine.known_context(), configured.known_context()) == (None, 20)
        with pytest.raises(EngineError) as caught:
            _ask(configured, "hello", max_tokens=20)
        assert "context of 20 tokens" in str(caught.value)
        assert silent.posts == 1
    finally:
        silent.shutdown()


def test_context_is_learnt_once_the_upstream_is_up_and_the_smallest_replica_wins() -> None:
    small, large = _start(max_model_len=32), _start(max_model_len=64)
    try:
        small.up = False  # still loading: answers GET models with 503
        engine = UpstreamEngine(f"{v1_url(small)},{v1_url(large)}", MODEL)
        engine.fit.probe_every_s = 0  # ask again at every request while unsettled

        async def run() -> list[Any]:
            seen = [await engine.fit.context(engine._clients)]
            small.up = True
            seen += [await engine.fit.context(engine._clients) for _ in range(3)]
            try:
                await engine.prepare([{"role": "user", "content": "x"}], SamplingParams(40))
            except EngineError as error:
                seen.append(error.status)
            await engine.aclose()
            return seen

        assert asyncio.run(run()) == [64, 32, 32, 32, 400]
        assert (small.gets, large.gets) == (2, 2), "settled once every replica answered"
    finally:
        small.shutdown()
        large.shutdown()


def test_serve_refuses_too_long_prompt_in_proxy_mode(
    upstream: _Upstream, start_server: Any, chat_model_dir: Path
) -> None:
    """``secreason serve --upstream``: the model folder's tokenizer is found by itself."""
    upstream.model_id = str(chat_model_dir)  # type: ignore[attr-defined]
    upstream.max_model_len = 1024  # the default system prompt is about 700 tokens
    config = {"model": {"path": str(chat_model_dir), "upstream": v1_url(upstream)}}
    server: Server = start_server(config, "upstream-fit")
    url = server.base_url + "/v1/chat/completions"
    name = chat_model_dir.name
    long = {"model": name, "messages": [{"role": "user", "content": "word " * 400}]}
    answer = httpx.post(url, json={**long, "max_tokens": 8}, timeout=30)
    assert answer.status_code == 400, answer.text
    assert "exceeds the model's context of 1024 tokens" in answer.json()["error"]["message"]
    assert upstream.posts == 0
    short = {"model": name, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    answer = httpx.post(url, json=short, timeout=30)
    assert answer.status_code == 200 and upstream.posts == 1, answer.text
    # The context learnt from the upstream is passed on to this server's clients.
    (entry,) = httpx.get(server.base_url + "/v1/models", timeout=30).json()["data"]
    assert entry["max_model_len"] == 1024


def test_a_configured_tokenizer_that_cannot_load_is_an_error_naming_the_setting(
    tmp_path: Path,
) -> None:
    from secreason.serve.upstream_fit import local_counter

    with pytest.raises(ValueError, match=r"^model\.upstream_tokenizer: .*no tokenizer"):
        local_counter(str(tmp_path), "ignored")
    # The model folder is only a default: one without a tokenizer means no count.
    assert local_counter(None, str(tmp_path)) is None
    assert local_counter(None, "org/hub-name") is None


@pytest.mark.parametrize(("value", "ok"), [(None, True), (2, True), (1, False), (-3, False)])
def test_upstream_context_setting_is_validated(value: int | None, ok: bool) -> None:
    from secreason.serve.config import ConfigError, load_config

    overrides = {"model.upstream": "http://127.0.0.1:9/v1", "model.upstream_context": value}
    if ok:
        assert load_config(None, overrides).model.upstream_context == value
    else:
        with pytest.raises(ConfigError, match="model.upstream_context"):
            load_config(None, overrides)


def test_a_local_tokenizer_also_breaks_its_own_control_strings(chat_model_dir: Path) -> None:
    from secreason.serve.sanitize import GENERIC_NEUTRALISER, breaker_for, control_strings

    counter = load_counter(str(chat_model_dir))
    engine = UpstreamEngine("http://127.0.0.1:9/v1", MODEL, counter=counter)
    strings = control_strings(counter.tokenizer)
    assert strings and all(engine.neutralise(s) != s for s in strings)
    assert engine.neutralise.joiner == breaker_for(counter.tokenizer)
    assert UpstreamEngine("http://127.0.0.1:9/v1", MODEL).neutralise is GENERIC_NEUTRALISER


def test_readiness_asks_every_replica_at_once() -> None:
    """Each replica answers ``GET models`` only once all three are being asked: asked one
    after another, the first would wait out the check's timeout (three silent replicas
    took 6 s, past /ready's own 5 s bound, which then named none of them)."""
    import threading

    from fake_upstream import JSONHandler

    together = threading.Barrier(3, timeout=10)

    class Replica(JSONHandler):
        def do_GET(self) -> None:
            try:
                together.wait()
            except threading.BrokenBarrierError:
                return self.send_json(503, {"error": {"message": "asked alone"}})
            self.send_json(200, {"object": "list", "data": []})

    replicas = [start_fake(Replica, ThreadingHTTPServer) for _ in range(3)]
    try:
        engine = UpstreamEngine(",".join(v1_url(r) for r in replicas), MODEL)

        async def run() -> tuple[bool, str]:
            try:
                return await engine.ready(timeout_s=5)
            finally:
                await engine.aclose()

        assert asyncio.run(run()) == (True, "ok")
    finally:
        for replica in replicas:
            replica.shutdown()
