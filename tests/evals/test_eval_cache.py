"""Cache keys change with every input that decides a generation, and only with those."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from secreason.backends.base import Backend, Generation, Message, SamplingParams
from secreason.evals.cache import CachedBackend, CacheRecord, GenerationCache, generation_key

MESSAGES = [{"role": "system", "content": "sys"}, {"role": "user", "content": "q"}]
PARAMS = SamplingParams(temperature=0.6, top_p=0.95, max_tokens=100, seed=1)
BASE = generation_key("m", "r1", MESSAGES, PARAMS, system_prompt="sys")


@pytest.mark.parametrize(
    "changed",
    [
        generation_key("m2", "r1", MESSAGES, PARAMS, system_prompt="sys"),
        generation_key("m", "r2", MESSAGES, PARAMS, system_prompt="sys"),
        generation_key("m", None, MESSAGES, PARAMS, system_prompt="sys"),
        generation_key("m", "r1", [MESSAGES[1]], PARAMS, system_prompt="sys"),
        generation_key(
            "m", "r1", [MESSAGES[0], {"role": "user", "content": "q "}], PARAMS, system_prompt="sys"
        ),
        generation_key("m", "r1", MESSAGES, PARAMS, system_prompt="other"),
        generation_key("m", "r1", MESSAGES, replace(PARAMS, temperature=0.7), system_prompt="sys"),
        generation_key("m", "r1", MESSAGES, replace(PARAMS, top_p=1.0), system_prompt="sys"),
        generation_key("m", "r1", MESSAGES, replace(PARAMS, max_tokens=101), system_prompt="sys"),
        generation_key("m", "r1", MESSAGES, replace(PARAMS, seed=2), system_prompt="sys"),
        generation_key("m", "r1", MESSAGES, replace(PARAMS, stop=("\n",)), system_prompt="sys"),
        generation_key("m", "r1", MESSAGES, PARAMS, system_prompt="sys", attempt=1),
    ],
    ids=[
        "model",
        "revision",
        "no-revision",
        "messages",
        "whitespace",
        "system",
        "temperature",
        "top_p",
        "max_tokens",
        "seed",
        "stop",
        "attempt",
    ],
)
def test_every_input_changes_the_key(changed: str) -> None:
    assert changed != BASE


def test_same_inputs_same_key() -> None:
    copy = [dict(m) for m in MESSAGES]
    assert generation_key("m", "r1", copy, replace(PARAMS), system_prompt="sys") == BASE


def test_duplicate_lines_keep_the_first(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    first = CacheRecord("k", "s", "first")
    path.write_text(first.to_json() + "\n" + CacheRecord("k", "s", "second").to_json() + "\n")
    cache = GenerationCache(path)
    assert cache.get("k").text == "first" and cache.duplicate_lines == 1  # type: ignore[union-attr]
    cache.append([CacheRecord("k", "s", "third")])
    assert len(path.read_text().splitlines()) == 2


class Counting(Backend):
    def __init__(self) -> None:
        self.model_id = "judge"
        self.seen: list[str] = []

    def generate(self, conversations: list[list[Message]], params: SamplingParams):  # type: ignore[override]
        self.seen += [c[-1]["content"] for c in conversations]
        return [Generation(f"verdict for {c[-1]['content']}") for c in conversations]


def test_cached_backend_generates_each_conversation_once(tmp_path: Path) -> None:
    inner = Counting()
    judge = CachedBackend(inner, tmp_path / "judge.jsonl")
    convs = [[{"role": "user", "content": t}] for t in ("a", "b")]
    assert [g.text for g in judge.generate(convs, SamplingParams())] == [
        "verdict for a",
        "verdict for b",
    ]
    again = CachedBackend(inner, tmp_path / "judge.jsonl")
    out = again.generate([convs[1], [{"role": "user", "content": "c"}]], SamplingParams())
    assert [g.text for g in out] == ["verdict for b", "verdict for c"]
    assert inner.seen == ["a", "b", "c"]
