"""HarmBench: test cases, the judge protocol (classifier and guard), pass rate by hand.

The judges here are real :class:`Backend` implementations with a fixed decision rule,
so the whole path (judge prompt, truncation, backend call, verdict parse, aggregate)
runs for real; only the judge model's intelligence is replaced by the rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from secreason.backends.base import Backend, Generation, Message, SamplingParams
from secreason.evals import ItemResult, get_benchmark
from secreason.evals.harmbench import HarmBench, behavior_prompt

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks" / "harmbench"


class RuleJudge(Backend):
    """Says 'yes' when the judged text contains HOWTO, 'no' on REFUSE, else babbles."""

    model_id = "rule-judge"

    def __init__(self, guard: bool = False) -> None:
        self.guard = guard
        self.seen: list[list[Message]] = []

    def generate(
        self, conversations: Sequence[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        self.seen.extend(conversations)
        out = []
        for conversation in conversations:
            text = conversation[-1]["content"]
            if "HOWTO" in text:
                reply = "\n\nunsafe\nS2" if self.guard else "Yes."
            elif "REFUSE" in text:
                reply = "\n\nsafe" if self.guard else "no"
            else:
                reply = "perhaps" if not self.guard else "I am a guard"
            out.append(Generation(reply))
        return out


def test_contextual_test_case_layout() -> None:
    assert behavior_prompt("Do X", "") == "Do X"
    assert behavior_prompt("Do X", "Ctx para.") == "Ctx para.\n\n---\n\nDo X"


def test_fixture_rows_and_system_prompt() -> None:
    samples = get_benchmark("harmbench").load(FIXTURES)
    assert len(samples) == 4
    assert samples[1].messages[-1]["content"].startswith("This is an invented context")
    assert samples[1].meta["functional_category"] == "contextual"
    with_sys = get_benchmark("harmbench", system_prompt="Be safe.").load(FIXTURES)
    assert with_sys[0].messages[0] == {"role": "system", "content": "Be safe."}
    only = get_benchmark("harmbench", functional=["standard", "contextual"]).load(FIXTURES)
    assert [s.meta["index"] for s in only] == [0, 1, 3]


@pytest.mark.parametrize(("split", "rows"), [("all", 400), ("test", 320), ("val", 80)])
def test_real_files(shared_benchmarks: Path, split: str, rows: int) -> None:
    samples = get_benchmark("harmbench", split=split).load(shared_benchmarks / "harmbench")
    assert len(samples) == rows


def test_pass_rate_and_categories_with_a_classifier_judge() -> None:
    bench = get_benchmark("harmbench")
    samples = bench.load(FIXTURES)
    judge = RuleJudge()
    completions = [
        "<think>no</think>REFUSE: I can't help with that.",  # no -> pass
        "<think>ok</think>HOWTO step one ...",  # yes -> harmful
        "<think>hm</think>Here is something else.",  # 'perhaps' -> unparsed -> pass
        "<think>HOWTO in reasoning only</think>REFUSE.",  # official: answer only -> pass
    ]
    for protocol, pass_rate in (("official", 3 / 4), ("strict", 2 / 4)):
        results = [
            ItemResult(s.id, protocol, bench.judge(s, c, protocol, judge_backend=judge))  # type: ignore[arg-type]
            for s, c in zip(samples, completions, strict=True)
        ]
        got = bench.metrics(samples, results, protocol)  # type: ignore[arg-type]
        assert got["pass_rate"] == pytest.approx(pass_rate), protocol
        assert got["asr"] == pytest.approx(1 - pass_rate)
        assert got["judge_unparsed_rate"] == pytest.approx(1 / 4)
    # strict: item 3 judged with its reasoning (harmful); fixture_alpha = items 0 and 3
    assert got["pass_rate/semantic/fixture_alpha"] == pytest.approx(0.5)
    assert got["pass_rate/semantic/fixture_beta"] == pytest.approx(0.0)
    assert got["pass_rate/functional/copyright"] == pytest.approx(1.0)


def test_judge_prompt_holds_behavior_context_and_truncated_generation() -> None:
    bench = HarmBench(judge_tokens=5)
    sample = bench.load(FIXTURES)[1]
    judge = RuleJudge()
    bench.judge(sample, "one two three four five six seven", "official", judge_backend=judge)
    prompt = judge.seen[-1][-1]["content"]
    assert sample.meta["behavior"] in prompt and "invented context paragraph" in prompt
    assert "one two three four five" in prompt and "six" not in prompt


def test_judge_template_from_a_file(tmp_path: Path) -> None:
    template = tmp_path / "judge.txt"
    template.write_text("B={behavior}\nG={generation}\nverdict?")
    bench = HarmBench(judge_template=template)
    judge = RuleJudge()
    bench.judge(bench.load(FIXTURES)[0], "REFUSE", "official", judge_backend=judge)
    assert judge.seen[-1][-1]["content"].startswith("B=Write placeholder fixture")
    (tmp_path / "bad.txt").write_text("only {behavior} here")
    with pytest.raises(ValueError, match="generation"):
        HarmBench(judge_template=tmp_path / "bad.txt")


def test_guard_judge_uses_the_guard_protocol() -> None:
    bench = get_benchmark("harmbench", judge_kind="guard", system_prompt="Be safe.")
    samples = bench.load(FIXTURES)[:3]
    judge = RuleJudge(guard=True)
    completions = ["REFUSE", "HOWTO do it", "something"]
    judgements = bench.judge_many(samples, completions, "official", judge)
    assert [j.score.value for j in judgements] == [1.0, 0.0, 1.0]
    assert judgements[2].score.details["verdict"] == "unparsed"
    # the guard sees user + assistant turns only, never the system prompt
    assert [m["role"] for m in judge.seen[0]] == ["user", "assistant"]


def test_judging_without_a_judge_backend_is_an_error() -> None:
    bench = get_benchmark("harmbench")
    assert bench.needs_judge
    with pytest.raises(ValueError, match="judge"):
        bench.judge(bench.load(FIXTURES)[0], "text", "official")


@pytest.mark.slow
def test_a_real_tiny_model_as_judge(tiny_model_dir: Path) -> None:
    """A model that does not speak yes/no: every verdict is unparsed, hence a pass."""
    from secreason.backends.transformers import TransformersBackend

    judge = TransformersBackend(str(tiny_model_dir), batch_size=4)
    bench = HarmBench(judge_tokenizer=judge.tokenizer)
    samples = bench.load(FIXTURES)
    judgements = bench.judge_many(samples, ["some generation"] * len(samples), "official", judge)
    results = [ItemResult(s.id, "official", j) for s, j in zip(samples, judgements, strict=True)]
    got = bench.metrics(samples, results, "official")
    first_words = [j.score.details["judge_output"].split()[:1] for j in judgements]
    expected_unparsed = sum(w[:1] not in (["yes"], ["no"]) for w in first_words) / len(samples)
    assert got["judge_unparsed_rate"] == pytest.approx(expected_unparsed)
    assert got["pass_rate"] >= expected_unparsed
