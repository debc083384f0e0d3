"""``model.engine: continuous``: transformers' continuous batching keeps the server's guarantees.

On the real tiny chat model (CPU): greedy answers equal ``generate``'s, token counts
too; a short request is answered while a long stream is still decoding (what the
default engine cannot do); a deadline or an early stop frees the row; a request that
fails inside a decode step (a prompt id outside the vocabulary, planted past the
server's checks) fails alone while its companions are answered exactly; rows sample
with their own settings. The incremental decoder is checked on byte-level tokens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from secreason.backends.base import SamplingParams
from secreason.backends.transformers import TransformersBackend
from secreason.serve.continuous import ContinuousEngine
from secreason.serve.continuous_rows import Decoder, Row
from secreason.serve.engine import EngineError, StreamInfo

PROMPTS = [
    "Which weakness is described in sample A?",
    "Which weakness is described in sample B?",
    "hello there",
    "Tell me a story",  # the tiny model rambles on this one: a long generation
]


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def backend(chat_model_dir: Path) -> TransformersBackend:
    return TransformersBackend(str(chat_model_dir), device="cpu")


@pytest.fixture(scope="module")
def reference(backend: TransformersBackend) -> list[object]:
    """What ``generate`` gives each prompt alone (greedy, 40 tokens)."""
    return [backend.generate([_user(p)], SamplingParams(max_tokens=40))[0] for p in PROMPTS]


@pytest.fixture(scope="module")
def engine(chat_model_dir: Path) -> Iterator[ContinuousEngine]:
    engine = ContinuousEngine(TransformersBackend(str(chat_model_dir), device="cpu"))
    yield engine
    engine._stop_manager()


def test_greedy_rows_equal_generate_whole_and_streamed(
    engine: ContinuousEngine, reference: list[object]
) -> None:
    async def run() -> tuple[list[object], list[tuple[str, StreamInfo]]]:
        greedy = SamplingParams(max_tokens=40)
        whole = await asyncio.gather(*(engine.complete(_user(p), greedy) for p in PROMPTS))

        async def streamed(prompt: str) -> tuple[str, StreamInfo]:
            info = StreamInfo()
            return "".join([d async for d in engine.stream(_user(prompt), greedy, info)]), info

        return whole, await asyncio.gather(*(streamed(p) for p in PROMPTS))

    cancelled = engine.cancelled
    whole, streams = asyncio.run(run())
    for got, want, (text, info) in zip(whole, reference, streams, strict=True):
        assert (got.text, got.finish_reason) == (want.text, want.finish_reason)  # type: ignore[attr-defined]
        assert (got.prompt_tokens, got.completion_tokens) == (  # type: ignore[attr-defined]
            want.prompt_tokens,  # type: ignore[attr-defined]
            want.completion_tokens,  # type: ignore[attr-defined]
        )
        assert text == want.text  # type: ignore[attr-defined]
        assert (info.finish_reason, info.prompt_tokens, info.completion_tokens) == (
            want.finish_reason,  # type: ignore[attr-defined]
            want.prompt_tokens,  # type: ignore[attr-defined]
            want.completion_tokens,  # type: ignore[attr-defined]
        )
    assert engine.running == 0 and engine.cancelled == cancelled


def test_short_request_is_answered_while_a_long_stream_decodes(
    engine: ContinuousEngine, reference: list[object]
) -> None:
    cancelled = engine.cancelled

    async def run() -> tuple[int, bool, str, list[int]]:
        pieces: list[str] = []

        async def long() -> None:
            info = StreamInfo()
            async for delta in engine.stream(
                _user(PROMPTS[3]), SamplingParams(max_tokens=900), info
            ):
                pieces.append(delta)

        task = asyncio.create_task(long())
        while not pieces:
            await asyncio.sleep(0.005)
        short = await engine.complete(_user(PROMPTS[0]), SamplingParams(max_tokens=40))
        still_running = not task.done()
        # A deadline (the server's wait_for) gives up on the long stream: its row stops.
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        after = [engine.running, engine.cancelled - cancelled]
        manager = engine._manager
        after.append(len(manager.output_router.result_handlers))
        return len(pieces), still_running, short.text, after

    pieces, still_running, short, after = asyncio.run(run())
    assert still_running and short == reference[0].text  # type: ignore[attr-defined]
    assert after == [0, 1, 0], "the long row is cancelled and leaves nothing behind"


def test_stop_string_cuts_the_completion_and_frees_its_row(engine: ContinuousEngine) -> None:
    async def run() -> object:
        return await engine.complete(
            _user(PROMPTS[0]), SamplingParams(max_tokens=40, stop=("query",))
        )

    cancelled = engine.cancelled
    got = asyncio.run(run())
    assert (got.text, got.finish_reason) == ("The input reaches a ", "stop")  # type: ignore[attr-defined]
    # Ended by the server (its stop string), not given up by a client: nothing cancelled.
    assert engine.running == 0 and engine.cancelled == cancelled


def test_a_row_failing_in_a_step_fails_alone(
    engine: ContinuousEngine, reference: list[object]
) -> None:
    async def poisoned() -> None:
        decoder = Decoder(engine.model_backend._decode, set())
        row = Row([10**6], SamplingParams(max_tokens=5), decoder)  # no such embedding
        async for _ in engine._outputs(row):
            pass

    async def run() -> list[object]:
        innocent = [engine.complete(_user(p), SamplingParams(max_tokens=40)) for p in PROMPTS]
        results = await asyncio.gather(poisoned(), *innocent, return_exceptions=True)
        results.append(await engine.complete(_user(PROMPTS[1]), SamplingParams(max_tokens=40)))
        return results

    bad, *innocent, later = asyncio.run(run())
    assert isinstance(bad, EngineError) and bad.status == 500
    assert [g.text for g in innocent] == [r.text for r in reference]  # type: ignore[attr-defined]
    assert later.text == reference[1].text and engine.restarts >= 1  # type: ignore[attr-defined]


def test_rows_sample_with_their_own_settings(
    engine: ContinuousEngine, reference: list[object]
) -> None:
    hot = SamplingParams(max_tokens=40, temperature=5.0, top_p=1.0)

    async def run() -> list[object]:
        greedy = engine.complete(_user(PROMPTS[1]), SamplingParams(max_tokens=40))
        sampled = [engine.complete(_user(PROMPTS[1]), hot) for _ in range(3)]
        return list(await asyncio.gather(greedy, *sampled))

    greedy, *sampled = asyncio.run(run())
    assert greedy.text == reference[1].text  # type: ignore[attr-defined]
    assert all(s.text != greedy.text for s in sampled)  # type: ignore[attr-defined]


# ------------------------------------------------------------------ the decoder


def _bytes_decoder(eos: int = 0) -> Decoder:
    """Token i is byte i (1..255), as a byte-level vocabulary would split text."""
    return Decoder(lambda ids: bytes(ids).decode("utf-8", errors="replace"), {eos})


@pytest.mark.parametrize(
    "text",
    [
        "plain ascii",
        "café",
        "😀 first",
        "mixed 😀 emoji ✓ and ä",
        "\u4e2d\u6587",
        "a\ufffdb",
    ],
)
def test_decoder_never_splits_a_character(text: str) -> None:
    tokens = list(text.encode())
    decoder = _bytes_decoder()
    deltas = [decoder.feed(tokens[: i + 1]) for i in range(len(tokens))]
    deltas.append(decoder.flush(tokens))
    assert "".join(deltas) == text
    assert all("\ufffd" not in d for d in deltas) or "\ufffd" in text


@pytest.mark.parametrize(
    ("tokens", "max_tokens", "expected"),
    [
        ([104, 105, 0, 106], 10, ("hi", "stop", 3)),  # EOS ends the text and counts
        ([104, 105], 2, ("hi", "length", 2)),
        ([104, 105], 10, ("hi", "stop", 2)),  # stopped early (a stop string, a cancel)
        ([0], 5, ("", "stop", 1)),
    ],
)
def test_decoder_finish(tokens: list[int], max_tokens: int, expected: tuple[str, str, int]) -> None:
    decoder = _bytes_decoder()
    text = decoder.feed(tokens) + decoder.flush(tokens)
    assert (text, *decoder.finish(tokens, SamplingParams(max_tokens=max_tokens))) == expected


def test_decoder_finds_a_stop_string_split_across_deltas() -> None:
    decoder = _bytes_decoder()
    tokens = list(b"answer: STOP here")
    seen = []
    for i in range(len(tokens)):
        delta = decoder.feed(tokens[: i + 1])
        seen.append(bool(delta) and decoder.holds(("STOP",), delta))
    assert seen.index(True) == len("answer: STOP") - 1


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"model.engine": "continuous", "model.backend": "fixed-text"}, "model.engine"),
        ({"model.engine": "streaming"}, "model.engine"),
        ({"model.engine": "continuous", "model.continuous_cache_tokens": 0}, "cache_tokens"),
        ({"model.engine": "continuous", "model.continuous_cache_tokens": 4096}, None),
        ({"model.engine": "batch"}, None),
    ],
)
def test_engine_settings_are_validated(overrides: dict[str, object], error: str | None) -> None:
    from secreason.serve.config import ConfigError, load_config

    settings = {"model.path": "/models/x", **overrides}
    if error is None:
        assert load_config(None, settings).model.engine == overrides["model.engine"]
    else:
        with pytest.raises(ConfigError, match=error):
            load_config(None, settings)
