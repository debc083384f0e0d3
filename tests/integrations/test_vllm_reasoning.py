"""The ``secreason`` vLLM reasoning parser: the contract's rules, whole and streamed.

vLLM has no CPU wheel, so the plugin's class is loaded against a stand-in of the three
names it imports from vLLM (the parser base, its registry, DeltaMessage); the logic is
in pure functions tested directly, streaming through the tiny model's real tokenizer.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from secreason.integrations import vllm_reasoning as vr
from secreason.reasoning import split
from secreason.train.tiny import TinyConfig, chat_template, train_tokenizer

WHY = "The actor ran encoded PowerShell, which is execution."

# (name, completion, prefilled, reasoning, content)
CASES: list[tuple[str, str, bool, str | None, str | None]] = [
    ("prefilled", f"{WHY}</think>\nAnswer: B", True, WHY, "Answer: B"),
    ("prefilled-re-emitted", f"<think>{WHY}</think>\nAnswer: B", True, WHY, "Answer: B"),
    ("prefilled-unclosed", f"{WHY}\nAnswer: B", True, f"{WHY}\nAnswer: B", None),
    ("open", f"<think>{WHY}</think>\nAnswer: B", False, WHY, "Answer: B"),
    ("open-unclosed", f"<think>{WHY} Answer: B", False, f"{WHY} Answer: B", None),
    ("no-tags", "Answer: B", False, None, "Answer: B"),
    ("reopened", f"{WHY}</think>Answer: B <think>Answer: C", True, f"{WHY} Answer: C", "Answer: B"),
    ("empty-answer", f"{WHY}</think>\n", True, WHY, None),
    ("only-close", "</think>Answer: B", False, None, "Answer: B"),
]


@pytest.mark.parametrize(("name", "text", "prefilled", "reasoning", "content"), CASES)
def test_whole_completion(
    name: str, text: str, prefilled: bool, reasoning: str | None, content: str | None
) -> None:
    assert vr.split_final(text, prefilled=prefilled) == (reasoning, content)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    tok = train_tokenizer(
        ["Answer: B", WHY, "Answer: C", "The actor, which is execution."], vocab_size=300
    )
    tok.chat_template = chat_template(TinyConfig())
    return tok


def stream(tokenizer: Any, text: str, prefilled: bool) -> Iterator[tuple[str | None, str | None]]:
    """Deltas as vLLM makes them: decode the ids so far, one token at a time."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    previous = ""
    for n in range(1, len(ids) + 1):
        current = tokenizer.decode(ids[:n])
        yield vr.stream_delta(previous, current, prefilled=prefilled)
        previous = current


WELL_FORMED = [c for c in CASES if c[0] not in ("reopened", "only-close")]


@pytest.mark.parametrize(("name", "text", "prefilled", "reasoning", "content"), WELL_FORMED)
def test_streamed_deltas_add_up_to_the_whole_split(
    tokenizer: Any,
    name: str,
    text: str,
    prefilled: bool,
    reasoning: str | None,
    content: str | None,
) -> None:
    deltas = list(stream(tokenizer, text, prefilled))
    got_reasoning = "".join(r for r, _ in deltas if r)
    got_content = "".join(c for _, c in deltas if c)
    assert (got_reasoning or None, got_content or None) == (reasoning, content)
    # All reasoning comes before any content, and no tag leaks into either side.
    first_content = next((i for i, (_, c) in enumerate(deltas) if c), len(deltas))
    assert not any(r for r, _ in deltas[first_content:])
    assert not any(t in got_reasoning + got_content for t in ("<think", "</think", "</"))


def test_a_tag_split_across_deltas_is_held_back() -> None:
    assert vr.stream_delta("abc", "abc</th", prefilled=True) == (None, None)
    assert vr.stream_delta("abc</th", "abc</think>\nAnswer", prefilled=True) == (None, "Answer")
    assert vr.stream_delta("", "<thi", prefilled=False) == (None, None)


def test_content_is_never_streamed_for_an_unclosed_block() -> None:
    text, prev = "", ""
    for piece in ["Let me see.", " Answer: B", "\nAnswer: B"]:
        prev, text = text, text + piece
        assert vr.stream_delta(prev, text, prefilled=True)[1] is None


