"""The transformers backend's static KV cache (the GPU default) gives the same text."""

from __future__ import annotations

from pathlib import Path

import pytest

from secreason.backends.base import SamplingParams
from secreason.backends.transformers import TransformersBackend


def conversations(n: int) -> list[list[dict[str, str]]]:
    return [
        [{"role": "user", "content": f"Which CWE is item {i}? " + "overflow " * (i * 4)}]
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def pair(tiny_model_dir: Path) -> tuple[TransformersBackend, TransformersBackend]:
    dynamic = TransformersBackend(str(tiny_model_dir), batch_size=3)
    static = TransformersBackend(str(tiny_model_dir), batch_size=3, static_cache=True)
    return dynamic, static


def test_off_by_default_on_cpu(pair: tuple[TransformersBackend, TransformersBackend]) -> None:
    dynamic, static = pair
    assert dynamic.device == "cpu" and not dynamic.static_cache and static.static_cache


@pytest.mark.parametrize(
    ("static", "batched", "cache"),
    [(True, True, "static"), (True, False, None), (False, True, None), (False, False, None)],
    ids=["batched-static", "stream-stays-dynamic", "off", "off-stream"],
)
def test_only_batched_generation_asks_for_it(
    pair: tuple[TransformersBackend, TransformersBackend],
    static: bool,
    batched: bool,
    cache: str | None,
) -> None:
    backend = pair[1] if static else pair[0]
    kwargs = backend._generate_kwargs(SamplingParams(max_tokens=4), batched=batched)
    assert kwargs.get("cache_implementation") == cache


@pytest.mark.parametrize(
    "params",
    [SamplingParams(max_tokens=10), SamplingParams(max_tokens=10, temperature=1.0, seed=3)],
    ids=["greedy", "seeded-sampling"],
)
def test_static_cache_generates_the_same_text(
    pair: tuple[TransformersBackend, TransformersBackend], params: SamplingParams
) -> None:
    dynamic, static = pair
    convs = conversations(5)  # batches of 3 and 2, left-padded to different widths
    a, b = dynamic.generate(convs, params), static.generate(convs, params)
    assert [g.text for g in a] == [g.text for g in b]
    assert [g.finish_reason for g in a] == [g.finish_reason for g in b]
    assert [g.completion_tokens for g in a] == [g.completion_tokens for g in b]
