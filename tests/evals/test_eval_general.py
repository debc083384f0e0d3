"""General-capability glue, offline: what lm-eval and alpaca-eval would be handed.

lm-evaluation-harness and alpaca-eval are optional extras and are not installed in the
test environment; their task data and judges need the network anyway. What can run
offline runs here: the reasoning strip and stop-string cut, the chat round trip, the
result flattening, the AlpacaEval records, math-verify, and the lm-eval adapter class
driven through a stand-in of lm-eval's two-method ``LM`` base class.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from secreason.backends.base import Backend, Generation, Message, SamplingParams
from secreason.evals import general


@pytest.mark.parametrize(
    ("completion", "until", "prefilled", "expected"),
    [
        ("<think>6*7</think>The answer is 42.", (), False, "The answer is 42."),
        ("<think>x</think>42\n\nQuestion: next", ("Question:",), False, "42\n\n"),
        ("plain 7", ("\n\n",), False, "plain 7"),
        ("<think>never closed 42", (), False, ""),
        ("reasoning only then</think> 9", (), True, "9"),
        ("<think>a</think>b END c END", ("END", "c"), False, "b "),
    ],
    ids=["strip", "stop", "no-reasoning", "unclosed", "prefilled", "earliest-stop"],
)
def test_continuation(
    completion: str, until: tuple[str, ...], prefilled: bool, expected: str
) -> None:
    assert general.continuation(completion, until, prefilled=prefilled) == expected


def test_chat_round_trip_and_plain_context() -> None:
    chat = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]
    assert general.decode_chat(json.dumps(chat)) == chat
    assert general.decode_chat("Q: 2+2?\nA:") == [{"role": "user", "content": "Q: 2+2?\nA:"}]


def test_task_names_and_sampling() -> None:
    assert general.lm_eval_task_names(["GSM8K", "bbh", "my_custom"]) == [
        "gsm8k_cot_zeroshot",
        "bbh_cot_zeroshot",
        "my_custom",
    ]
    default = SamplingParams(temperature=0.6, top_p=0.95, max_tokens=4096, seed=1)
    greedy = general.sampling_from({"until": ["\n"], "max_gen_toks": 256}, default)
    assert greedy.temperature == 0.0 and greedy.max_tokens == 4096  # reasoning room kept
    sampled = general.sampling_from({"do_sample": True, "temperature": 0.7}, default)
    assert sampled.temperature == 0.7 and sampled.seed == 1


def test_flatten_results_skips_stderr_and_aliases() -> None:
    results = {
        "results": {
            "gsm8k_cot_zeroshot": {
                "alias": "gsm8k",
                "exact_match,strict-match": 0.5,
                "exact_match_stderr,strict-match": 0.01,
            },
            "ifeval": {"inst_level_loose_acc,none": 0.8, "note": "text"},
        }
    }
    assert general.flatten_results(results) == {
        "gsm8k_cot_zeroshot/exact_match,strict-match": 0.5,
        "ifeval/inst_level_loose_acc,none": 0.8,
    }


def test_alpaca_outputs_hold_answers_only() -> None:
    records = general.alpaca_outputs(
        ["Say hi", "Say bye"], ["<think>greet</think>Hi!", "<think>cut"], "tiny"
    )
    assert records == [
        {"instruction": "Say hi", "output": "Hi!", "generator": "tiny"},
        {"instruction": "Say bye", "output": "", "generator": "tiny"},
    ]


@pytest.mark.parametrize(
    ("completion", "gold", "expected"),
    [
        ("<think>half of 1</think>The answer is $\\frac{1}{2}$", "0.5", True),
        ("<think>x</think>\\boxed{42}", "42", True),
        ("<think>x</think>\\boxed{41}", "42", False),
        ("<think>\\boxed{42} in reasoning only", "42", False),
    ],
    ids=["fraction-vs-decimal", "boxed", "wrong", "unclosed"],
)
def test_math_equal(completion: str, gold: str, expected: bool) -> None:
    assert general.math_equal(completion, gold) is expected


class EchoBackend(Backend):
    """Answers each conversation with reasoning plus the last user turn, reversed."""

    model_id = "echo"

    def __init__(self) -> None:
        self.calls: list[tuple[int, SamplingParams]] = []

    def generate(
        self, conversations: Sequence[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        self.calls.append((len(conversations), params))
        return [
            Generation(c[-1]["content"][::-1] + "\nSTOP tail", reasoning="hidden")
            for c in conversations
        ]


@dataclass
class Request:
    args: tuple[str, dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)


def test_lm_eval_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("lm_eval") is None:
        with pytest.raises(ImportError, match=r"secreason\[general\]"):
            general.lm_eval_model(EchoBackend())
        # Stand-in for lm_eval.api.model: the base class the adapter subclasses.
        api = types.ModuleType("lm_eval.api")
        model = types.ModuleType("lm_eval.api.model")
        model.LM = type("LM", (), {"__init__": lambda self: None})  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "lm_eval", types.ModuleType("lm_eval"))
        monkeypatch.setitem(sys.modules, "lm_eval.api", api)
        monkeypatch.setitem(sys.modules, "lm_eval.api.model", model)
    backend = EchoBackend()
    lm = general.lm_eval_model(backend, batch_size=2)
    context = lm.apply_chat_template([{"role": "user", "content": "abc"}])
    requests = [Request((context, {"until": ["STOP"]})) for _ in range(3)]
    assert lm.generate_until(requests) == ["cba\n"] * 3
    assert [n for n, _ in backend.calls] == [2, 1]  # batched
    with pytest.raises(NotImplementedError, match="generative"):
        lm.loglikelihood([])


@pytest.mark.slow
def test_lm_eval_adapter_on_a_tiny_model(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from secreason.backends.transformers import TransformersBackend

    if importlib.util.find_spec("lm_eval") is None:
        model = types.ModuleType("lm_eval.api.model")
        model.LM = type("LM", (), {"__init__": lambda self: None})  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "lm_eval", types.ModuleType("lm_eval"))
        monkeypatch.setitem(sys.modules, "lm_eval.api", types.ModuleType("lm_eval.api"))
        monkeypatch.setitem(sys.modules, "lm_eval.api.model", model)
    backend = TransformersBackend(str(tiny_model_dir), batch_size=2)
    lm = general.lm_eval_model(backend, params=SamplingParams(max_tokens=8))
    context = lm.apply_chat_template([{"role": "user", "content": "What is 2 + 2?"}])
    outputs = lm.generate_until([Request((context, {"until": ["\n\n"]}))] * 3)
    assert len(outputs) == 3 and all("\n\n" not in o for o in outputs)
    raw = backend.generate([general.decode_chat(context)], SamplingParams(max_tokens=8))[0]
    expected = general.continuation(raw.full_text(), ["\n\n"], prefilled=backend.prefilled)
    assert outputs[0] == expected  # greedy: the adapter returns the stripped continuation
