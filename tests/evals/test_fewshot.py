"""Few-shot prompting: examples before the question, seeded, never the item itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from secreason.evals import get_benchmark
from secreason.evals.fewshot import with_fewshot

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks"
ATHENA = FIXTURES / "athenabench"


def test_examples_are_other_items_answered_in_the_final_line_format() -> None:
    plain = {s.id: s for s in get_benchmark("athenabench-mcq").load(ATHENA)}
    samples = get_benchmark("athenabench-mcq", fewshot=3).load(ATHENA)
    for sample in samples:
        roles = [m["role"] for m in sample.messages]
        assert roles == ["user", "assistant"] * 3 + ["user"]
        assert sample.messages[-1] == plain[sample.id].messages[-1]
        assert sample.id not in sample.meta["fewshot"]
        for i, example_id in enumerate(sample.meta["fewshot"]):
            example = plain[example_id]
            assert sample.messages[2 * i]["content"] == example.messages[-1]["content"]
            assert sample.messages[2 * i + 1]["content"] == f"Answer: {example.reference}"


def test_seeded_and_independent_of_the_limit() -> None:
    def shots(**options: int) -> list[list[str]]:
        bench = get_benchmark("athenabench-mcq", fewshot=2, **options)
        return [s.meta["fewshot"] for s in bench.load(ATHENA, limit=2)]

    assert shots() == shots()
    assert (
        shots()
        == [s.meta["fewshot"] for s in get_benchmark("athenabench-mcq", fewshot=2).load(ATHENA)][:2]
    )
    assert any(
        shots(fewshot_seed=seed) != shots() for seed in range(1, 6)
    )  # another seed draws other examples


def test_system_prompt_stays_first_and_strict_appends_to_the_item() -> None:
    bench = get_benchmark("ctibench-mcq", fewshot=1)
    sample = bench.load(FIXTURES / "ctibench")[0]
    assert [m["role"] for m in sample.messages] == ["system", "user", "assistant", "user"]
    strict = bench.messages(sample, "strict")
    assert strict[1] == sample.messages[1]  # the example is untouched
    assert strict[-1]["content"].endswith("'Answer: <letter>'.")


def test_shuffling_permutes_the_item_only() -> None:
    samples = get_benchmark("athenabench-mcq", fewshot=1, shuffle=2).load(ATHENA)
    first, second = samples[0], samples[1]
    assert second.meta["item"] == first.id
    assert first.messages[:2] == second.messages[:2]
    assert first.messages[-1] != second.messages[-1]


def test_bad_counts() -> None:
    with pytest.raises(ValueError, match="0 or more"):
        get_benchmark("athenabench-mcq", fewshot=-1)
    with pytest.raises(ValueError, match="only 3 other items"):
        get_benchmark("athenabench-mcq", fewshot=4).load(ATHENA)
    assert with_fewshot([], 0) == []


def test_mmlu_draws_from_its_dev_split_when_present(tmp_path: Path) -> None:
    import shutil

    shutil.copy(FIXTURES / "mmlu_computer_security" / "computer_security_test.csv", tmp_path)
    plain = get_benchmark("mmlu-security")
    plain.fewshot = 2
    from_rows = plain.load(tmp_path)
    assert all(not i.startswith("mmlu-security-dev") for s in from_rows for i in s.meta["fewshot"])
    (tmp_path / "computer_security_dev.csv").write_text(
        "question,choice0,choice1,choice2,choice3,answer\n"
        "Dev toy: which lock opens with a code?,Combination lock,Padlock,Latch,Bolt,0\n"
        "Dev toy: which cable carries toy Ethernet?,Rope,Twisted pair,Hose,Chain,1\n"
    )
    bench = get_benchmark("mmlu-security")
    bench.fewshot = 2
    samples = bench.load(tmp_path, limit=2)
    assert len(samples) == 2
    for sample in samples:
        assert sorted(sample.meta["fewshot"]) == ["mmlu-security-dev-0", "mmlu-security-dev-1"]
        shots = [m["content"] for m in sample.messages if m["role"] == "assistant"]
        assert sorted(shots) == ["Answer: A", "Answer: B"]


def test_choice_benchmarks_shuffle_through_their_own_prompt_builder() -> None:
    bench = get_benchmark("cybermetric-80")
    bench.shuffle = 2
    samples = bench.load(FIXTURES / "cybermetric")
    first, second = samples[0], samples[1]
    assert second.meta["item"] == first.id
    assert second.meta["options"][second.reference] == "8080"  # the gold text follows
    inline = ", ".join(f"{k}) {v}" for k, v in second.meta["options"].items())
    assert inline in second.messages[-1]["content"]
