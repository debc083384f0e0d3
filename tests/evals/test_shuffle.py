"""Option shuffling: orders, prompt rewriting, gold tracking and the consistency measures."""

from __future__ import annotations

from pathlib import Path

import pytest

from secreason.evals import ItemResult, get_benchmark
from secreason.evals.shuffle import orders, permuted

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks"


def test_orders_start_with_the_published_one_and_are_distinct_and_seeded() -> None:
    got = orders(4, 6, seed=3, index=7)
    assert got[0] == (0, 1, 2, 3)
    assert len(set(got)) == 6 and all(sorted(o) == [0, 1, 2, 3] for o in got)
    assert got == orders(4, 6, seed=3, index=7)
    assert got != orders(4, 6, seed=4, index=7)
    assert len(orders(2, 2, 0, 0)) == 2
    with pytest.raises(ValueError, match="only 2 orders"):
        orders(2, 3, 0, 0)
    with pytest.raises(ValueError, match="at least 1"):
        orders(4, 0, 0, 0)
    with pytest.raises(ValueError, match="only 120 orders"):
        get_benchmark("athenabench-mcq", shuffle=121)


def test_gold_moves_with_its_text_and_only_the_option_block_changes() -> None:
    sample = get_benchmark("athenabench-mcq").load(FIXTURES / "athenabench")[1]  # gold C
    moved = permuted(sample, (2, 0, 1, 3, 4), 1)
    assert moved.id == f"{sample.id}~1" and moved.meta["item"] == sample.id
    assert moved.reference == "A"
    assert moved.meta["options"]["A"] == sample.meta["options"]["C"]
    before, after = sample.messages[0]["content"], moved.messages[0]["content"]
    head = before.split("\nA) ")[0]
    assert after.startswith(head)
    assert after.endswith("\n".join(f"{k}) {v}" for k, v in moved.meta["options"].items()))
    assert "A) Task scheduler event log\nB) Proxy logs" in after


def test_inline_options_and_ctibench_nan() -> None:
    bench = get_benchmark("ctibench-mcq", shuffle=2)
    samples = bench.load(FIXTURES / "ctibench")
    assert len(samples) == 2 * 4 and samples[0].id == "ctibench-mcq-0"
    # Row 1 has an empty option D that its prompt shows as "nan": it moves as "nan".
    row = next(s for s in samples if s.id == "ctibench-mcq-1~1")
    gone_to = next(new for new, old in row.meta["origin"].items() if old == "D")
    assert f"{gone_to}) nan" in row.messages[-1]["content"]


def test_consistency_and_position_accuracy() -> None:
    bench = get_benchmark("athenabench-mcq", shuffle=2, shuffle_seed=1)
    samples = bench.load(FIXTURES / "athenabench")
    assert len(samples) == 8

    def run(completions: list[str]) -> dict[str, float]:
        results = [
            ItemResult(s.id, "strict", bench.judge(s, c, "strict"))
            for s, c in zip(samples, completions, strict=True)
        ]
        return bench.metrics(samples, results, "strict")

    knows = run([f"Answer: {s.reference}" for s in samples])
    assert (knows["shuffle_consistency"], knows["shuffle_all_correct"]) == (1.0, 1.0)
    assert knows["shuffle_k"] == 2 and knows["accuracy"] == 1.0

    always_a = run(["Answer: A"] * 8)
    # Consistent only where the second order also lists the original A first.
    second = [s for s in samples if s.meta["permutation"] == 1]
    steady = sum(s.meta["origin"]["A"] == "A" for s in second) / 4
    assert always_a["shuffle_consistency"] == pytest.approx(steady)
    assert always_a["accuracy_gold_at/A"] == 1.0
    others = [k for k in always_a if k.startswith("accuracy_gold_at/") and k[-1] != "A"]
    assert others and all(always_a[k] == 0.0 for k in others)
    # the gold of item 0 (A) sits at A in the first order only if the order keeps it
    assert always_a["shuffle_all_correct"] == pytest.approx(
        sum(s.reference == "A" for s in second if s.meta["item"] == "athenabench-mcq-0") / 4
    )

    silent = run(["no idea"] * 8)
    assert silent["shuffle_consistency"] == 0.0


@pytest.mark.parametrize(
    ("name", "folder", "rows"),
    [
        ("ctibench-mcq", "ctibench", 2500),
        ("athenabench-mcq", "athenabench", 300),
    ],
)
def test_real_files_shuffle_with_the_gold_text_kept(
    shared_benchmarks: Path, name: str, folder: str, rows: int
) -> None:
    plain = {s.id: s for s in get_benchmark(name).load(shared_benchmarks / folder)}
    shuffled = get_benchmark(name, shuffle=2).load(shared_benchmarks / folder)
    assert len(shuffled) == 2 * rows
    for sample in shuffled:
        first = plain[sample.meta["item"]]
        gold_text = sample.meta["options"][sample.reference] or "nan"
        if first.reference in first.meta["options"]:
            before = first.meta["options"][first.reference] or "nan"
            assert gold_text.split()[-1:] == before.split()[-1:], sample.id


def test_cli_flags_reach_the_mcq_benchmarks(tiny_model_dir: Path, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from secreason.cli import app

    data = FIXTURES / "athenabench"
    base = ["eval", "athenabench-mcq", "--model", str(tiny_model_dir), "--data", str(data)]
    out = tmp_path / "run"
    flags = ["--shuffle-options", "2", "--fewshot", "1", "--max-tokens", "4"]
    result = CliRunner().invoke(app, [*base, *flags, "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    bench = json.loads((out / "report.json").read_text())["benchmarks"][0]
    official = bench["protocols"]["official"]
    assert official["n"]["mean"] == 8 and official["shuffle_k"]["mean"] == 2
    assert "shuffle_consistency" in official
    log = out / "samples" / "athenabench-mcq" / "trial-0.official.jsonl"
    first = json.loads(log.read_text().splitlines()[0])
    assert [m["role"] for m in first["prompt"]] == ["user", "assistant", "user"]  # one shot

    rcm = ["eval", "athenabench-rcm", "--model", str(tiny_model_dir), "--data", str(data)]
    refused = CliRunner().invoke(app, [*rcm, "--fewshot", "2", "--out", str(tmp_path / "x")])
    assert refused.exit_code != 0 and "none of these benchmarks" in refused.stderr
    refused = CliRunner().invoke(app, [*base, "--shuffle-options", "0", "--out", str(tmp_path)])
    assert refused.exit_code != 0 and "at least 1" in refused.stderr
