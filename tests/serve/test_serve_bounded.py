"""Bounded work: a request that gives up stops its generation, and no key fills the server.

Unit level: the local engine with a backend that only ends when told to (so a missing
cancellation shows as a hang, not as a timing), the real transformers backend's
stopping criterion, and the per-key limiter. The end-to-end checks against real server
processes (deadline, disconnect, slow headers and bodies, SIGTERM) are in
``test_serve_bounded_server.py``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from secreason.backends.base import Backend, Generation, Message, SamplingParams
from secreason.serve.engine import EngineError, LocalEngine, StreamInfo
from secreason.serve.limits import KeyLimits, key_id

HANG = "hang"  # a prompt the test backend works on until its request is cancelled


class UntilCancelled(Backend):
    """Answers at once, except conversations saying HANG: those run until cancelled
    (at most ``cap_s``, so a missing cancellation fails the test instead of hanging it)."""

    model_id = "until-cancelled"

    def __init__(self, cap_s: float = 20.0) -> None:
        self.cap_s = cap_s
        self.stopped: list[str] = []  # how each hanging generation ended

    def _hang(self, events: Sequence[threading.Event]) -> None:
        ended = all(event.wait(self.cap_s) for event in events) if events else False
        self.stopped.append("cancelled" if ended else "ran to the cap")

    def generate(
        self,
        conversations: Sequence[list[Message]],
        params: SamplingParams,
        *,
        cancel: Sequence[threading.Event] | None = None,
    ) -> list[Generation]:
        hanging = [i for i, c in enumerate(conversations) if c[-1]["content"] == HANG]
        if hanging:
            self._hang([cancel[i] for i in hanging] if cancel else [])
        return [Generation("</think>done") for _ in conversations]

    def stream(
        self,
        conversation: list[Message],
        params: SamplingParams,
        *,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        if conversation[-1]["content"] == HANG:
            self._hang([cancel] if cancel else [])
            return
        yield "</think>done"


def _ask(text: str) -> list[Message]:
    return [{"role": "user", "content": text}]


def test_a_deadline_cancels_the_batched_generation_and_frees_the_model() -> None:
    backend = UntilCancelled()

    async def scenario() -> str:
        engine = LocalEngine(backend, arrival_wait_ms=0, burst_gap_ms=0)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(engine.complete(_ask(HANG), SamplingParams()), 0.2)
        # The next request must not wait behind the abandoned generation.
        later = await asyncio.wait_for(engine.complete(_ask("hi"), SamplingParams()), 10)
        assert engine.cancelled == 1 and engine.running == 0
        await engine.aclose()
        return later.text

    assert asyncio.run(scenario()) == "</think>done"
    assert backend.stopped == ["cancelled"]


class Failing(UntilCancelled):
    """A model that fails on every batch."""

    def generate(
        self, conversations: Sequence[list[Message]], *args: object, **kw: object
    ) -> list[Generation]:
        raise RuntimeError("the model broke")


def test_a_failed_generation_is_not_counted_as_cancelled() -> None:
    """``cancelled`` counts requests that gave up on their generation; one the model
    failed did not (it was counted as cancelled, and its row told to stop)."""

    async def scenario() -> None:
        engine = LocalEngine(Failing(), arrival_wait_ms=0, burst_gap_ms=0)
        with pytest.raises(EngineError):
            await asyncio.wait_for(engine.complete(_ask("hi"), SamplingParams()), 10)
        assert engine.cancelled == 0 and engine.running == 0
        await engine.aclose()

    asyncio.run(scenario())


def test_a_closed_stream_cancels_the_generation_even_without_output() -> None:
    backend = UntilCancelled()

    async def scenario() -> list[str]:
        engine = LocalEngine(backend)
        stream = engine.stream(_ask(HANG), SamplingParams(), StreamInfo())
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(stream.__anext__(), 0.2)  # nothing comes out
        await asyncio.wait_for(stream.aclose(), 10)  # type: ignore[attr-defined]
        info = StreamInfo()
        got = [d async for d in engine.stream(_ask("hi"), SamplingParams(), info)]
        assert engine.cancelled == 1
        await engine.aclose()
        return got

    assert asyncio.run(scenario()) == ["</think>done"]
    assert backend.stopped == ["cancelled"]


def test_only_the_cancelled_row_of_a_batch_is_asked_to_stop() -> None:
    seen: list[list[bool]] = []

    class Recording(UntilCancelled):
        def generate(self, conversations, params, *, cancel=None):  # type: ignore[no-untyped-def]
            assert cancel is not None and len(cancel) == len(conversations)
            first = cancel[0].wait(10)  # the first row's request gives up meanwhile
            seen.append([first, cancel[1].is_set()])
            return [Generation("</think>ok") for _ in conversations]

    async def scenario() -> str:
        engine = LocalEngine(Recording(), max_batch_size=2, arrival_wait_ms=0)
        quitter = asyncio.ensure_future(engine.complete(_ask("a"), SamplingParams()))
        stayer = asyncio.ensure_future(engine.complete(_ask("b"), SamplingParams()))
        await asyncio.sleep(0.2)
        quitter.cancel()
        result = await asyncio.wait_for(stayer, 10)
        await engine.aclose()
        return result.text

    assert asyncio.run(scenario()) == "</think>ok"
    assert seen == [[True, False]]


def test_shutdown_cancels_generations_in_progress() -> None:
    backend = UntilCancelled()

    async def scenario() -> None:
        engine = LocalEngine(backend, arrival_wait_ms=0)
        task = asyncio.ensure_future(engine.complete(_ask(HANG), SamplingParams()))
        while engine.running == 0:
            await asyncio.sleep(0.01)
        await asyncio.wait_for(engine.aclose(), 15)
        task.cancel()

    asyncio.run(scenario())
    assert backend.stopped == ["cancelled"]


def test_transformers_rows_stop_at_their_next_token(chat_model_dir: Path) -> None:
    """The real backend: a cancelled row ends after one token, its neighbour runs on."""
    from secreason.backends.transformers import TransformersBackend

    backend = TransformersBackend(str(chat_model_dir), device="cpu")
    backend._eos_ids = []  # never stop on EOS: only the cancellation or the length ends a row
    params = SamplingParams(max_tokens=24)
    stop, go = threading.Event(), threading.Event()
    stop.set()
    rows = backend.generate([_ask("one"), _ask("two")], params, cancel=[stop, go])
    assert [r.completion_tokens for r in rows] == [1, 24]
    assert [r.finish_reason for r in rows] == ["length", "length"]
    deltas = list(backend.stream(_ask("one"), params, cancel=stop))
    assert len("".join(deltas).split()) <= 1
    backend.close()


# ------------------------------------------------------------------------ per-key limits


@pytest.mark.parametrize(
    ("per_key", "per_minute", "burst", "steps", "expected"),
    [
        # concurrency: a key holding its share is refused, another key is not
        (1, 0, None, [("a", 0), ("a", 0), ("b", 0)], ["ok", "busy 1", "ok"]),
        (2, 0, None, [("a", 0), ("a", 0), ("a", 0)], ["ok", "ok", "busy 1"]),
        # rate: a burst of 2 at 60/min, then one token per second comes back
        (9, 60, 2, [("a", 0), ("a", 0), ("a", 0), ("a", 1.0)], ["ok", "ok", "rate 1", "ok"]),
        # a slow rate: the retry-after is the time until the next token
        (9, 6, 1, [("a", 0), ("a", 0), ("b", 0), ("a", 5)], ["ok", "rate 10", "ok", "rate 5"]),
    ],
)
def test_key_limits_table(
    per_key: int,
    per_minute: float,
    burst: int | None,
    steps: list[tuple[str, float]],
    expected: list[str],
) -> None:
    limits = KeyLimits(per_key, per_minute, burst)
    got = []
    for who, at in steps:
        refused = limits.take(who, at)
        if refused is None:
            got.append("ok")
        else:
            message, wait = refused
            got.append(f"{'rate' if 'rate limit' in message else 'busy'} {wait}")
    assert got == expected


def test_key_limits_release_frees_the_share() -> None:
    limits = KeyLimits(1)
    assert limits.take("a", 0) is None and limits.take("a", 0) is not None
    limits.release("a")
    assert limits.take("a", 0) is None
    assert limits.in_flight == {"a": 1}


def test_rate_buckets_of_many_addresses_are_forgotten_once_refilled() -> None:
    """An open server limits per client address: 100k addresses must not all stay."""
    limits = KeyLimits(100_000, per_minute=60, burst=2)
    for n in range(100_000):
        assert limits.take(f"client:10.{n >> 16}.{n >> 8 & 255}.{n & 255}", 0.0) is None
        limits.release(f"client:10.{n >> 16}.{n >> 8 & 255}.{n & 255}")
    assert len(limits._buckets) == 100_000  # all still draining: all still needed
    for n in range(40_000):  # five seconds on: those buckets are full again, forgettable
        limits.take(f"client:late{n}", 5.0)
    assert len(limits._buckets) <= 40_000 and "client:10.0.0.0" not in limits._buckets
    assert "client:late0" in limits._buckets  # still draining: kept
    # a bucket still draining is kept: its key stays limited
    limits.take("a", 5.0)
    limits.take("a", 5.0)
    for n in range(5000):
        limits.take(f"client:x{n}", 5.0)
    assert limits.take("a", 5.0) is not None


def test_key_ids_never_hold_the_key() -> None:
    assert key_id("sk-secret", {"alice": "sk-secret"}) == "alice"
    anonymous = key_id("sk-secret", {"alice": "other"})
    assert anonymous.startswith("sha256:") and "secret" not in anonymous
    assert anonymous == key_id("sk-secret") != key_id("sk-secret2")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"limits.max_concurrent_per_key": 0}, "limits.max_concurrent_per_key: must be at least 1"),
        ({"limits.rate_burst": 0}, "limits.rate_burst: must be at least 1"),
        ({"limits.requests_per_minute_per_key": -1}, "requests_per_minute_per_key: must be"),
        ({"limits.body_timeout_s": 0}, "limits.body_timeout_s: must be positive"),
        ({"limits.header_timeout_s": -2}, "limits.header_timeout_s: must be positive"),
        ({"limits.drain_timeout_s": 0}, "limits.drain_timeout_s: must be positive"),
        ({"audit.backups": -1}, "audit.backups: must not be negative"),
        ({"audit.retain_days": -0.5}, "audit.retain_days: must not be negative"),
        ({"limits.named_api_keys": ["k"]}, "limits.named_api_keys: expected a mapping"),
        # /metrics is limited like the rest: no setting turns its limits off
        ({"limits.metrics_per_minute_per_key": 0}, "metrics_per_minute_per_key: must be positive"),
        ({"limits.metrics_burst": 0}, "limits.metrics_burst: must be at least 1"),
        ({"limits.metrics_concurrent_per_key": 0}, "metrics_concurrent_per_key: must be at least"),
    ],
)
def test_limit_settings_are_validated(override: dict[str, object], message: str) -> None:
    from secreason.serve.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=message):
        load_config(overrides={"model.backend": "fixed-text", **override})


@pytest.mark.parametrize(
    ("keys", "named", "per_key", "expected"),
    [
        ([], {}, None, 8),  # open server: per client address, the whole server
        (["k1"], {}, None, 8),  # one key: it may use the whole server
        (["k1"], {"bob": "k2"}, None, 4),  # several keys: half each by default
        (["k1", "k2"], {}, 3, 3),  # configured
    ],
)
def test_per_key_share_defaults(
    keys: list[str], named: dict[str, str], per_key: int | None, expected: int
) -> None:
    from secreason.serve.app import create_app
    from secreason.serve.config import load_config
    from secreason.serve.deployment import Deployment
    from secreason.serve.fixed_backend import FixedTextBackend

    config = load_config(
        overrides={
            "model.backend": "fixed-text",
            "limits.max_concurrent": 8,
            "limits.api_keys": keys,
            "limits.named_api_keys": named,
            "limits.max_concurrent_per_key": per_key,
        }
    )
    app = create_app(Deployment(config, LocalEngine(FixedTextBackend())))
    assert app.key_limits.max_in_flight == expected


def test_a_readiness_check_that_never_answers_says_so(tmp_path: Path) -> None:
    """/ready bounds each dependency's check; the detail says the time ran out (an
    asyncio timeout's own text is empty)."""
    from secreason.serve.config import load_config
    from secreason.serve.deployment import Deployment

    class Silent(LocalEngine):
        async def ready(self) -> tuple[bool, str]:
            await asyncio.Event().wait()  # a replica that accepts and never answers
            return True, "ok"

    config = load_config(overrides={"model.backend": "fixed-text"})
    deployment = Deployment(config, Silent(UntilCancelled()))
    deployment.ready_timeout_s = 0.05
    checks = asyncio.run(deployment.readiness())
    assert checks == {"model": {"ready": False, "detail": "no answer within 0.05 s"}}


def test_the_model_and_the_guard_are_checked_at_the_same_time() -> None:
    """Each check answers only once the other has started: checked one after the other,
    the model's would wait out its bound (a silent model and a silent guard cost two)."""
    from secreason.serve.config import load_config
    from secreason.serve.deployment import Deployment
    from secreason.serve.guard import Guard, GuardPolicy

    started = {"model": asyncio.Event(), "guard": asyncio.Event()}

    class Waiting(LocalEngine):
        def __init__(self, name: str, other: str) -> None:
            super().__init__(UntilCancelled())
            self.name, self.other = name, other

        async def ready(self) -> tuple[bool, str]:
            started[self.name].set()
            await started[self.other].wait()
            return True, "ok"

    config = load_config(overrides={"model.backend": "fixed-text"})
    guard_engine = Waiting("guard", "model")
    guard = Guard(guard_engine.complete, GuardPolicy(frozenset(), "block"))
    deployment = Deployment(config, Waiting("model", "guard"), guard, guard_engine)
    deployment.ready_timeout_s = 5.0
    checks = asyncio.run(deployment.readiness())
    assert checks == {
        "model": {"ready": True, "detail": "ok"},
        "guard": {"ready": True, "detail": "ok"},
    }
