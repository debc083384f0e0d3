"""The local engine: concurrent requests are batched, streams arrive in order, errors
surface as engine errors (not crashes)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from secreason.backends.base import Backend, Generation, Message, SamplingParams
from secreason.serve.engine import EngineError, LocalEngine, StreamInfo, batch_key, batch_seed
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


class _Recording(FixedTextBackend):
    """The fixed-text backend, noting the size and sampling parameters of every batch."""

    def __init__(self, delay_s: float) -> None:
        super().__init__(delay_s=delay_s)
        self.calls: list[tuple[int, SamplingParams]] = []

    def generate(
        self, conversations: Sequence[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        self.calls.append((len(conversations), params))
        return super().generate(conversations, params)


def _after_a_busy_model(engine: LocalEngine, params: list[SamplingParams]) -> None:
    """One request occupies the model; ``params`` arrive meanwhile and form what follows."""

    async def run() -> None:
        first = asyncio.ensure_future(engine.complete(USER, SamplingParams()))
        await asyncio.sleep(0.05)
        await asyncio.gather(first, *(engine.complete(USER, p) for p in params))

    asyncio.run(run())


def test_greedy_requests_share_a_batch_whatever_their_seeds() -> None:
    backend = _Recording(delay_s=0.2)
    engine = LocalEngine(backend, refill_wait=0)
    _after_a_busy_model(engine, [SamplingParams(seed=s) for s in (1, 2, None, 3)])
    assert [size for size, _ in backend.calls] == [1, 4]
    assert backend.calls[1][1].seed is None, "greedy draws nothing: no seed to set"


@pytest.mark.parametrize(
    ("seeds", "expected"),
    [
        ([7, 7, 7], 7),
        ([None, None], None),
        ([5], 5),
        ([1, 2], batch_seed([1, 2], sampling=True)),
    ],
    ids=["shared-seed-kept", "no-seed", "alone-keeps-its-seed", "mixed-derived"],
)
def test_sampled_requests_share_a_batch_seeded_from_theirs(
    seeds: list[int | None], expected: int | None
) -> None:
    backend = _Recording(delay_s=0.2)
    engine = LocalEngine(backend, refill_wait=0)
    _after_a_busy_model(engine, [SamplingParams(temperature=0.7, seed=s) for s in seeds])
    (size, params), *rest = backend.calls[1:]
    assert (size, params.seed, params.temperature, rest) == (len(seeds), expected, 0.7, [])


@pytest.mark.parametrize(
    ("seeds", "sampling", "expected"),
    [
        ((3, 3), True, 3),
        ((3, 3), False, None),
        ((None, None), True, None),
        ((1, 2), False, None),
    ],
    ids=["same-seed", "greedy-ignores", "unseeded", "greedy-mixed"],
)
def test_batch_seed_table(
    seeds: tuple[int | None, ...], sampling: bool, expected: int | None
) -> None:
    assert batch_seed(seeds, sampling) == expected


def test_mixed_seeds_derive_a_stable_order_sensitive_seed() -> None:
    derived = batch_seed([1, 2], sampling=True)
    assert derived is not None and 0 <= derived < 1 << 31
    assert derived == batch_seed([1, 2], sampling=True), "the same batch must replay"
    assert derived not in (1, 2) and derived != batch_seed([2, 1], sampling=True)
    assert batch_seed([None, 4], sampling=True) not in (None, 4)


def test_batch_key_drops_only_the_seed() -> None:
    params = SamplingParams(temperature=0.6, top_p=0.9, max_tokens=9, seed=4, stop=("X",))
    assert batch_key(params) == SamplingParams(0.6, 0.9, 9, None, ("X",))
    assert batch_key(params) != batch_key(SamplingParams(temperature=0.6, max_tokens=9))


def _closed_loop(engine: LocalEngine, clients: int, rounds: int) -> list[int]:
    """Each client sends its next request once answered, after a short pause of its own
    (an HTTP round trip, staggered across clients): how an eval at concurrency N loads a
    server. Returns the batch sizes the engine formed."""

    async def client(pause_s: float) -> None:
        for _ in range(rounds):
            await engine.complete(USER, SamplingParams())
            await asyncio.sleep(pause_s)

    async def run() -> None:
        await asyncio.gather(*(client(0.002 * i) for i in range(clients)))

    asyncio.run(run())
    return list(engine.batch_sizes)


def test_answered_clients_refill_the_next_batch() -> None:
    engine = LocalEngine(FixedTextBackend(delay_s=0.3), max_batch_size=16, refill_wait=0.5)
    assert _closed_loop(engine, clients=16, rounds=3) == [16, 16, 16]


def test_without_refill_closed_loop_batches_fall_apart() -> None:
    """The behaviour the refill rule exists for: the first client back runs alone."""
    engine = LocalEngine(FixedTextBackend(delay_s=0.3), max_batch_size=16, refill_wait=0)
    sizes = _closed_loop(engine, clients=16, rounds=3)
    assert sizes[0] == 16 and min(sizes[1:]) < 16 and len(sizes) > 3, sizes


def test_a_burst_is_not_split_into_one_and_the_rest() -> None:
    """Requests that arrive together but reach the queue a few event-loop steps apart
    (as HTTP requests parsed one after another do) start one batch, not 1 + the rest."""
    engine = LocalEngine(FixedTextBackend(delay_s=0.05), max_batch_size=16, refill_wait=0)

    async def client(steps: int) -> None:
        for _ in range(steps):  # the awaits of parsing a request
            await asyncio.sleep(0)
        await engine.complete(USER, SamplingParams())

    async def run() -> None:
        await asyncio.gather(*(client(i % 4) for i in range(16)))

    asyncio.run(run())
    assert list(engine.batch_sizes) == [16]


def test_settling_stops_at_the_batch_cap() -> None:
    engine = LocalEngine(FixedTextBackend(delay_s=0.05), max_batch_size=5, refill_wait=0)

    async def run() -> None:
        await asyncio.gather(*(engine.complete(USER, SamplingParams()) for _ in range(12)))

    asyncio.run(run())
    assert list(engine.batch_sizes) == [5, 5, 2]


def _http_burst(engine: LocalEngine, clients: int, parse_s: float) -> None:
    """Requests read and parsed one after another (each ``parse_s`` of the event loop's
    time, inside ``arriving()``), as the HTTP layer handles a client's burst."""

    async def client(index: int) -> None:
        await asyncio.sleep(index * 0.001)  # the bytes reach the socket in turn
        with engine.arriving():
            await asyncio.sleep(parse_s)
        await engine.complete(USER, SamplingParams())

    async def run() -> None:
        await asyncio.gather(*(client(i) for i in range(clients)))

    asyncio.run(run())


