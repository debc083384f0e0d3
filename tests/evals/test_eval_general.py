"""General-capability glue, offline: what lm-eval would be handed.

lm-evaluation-harness is an optional extra (installed with the dev extra); its task
data needs the network, so the tests bring their own tasks. What can run
offline runs here: the reasoning strip and stop-string cut, the chat round trip, the
result flattening, math-verify, and the lm-eval adapter class
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


# --- the real harnesses, offline (skip without the ``general`` extra) ----------------

needs_lm_eval = pytest.mark.skipif(
    importlib.util.find_spec("lm_eval") is None,
    reason="lm-evaluation-harness is not installed (pip install 'secreason[general]')",
)
#: our own toy arithmetic, gold answers beside
SUMS = [("2 + 3", "5"), ("4 + 4", "8"), ("9 - 2", "7"), ("6 / 3", "2")]


def write_task(folder: Path, name: str, until: str, max_gen_toks: int = 64) -> Path:
    """A generative lm-eval task over a local JSONL file: no hub, no download."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{name}.jsonl"
    data.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in SUMS))
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {json.dumps(str(data))}\n"
        "output_type: generate_until\n"
        "test_split: test\n"
        'doc_to_text: "Compute {{question}}. Reply with the number only."\n'
        'doc_to_target: "{{answer}}"\n'
        "generation_kwargs:\n"
        f"  until: [{json.dumps(until)}]\n"
        "  do_sample: false\n"
        f"  max_gen_toks: {max_gen_toks}\n"
        "metric_list:\n"
        "  - metric: exact_match\n"
        "    aggregation: mean\n"
        "    higher_is_better: true\n"
        "metadata:\n  version: 1.0\n"
    )
    return folder


class ScriptedBackend(Backend):
    """Completes each toy question by a rule of the test (gold answer given)."""

    model_id = "scripted"

    def __init__(self, rule: Any) -> None:
        self.rule = rule
        self.calls: list[tuple[int, SamplingParams]] = []

    def generate(
        self, conversations: Sequence[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        self.calls.append((len(conversations), params))
        gold = dict(SUMS)
        out = []
        for conversation in conversations:
            question = conversation[-1]["content"].split("Compute ")[1].split(".")[0]
            out.append(Generation(self.rule(gold[question])))
        return out


def wrong(gold: str) -> str:
    return str(int(gold) + 1)


@needs_lm_eval
@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (lambda g: f"<think>It is {g}.</think>{wrong(g)}", 0.0),
        (lambda g: f"<think>It is {wrong(g)}.</think>{g}", 1.0),
        (lambda g: f"<think>{g}</think>\n\n{g}\n\nCompute more: {wrong(g)}", 1.0),
        (lambda g: f"<think>sure, {g}", 0.0),
        (lambda g: g if g in ("5", "8") else f"<think>{g}</think>{wrong(g)}", 0.5),
    ],
    ids=["right-in-reasoning-only", "right-in-answer", "stop-string-cut", "unclosed", "half"],
)
def test_lm_eval_scores_the_answer_region(tmp_path: Path, rule: Any, expected: float) -> None:
    tasks = write_task(tmp_path / "tasks", "toy_sums", "\n\n")
    flat = general.run_lm_eval(ScriptedBackend(rule), ["toy_sums"], include_path=str(tasks))
    assert flat == {"toy_sums/exact_match,none": pytest.approx(expected)}


@needs_lm_eval
def test_lm_eval_batches_each_task_with_its_own_stops(tmp_path: Path) -> None:
    # "5. More" is right for a task stopping at "." and wrong for one stopping at "\n\n":
    # one lm-eval call hands both tasks' requests over together.
    tasks = tmp_path / "tasks"
    write_task(tasks, "toy_blank", "\n\n", max_gen_toks=32)
    write_task(tasks, "toy_dot", ".", max_gen_toks=48)
    backend = ScriptedBackend(lambda g: f"<think>x</think>{g}. More\n\nfin")
    flat = general.run_lm_eval(
        backend, ["toy_blank", "toy_dot"], include_path=str(tasks), batch_size=3
    )
    assert flat == {"toy_blank/exact_match,none": 0.0, "toy_dot/exact_match,none": 1.0}
    assert sorted(n for n, _ in backend.calls) == [2, 3, 3]  # alike decoding: one group
    assert {p.max_tokens for _, p in backend.calls} == {4096}  # reasoning room kept


class RecordingBackend(Backend):
    """A real backend whose generations the test keeps, to recompute the score."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.prefilled = inner.prefilled
        self.seen: list[tuple[str, str]] = []

    def generate(
        self, conversations: Sequence[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        made = self.inner.generate(conversations, params)
        for conversation, generation in zip(conversations, made, strict=True):
            self.seen.append((conversation[-1]["content"], generation.full_text()))
        return made


@needs_lm_eval
@pytest.mark.slow
def test_lm_eval_on_a_tiny_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    from secreason.backends.transformers import TransformersBackend

    tasks = write_task(tmp_path / "tasks", "toy_sums", "\n\n", max_gen_toks=8)
    backend = RecordingBackend(TransformersBackend(str(tiny_model_dir), batch_size=4))
    flat = general.run_lm_eval(
        backend,
        ["toy_sums"],
        include_path=str(tasks),
        params=SamplingParams(max_tokens=8),
        system_instruction="Be brief.",
    )
    assert list(flat) == ["toy_sums/exact_match,none"]
    assert len(backend.seen) == len(SUMS)
    gold = dict(SUMS)
    by_hand = [
        general.continuation(text, ["\n\n"], prefilled=backend.prefilled)
        == gold[prompt.split("Compute ")[1].split(".")[0]]
        for prompt, text in backend.seen
    ]
    assert flat["toy_sums/exact_match,none"] == pytest.approx(sum(by_hand) / len(by_hand))


@needs_lm_eval
@pytest.mark.slow
def test_eval_command_folds_lm_eval_into_the_report(tmp_path: Path, tiny_model_dir: Path) -> None:
    from typer.testing import CliRunner

    from secreason.cli import app

    tasks = write_task(tmp_path / "tasks", "toy_sums", "\n\n", max_gen_toks=8)
    out = tmp_path / "run"
    args = ["eval", "none", "--model", str(tiny_model_dir), "--lm-eval", "toy_sums"]
    args += ["--lm-eval-include", str(tasks), "--max-tokens", "8", "--limit", "3"]
    args += ["--trials", "2", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    bench = next(b for b in report["benchmarks"] if b["name"] == "lm-eval")
    assert bench["headline"] == "toy_sums/exact_match,none" and bench["trials"] == 2
    cached = (out / "cache" / "lm-eval" / "generations.jsonl").read_text().splitlines()
    assert len(cached) == 2 * 3  # --limit rows, once per trial seed
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert len((out / "cache" / "lm-eval" / "generations.jsonl").read_text().splitlines()) == 6

    # --rescore: lm-eval scores again from the cache, no model loaded...
    rescored = CliRunner().invoke(app, [*args, "--rescore"])
    assert rescored.exit_code == 0, rescored.output
    report_again = json.loads((out / "report.json").read_text())
    assert report_again["benchmarks"] == report["benchmarks"]
    # ...and says so when the cache lacks what it needs (another seed).
    missing = CliRunner().invoke(app, [*args, "--rescore", "--seed", "7"])
    assert missing.exit_code == 2 and "missing from the cache" in missing.output

    bad = CliRunner().invoke(app, [*args[:5], "no_such_toy", *args[6:]])
    assert bad.exit_code != 0 and "no_such_toy" in bad.output