@pytest.mark.parametrize(
    ("ids", "ended", "content"),
    [
        ([5, 6, 7], False, []),  # prefilled, still thinking
        ([5, 2, 8, 9], True, [8, 9]),
        ([1, 5, 2, 8], True, [8]),
        ([1, 5, 2, 8, 1, 9], False, [8]),  # reopened: not ended, answer stops
        ([2, 2, 8], True, [8]),
    ],
)
def test_token_id_rules(ids: list[int], ended: bool, content: list[int]) -> None:
    assert vr.reasoning_ended(ids, 1, 2) is ended
    assert vr.content_ids(ids, 1, 2, prefilled=True) == content


def test_prefill_is_read_from_the_template(tokenizer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert vr.template_prefills(tokenizer) is True
    monkeypatch.setenv("SECREASON_PREFILLED", "0")
    assert vr.template_prefills(tokenizer) is False
    monkeypatch.delenv("SECREASON_PREFILLED")
    tokenizer.chat_template = chat_template(TinyConfig(prefill_think=False))
    try:
        assert vr.template_prefills(tokenizer) is False
    finally:
        tokenizer.chat_template = chat_template(TinyConfig())
    assert vr.tag_ids(tokenizer) == (
        tokenizer.convert_tokens_to_ids("<think>"),
        tokenizer.convert_tokens_to_ids("</think>"),
    )


# -------------------------------------------------------- the plugin, against a stand-in


@dataclass
class DeltaMessage:  # the fields vLLM >= 0.12 has
    content: str | None = None
    reasoning: str | None = None


def _fake_vllm(monkeypatch: pytest.MonkeyPatch) -> dict[str, type]:
    registry: dict[str, type] = {}

    class ReasoningParser:
        def __init__(self, tokenizer: Any, *args: Any, **kwargs: Any) -> None:
            self.model_tokenizer = tokenizer

    class ReasoningParserManager:
        @staticmethod
        def register_module(name: str) -> Any:
            def deco(cls: type) -> type:
                registry[name] = cls
                return cls

            return deco

    reasoning = types.ModuleType("vllm.reasoning")
    reasoning.ReasoningParser = ReasoningParser  # type: ignore[attr-defined]
    reasoning.ReasoningParserManager = ReasoningParserManager  # type: ignore[attr-defined]
    protocol = types.ModuleType("vllm.entrypoints.openai.engine.protocol")
    protocol.DeltaMessage = DeltaMessage  # type: ignore[attr-defined]
    for name, module in {
        "vllm": types.ModuleType("vllm"),
        "vllm.reasoning": reasoning,
        "vllm.entrypoints": types.ModuleType("vllm.entrypoints"),
        "vllm.entrypoints.openai": types.ModuleType("vllm.entrypoints.openai"),
        "vllm.entrypoints.openai.engine": types.ModuleType("vllm.entrypoints.openai.engine"),
        "vllm.entrypoints.openai.engine.protocol": protocol,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    return registry


def test_plugin_file_registers_secreason(tokenizer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = _fake_vllm(monkeypatch)
    # vLLM loads --reasoning-parser-plugin as a file, not as a package import.
    spec = importlib.util.spec_from_file_location("secreason_plugin", vr.__file__)
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    parser = registry["secreason"](tokenizer)
    assert parser.prefilled is True
    text = f"{WHY}</think>\nAnswer: B"
    assert parser.extract_reasoning(text, request=None) == (WHY, "Answer: B")
    assert parser.extract_reasoning_content(f"{WHY}", None) == (WHY, None)
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert parser.is_reasoning_end(ids) and not parser.is_reasoning_end(ids[:3])
    assert tokenizer.decode(parser.extract_content_ids(ids)).strip() == "Answer: B"
    delta = parser.extract_reasoning_streaming("x</think>", "x</think>Answer", "Answer", [], [], [])
    assert delta == DeltaMessage(content="Answer", reasoning=None)
    assert parser.extract_reasoning_streaming("x", "x</th", "</th", [], [], []) is None
    assert split(text, prefilled=True).answer == "Answer: B"  # the same contract
    # Tags the vocabulary splits into several tokens: the end is read from the text.
    parser.start_token_id = parser.end_token_id = -1
    assert parser.is_reasoning_end(ids) and not parser.is_reasoning_end(ids[:3])
    reopened = tokenizer.encode(text + "<think>more", add_special_tokens=False)
    assert not parser.is_reasoning_end(reopened)
