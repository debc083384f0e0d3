"""The local engine: concurrent requests are batched, streams arrive in order, errors
surface as engine errors (not crashes)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from secreason.backends.base import Backend, Generation, Message, SamplingParams
from secreason.serve.engine import EngineError, LocalEngine, StreamInfo
from secreason.serve.fixed_backend import FixedTextBackend

USER: list[Message] = [{"role": "user", "content": "q"}]


def test_concurrent_requests_share_batches() -> None:
    engine = LocalEngine(FixedTextBackend(delay_s=0.2), max_batch_size=8)

    async def run() -> list[Generation]:
        first = asyncio.ensure_future(engine.complete(USER, SamplingParams()))
        await asyncio.sleep(0.05)  # the first batch (of one) is now running
        rest = [engine.complete(USER, SamplingParams()) for _ in range(7)]
        return [await first, *await asyncio.gather(*rest)]

    results = asyncio.run(run())
    assert len(results) == 8 and all(r.text == results[0].text for r in results)
    assert list(engine.batch_sizes) == [1, 7]


def test_batches_group_by_sampling_params() -> None:
    engine = LocalEngine(FixedTextBackend(delay_s=0.1), max_batch_size=8)

    async def run() -> None:
        first = asyncio.ensure_future(engine.complete(USER, SamplingParams()))
        await asyncio.sleep(0.03)
        cold = [engine.complete(USER, SamplingParams(temperature=0.0)) for _ in range(3)]
        warm = [engine.complete(USER, SamplingParams(temperature=0.7)) for _ in range(2)]
        await asyncio.gather(first, *cold, *warm)

    asyncio.run(run())
    assert list(engine.batch_sizes) == [1, 3, 2]


def test_batch_size_is_capped() -> None:
    engine = LocalEngine(FixedTextBackend(delay_s=0.05), max_batch_size=3)

    async def run() -> None:
        await asyncio.gather(*(engine.complete(USER, SamplingParams()) for _ in range(7)))

    asyncio.run(run())
    assert max(engine.batch_sizes) == 3 and sum(engine.batch_sizes) == 7


def _stream_all(engine: LocalEngine) -> tuple[list[str], StreamInfo]:
    async def run() -> tuple[list[str], StreamInfo]:
        info = StreamInfo()
        return [d async for d in engine.stream(USER, SamplingParams(), info)], info

    return asyncio.run(run())


def test_stream_follows_the_model_pace() -> None:
    backend = FixedTextBackend(chunks=8, chunk_delay_s=0.02)
    deltas, info = _stream_all(LocalEngine(backend))
    assert "".join(deltas) == backend.text
    assert len(deltas) >= 6, "a slow model's deltas must not be held back"
    assert info.finish_reason == "stop"


def test_fast_deltas_are_coalesced() -> None:
    backend = FixedTextBackend(chunks=200)
    deltas, _ = _stream_all(LocalEngine(backend))
    assert "".join(deltas) == backend.text
    assert len(deltas) < 200


class _Failing(Backend):
    model_id = "failing"

    def generate(
        self, conversations: Sequence[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        raise RuntimeError("CUDA out of memory (secret path /home/x)")

    def stream(self, conversation: list[Message], params: SamplingParams) -> Iterator[str]:
        yield "partial"
        raise RuntimeError("device lost")


def test_backend_failures_become_engine_errors() -> None:
    engine = LocalEngine(_Failing())

    async def complete() -> None:
        await engine.complete(USER, SamplingParams())

    with pytest.raises(EngineError) as caught:
        asyncio.run(complete())
    assert caught.value.status == 500 and "secret" not in str(caught.value)

    async def stream() -> list[str]:
        return [d async for d in engine.stream(USER, SamplingParams(), StreamInfo())]

    with pytest.raises(EngineError):
        asyncio.run(stream())

    # The worker survives a failed batch.
    engine.backend = FixedTextBackend()
    assert asyncio.run(_one(engine)).text.endswith("CWE-89")


async def _one(engine: LocalEngine) -> Generation:
    return await engine.complete(USER, SamplingParams())


def test_upstream_requests_carry_extra_body_and_params() -> None:
    from secreason.serve.engine import UpstreamEngine

    engine = UpstreamEngine(
        "http://127.0.0.1:9/v1", "m", extra_body={"skip_special_tokens": False, "model": "x"}
    )
    params = SamplingParams(temperature=0.6, top_p=0.95, max_tokens=7, seed=3, stop=("END",))
    body = engine._body(USER, params, stream=True)
    assert body["skip_special_tokens"] is False
    assert body["model"] == "m", "extra fields must not override the protocol's own"
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (
        0.6,
        0.95,
        7,
        3,
    )
    assert body["stop"] == ["END"] and body["stream_options"] == {"include_usage": True}


def test_unreachable_upstream_is_a_502() -> None:
    from secreason.serve.engine import UpstreamEngine

    engine = UpstreamEngine("http://127.0.0.1:9/v1", "m", timeout_s=2)

    async def run() -> None:
        await engine.complete(USER, SamplingParams())

    with pytest.raises(EngineError) as caught:
        asyncio.run(run())
    assert caught.value.status == 502 and "unreachable" in str(caught.value)


def test_replicas_take_turns() -> None:
    from secreason.serve.engine import UpstreamEngine

    engine = UpstreamEngine("http://a:1/v1, http://b:2/v1/", "m")
    hosts = [engine._client.base_url.host for _ in range(4)]
    assert hosts == ["a", "b", "a", "b"]


class _Short(Backend):
    model_id = "short"

    def generate(
        self, conversations: Sequence[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        return []


def test_missing_generations_fail_the_batch_not_the_worker() -> None:
    engine = LocalEngine(_Short())

    async def run() -> Generation:
        try:
            await engine.complete(USER, SamplingParams())
        except EngineError:
            engine.backend = FixedTextBackend()
            return await engine.complete(USER, SamplingParams())
        raise AssertionError("a short batch must fail")

    assert asyncio.run(run()).text.endswith("CWE-89")


@pytest.mark.slow
def test_real_model_batches_give_the_same_answers(chat_model_dir: Path) -> None:
    from serve_fixtures import BENIGN_COMPLETION, BENIGN_PROMPT, HARMFUL_COMPLETION
    from serve_fixtures import HARMFUL_OUTPUT_PROMPT as OTHER

    from secreason.serve.server import load_local_backend

    engine = LocalEngine(load_local_backend(str(chat_model_dir)), max_batch_size=8)
    prompts = [BENIGN_PROMPT, OTHER, BENIGN_PROMPT, OTHER, BENIGN_PROMPT]
    params = SamplingParams(max_tokens=64)

    async def run() -> list[Generation]:
        first = asyncio.ensure_future(engine.complete([{"role": "user", "content": "hi"}], params))
        await asyncio.sleep(0)  # the first request takes the model alone
        rest = [engine.complete([{"role": "user", "content": p}], params) for p in prompts]
        return (await asyncio.gather(first, *rest))[1:]

    results = asyncio.run(run())
    expected = {BENIGN_PROMPT: BENIGN_COMPLETION, OTHER: HARMFUL_COMPLETION}
    assert [r.text for r in results] == [expected[p] for p in prompts]
    assert max(engine.batch_sizes) == len(prompts), list(engine.batch_sizes)
