"""The transformers backend on the shared tiny model: batching, seeds, prefill, streaming."""

from __future__ import annotations

from pathlib import Path

import pytest

from secreason.backends.base import SamplingParams
from secreason.backends.transformers import TransformersBackend
from secreason.reasoning import split, split_ids


@pytest.fixture(scope="module")
def backend(tiny_model_dir: Path) -> TransformersBackend:
    return TransformersBackend(str(tiny_model_dir), batch_size=4)


def conversations(n: int) -> list[list[dict[str, str]]]:
    # Prompts of very different lengths, so batches really carry left padding.
    return [
        [{"role": "user", "content": f"Which CWE is item {i}? " + "buffer " * (i * 3)}]
        for i in range(n)
    ]


def test_batched_equals_one_at_a_time_under_greedy(backend: TransformersBackend) -> None:
    params = SamplingParams(max_tokens=12)
    convs = conversations(7)
    batched = backend.generate(convs, params)
    single = [backend.generate([c], params)[0] for c in convs]
    assert [g.text for g in batched] == [g.text for g in single]
    assert [g.completion_tokens for g in batched] == [g.completion_tokens for g in single]
    assert all(g.prompt_tokens > 0 for g in batched)
    assert all(g.finish_reason in ("stop", "length") for g in batched)


def test_sampling_is_reproducible_per_seed(backend: TransformersBackend) -> None:
    convs = conversations(3)
    first = backend.generate(convs, SamplingParams(temperature=1.0, max_tokens=12, seed=7))
    again = backend.generate(convs, SamplingParams(temperature=1.0, max_tokens=12, seed=7))
    other = backend.generate(convs, SamplingParams(temperature=1.0, max_tokens=12, seed=8))
    assert [g.text for g in first] == [g.text for g in again]
    assert [g.text for g in first] != [g.text for g in other]


def test_detects_prefilled_template(backend: TransformersBackend) -> None:
    assert backend.prefilled is True
    assert backend.render([{"role": "user", "content": "x"}]).endswith("<think>\n")


def test_max_tokens_gives_length_finish(backend: TransformersBackend) -> None:
    gen = backend.generate(conversations(1), SamplingParams(max_tokens=3))[0]
    assert gen.completion_tokens <= 3
    if gen.completion_tokens == 3:
        assert gen.finish_reason == "length"


def test_stream_yields_the_greedy_completion(backend: TransformersBackend) -> None:
    params = SamplingParams(max_tokens=10)
    conv = conversations(2)[1]
    whole = backend.generate([conv], params)[0].text
    deltas = list(backend.stream(conv, params))
    assert "".join(deltas) == whole


def test_think_ids_keep_special_delimiters(tiny_model_dir: Path) -> None:
    # Role tokens are special in the tiny tokenizer: use two of them as "think" ids to
    # stand for a model whose tags are special tokens that decoding would erase.
    backend = TransformersBackend(str(tiny_model_dir), batch_size=2)
    tok = backend.tokenizer
    open_id, close_id = tok.convert_tokens_to_ids(["<|system|>", "<|user|>"])
    backend.think_ids = (open_id, close_id)
    body = tok("let me think", add_special_tokens=False)["input_ids"]
    answer = tok("Answer: B", add_special_tokens=False)["input_ids"]
    ids = [open_id, *body, close_id, *answer]
    assert tok.decode(ids, skip_special_tokens=True).count("<think>") == 0
    text = backend._decode(ids)
    by_text, by_ids = split(text), split_ids(ids, open_id, close_id)
    assert by_text.status == by_ids.status == "closed"
    assert by_text.answer == tok.decode(by_ids.answer_ids).strip() == "Answer: B"
    assert by_text.reasoning == "let me think"


def test_rejects_unknown_dtype(tiny_model_dir: Path) -> None:
    with pytest.raises(ValueError, match="dtype 'int3'"):
        TransformersBackend(str(tiny_model_dir), dtype="int3")