@pytest.mark.parametrize(("wait_ms", "one_batch"), [(200, True), (0, False)])
def test_requests_still_being_read_join_the_batch(wait_ms: float, one_batch: bool) -> None:
    engine = LocalEngine(
        FixedTextBackend(delay_s=0.05), max_batch_size=16, refill_wait=0, arrival_wait_ms=wait_ms
    )
    _http_burst(engine, clients=16, parse_s=0.004)
    sizes = list(engine.batch_sizes)
    assert sum(sizes) == 16
    assert (sizes == [16]) is one_batch, sizes


@pytest.mark.parametrize(
    ("spacing_s", "pairs", "gap_ms", "batches"),
    [(0.005, 8, 20, (1, 1)), (0.005, 8, 0, (2, 16)), (0.1, 2, 20, (2, 2))],
    ids=["burst-paced-by-its-client", "gap-off", "separate-pairs"],
)
def test_a_burst_still_being_sent_fills_its_batch(
    spacing_s: float, pairs: int, gap_ms: float, batches: tuple[int, int]
) -> None:
    """A client that needs a moment to build each request sends a burst in pairs a few
    milliseconds apart: the batch its first pair starts waits for the rest (without the
    gap it starts before the burst is in: a split). Pairs far apart are separate traffic
    and do not hold each other back."""
    engine = LocalEngine(
        FixedTextBackend(delay_s=0.01),
        max_batch_size=16,
        refill_wait=0,
        arrival_wait_ms=500,  # the bound is not under test: a loaded box may be slow
        burst_gap_ms=gap_ms,
    )

    async def client(index: int) -> None:
        await asyncio.sleep(spacing_s * (index // 2))
        await engine.complete(USER, SamplingParams())

    async def run() -> None:
        await asyncio.gather(*(client(i) for i in range(2 * pairs)))

    asyncio.run(run())
    sizes = list(engine.batch_sizes)
    assert sum(sizes) == 2 * pairs
    assert batches[0] <= len(sizes) <= batches[1], sizes


def test_a_lone_request_never_waits_for_a_burst() -> None:
    """Requests one at a time (an eval at concurrency 1) each start a batch at once: with
    the burst gap stretched to a second, each takes far less than one."""
    engine = LocalEngine(
        FixedTextBackend(delay_s=0.0),
        max_batch_size=16,
        refill_wait=0,
        arrival_wait_ms=5000,
        burst_gap_ms=1000,
    )

    async def run() -> float:
        loop = asyncio.get_running_loop()
        await engine.complete(USER, SamplingParams())  # the worker starts
        start = loop.time()
        for _ in range(5):
            await engine.complete(USER, SamplingParams())
        return (loop.time() - start) / 5

    assert asyncio.run(run()) < 0.2


@pytest.mark.parametrize("refused", [False, True], ids=["slow-to-arrive", "refused"])
def test_arrival_wait_is_bounded_and_survives_refusals(refused: bool) -> None:
    """A request stuck before the queue (a slow input guard) holds the batch back only
    up to ``arrival_wait_ms``; one that leaves refused releases it at once."""
    backend = _Recording(delay_s=0.05)
    engine = LocalEngine(backend, refill_wait=0, arrival_wait_ms=50)

    async def other() -> None:
        with engine.arriving():
            await asyncio.sleep(0.02 if refused else 0.5)
        if not refused:
            await engine.complete(USER, SamplingParams())

    async def run() -> None:
        await asyncio.gather(engine.complete(USER, SamplingParams()), other())

    asyncio.run(run())
    assert [size for size, _ in backend.calls] == ([1] if refused else [1, 1])


def test_refill_window_starts_when_the_batch_ends() -> None:
    """Refill waits only for clients that return right after a batch. A request that
    arrives after that window starts at once, alone, even if another follows it soon
    (counting the window from its arrival would have held it for the second one)."""
    backend = _Recording(delay_s=0.5)
    engine = LocalEngine(backend, max_batch_size=16, refill_wait=0.2)  # window: 0.1 s

    async def late(delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        await engine.complete(USER, SamplingParams())

    async def run() -> None:
        await asyncio.gather(*(engine.complete(USER, SamplingParams()) for _ in range(4)))
        await asyncio.gather(late(0.3), late(0.35))

    asyncio.run(run())
    assert [size for size, _ in backend.calls] == [4, 1, 1]


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
    # The prompts share one batch (the first request may have joined them: see _settle).
    assert max(engine.batch_sizes) >= len(prompts), list(engine.batch_sizes)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"model.batch_refill_wait": -0.1}, "model.batch_refill_wait: must not be negative"),
        ({"model.batch_wait_ms": -1}, "model.batch_wait_ms: must not be negative"),
        ({"model.max_batch_size": 0}, "model.max_batch_size: must be at least 1"),
        ({"model.batch_burst_gap_ms": -5}, "model.batch_burst_gap_ms: must not be negative"),
    ],
    ids=["negative-refill", "negative-wait", "zero-batch", "negative-burst-gap"],
)
def test_batching_settings_are_validated(override: dict[str, float], message: str) -> None:
    from secreason.serve.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=message):
        load_config(None, {"model.path": "m", **override})


def test_batching_defaults_fit_an_eval_client() -> None:
    """The default batch holds what an eval at its default concurrency (16) sends."""
    from secreason.backends.openai import OpenAIBackend
    from secreason.serve.config import load_config

    model = load_config(None, {"model.path": "m"}).model
    assert model.max_batch_size == OpenAIBackend("http://127.0.0.1:9/v1", "m").concurrency
    assert model.batch_refill_wait > 0
