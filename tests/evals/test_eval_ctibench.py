"""CTIBench loaders and aggregates, on fixtures and (when present) the real files.

Every expected aggregate below was worked out by hand from the completions listed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from secreason.evals import ItemResult, get_benchmark
from secreason.evals.base import Benchmark
from secreason.evals.ctibench import SYSTEM_PROMPT
from secreason.tasks.base import Protocol, Sample

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks" / "ctibench"


def metrics(
    bench: Benchmark, samples: list[Sample], completions: list[str], protocol: Protocol
) -> dict[str, float]:
    results = [
        ItemResult(s.id, protocol, bench.judge(s, c, protocol))
        for s, c in zip(samples, completions, strict=True)
    ]
    return bench.metrics(samples, results, protocol)


# ------------------------------------------------------------------ loading


def test_mcq_fixture_rows_ids_and_quirks() -> None:
    bench = get_benchmark("ctibench-mcq")
    samples = bench.load(FIXTURES)
    assert [s.id for s in samples] == [f"ctibench-mcq-{i}" for i in range(4)]
    assert [s.meta["index"] for s in samples] == [0, 1, 2, 3]
    assert [s.reference for s in samples] == ["B", "C", "D", "A"]  # lower-case 'd' upper-cased
    assert samples[1].meta["options"]["D"] == ""
    assert "D) nan" in samples[1].messages[-1]["content"]  # the prompt keeps its 'nan'
    assert samples[0].messages[0] == {"role": "system", "content": SYSTEM_PROMPT}


def test_official_sends_the_row_prompt_and_strict_appends_the_answer_line() -> None:
    bench = get_benchmark("ctibench-rcm")
    sample = bench.load(FIXTURES / "cti-rcm.tsv")[0]
    official = bench.messages(sample, "official")
    strict = bench.messages(sample, "strict")
    assert official == sample.messages
    assert strict[-1]["content"].startswith(official[-1]["content"].rstrip())
    assert strict[-1]["content"].endswith("'Answer: CWE-<number>'.")
    assert strict[0] == official[0]
    assert bench.sampling.temperature == 0.0 and bench.sampling.seed == 42
    assert bench.sampling.max_tokens == 2048 and bench.sampling.top_p == 1.0


def test_limit_and_missing_file_message(tmp_path: Path) -> None:
    assert len(get_benchmark("ctibench-vsp").load(FIXTURES, limit=2)) == 2
    with pytest.raises(FileNotFoundError, match="cti-ate.tsv"):
        get_benchmark("ctibench-ate").load(tmp_path)


@pytest.mark.parametrize(
    ("name", "rows"),
    [
        ("ctibench-mcq", 2500),
        ("ctibench-rcm", 1000),
        ("ctibench-rcm-2021", 1000),
        ("ctibench-vsp", 1000),
        ("ctibench-ate", 60),
        ("ctibench-taa", 50),
    ],
)
def test_real_files_load(shared_benchmarks: Path, name: str, rows: int) -> None:
    bench = get_benchmark(name)
    samples = bench.load(shared_benchmarks / "ctibench")
    assert len(samples) == rows
    assert samples[-1].id == f"{name}-{rows - 1}"
    assert all(s.reference for s in samples)


def test_real_mcq_quirks(shared_benchmarks: Path) -> None:
    samples = get_benchmark("ctibench-mcq").load(shared_benchmarks / "ctibench")
    assert sum(any(v == "" for v in s.meta["options"].values()) for s in samples) == 5
    assert {s.reference for s in samples} == {"A", "B", "C", "D"}


# ----------------------------------------------------------------------- MCQ


def test_mcq_official_accuracy_counts_every_row() -> None:
    bench = get_benchmark("ctibench-mcq")
    samples = bench.load(FIXTURES)
    completions = [
        "It is the blue one.\nB",  # last line ends with B: correct
        "<think>dogs bark</think>The answer is C)",  # no rule matches: invalid
        "**D**",  # ends with '**': third from the end, D: correct (gold 'd')
        "<think>A</think>\nI would rather not say.",  # invalid
    ]
    got = metrics(bench, samples, completions, "official")
    assert got["accuracy"] == pytest.approx(2 / 4)
    assert got["accuracy_answered"] == pytest.approx(2 / 2)
    assert got["invalid_rate"] == pytest.approx(2 / 4)


def test_mcq_strict_keeps_invalid_in_the_denominator() -> None:
    bench = get_benchmark("ctibench-mcq")
    samples = bench.load(FIXTURES)
    completions = [
        "<think>sky</think>\nAnswer: B",
        "<think>cats</think>\nAnswer: A",
        "<think>even</think>\nAnswer: D",
        "<think>both?</think>\nAnswer: A, B",  # two letters: invalid
    ]
    got = metrics(bench, samples, completions, "strict")
    assert got["accuracy"] == pytest.approx(2 / 4)
    assert got["invalid_rate"] == pytest.approx(1 / 4)


# ----------------------------------------------------------------------- RCM


def test_rcm_official_drops_non_cwe_predictions_from_the_denominator() -> None:
    bench = get_benchmark("ctibench-rcm")
    samples = bench.load(FIXTURES)
    completions = [
        "Echoed input without escaping.\nCWE-79",  # correct
        "Looks like CWE-79 at first, but it is CWE-89",  # last match: correct
        "A use after free, I think.",  # no CWE id: dropped
        "CWE-434, or maybe CWE-20",  # last match CWE-20: wrong
    ]
    got = metrics(bench, samples, completions, "official")
    assert got["accuracy"] == pytest.approx(2 / 3)
    assert got["accuracy_all"] == pytest.approx(2 / 4)
    assert got["n_valid"] == 3


def test_rcm_strict_counts_invalid_as_wrong() -> None:
    bench = get_benchmark("ctibench-rcm")
    samples = bench.load(FIXTURES)
    completions = [
        "<think>xss</think>\nAnswer: CWE-79",
        "<think>sqli</think>\nAnswer: CWE-89",
        "<think>uaf... Answer: CWE-416",  # reasoning never closed: invalid
        "<think>upload</think>\nAnswer: **CWE\u2011434**",
    ]
    got = metrics(bench, samples, completions, "strict")
    assert got["accuracy"] == pytest.approx(3 / 4)
    assert got["accuracy_all"] == pytest.approx(3 / 4)


# ----------------------------------------------------------------------- VSP
# Gold base scores: 9.8 (N/L/N/N/U/H/H/H), 5.5 (L/L/L/N/U/N/N/H), 6.1 (N/L/N/R/C/L/L/N).


def test_vsp_official_mad_skips_unparseable_vectors() -> None:
    bench = get_benchmark("ctibench-vsp")
    samples = bench.load(FIXTURES)
    completions = [
        "The vector: AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",  # 9.8, |d| = 0
        "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H",  # 7.8 vs 5.5, |d| = 2.3
        "I cannot tell.",  # skipped
    ]
    got = metrics(bench, samples, completions, "official")
    assert got["mad"] == pytest.approx((0.0 + 2.3) / 2)
    assert got["n_valid"] == 2
    assert got["score"] == pytest.approx((1.0 + 0.77 + 0.0) / 3)


def test_vsp_strict_scores_one_minus_diff_over_ten_and_invalid_zero() -> None:
    bench = get_benchmark("ctibench-vsp")
    samples = bench.load(FIXTURES)
    completions = [
        "<think>remote</think>\nAnswer: CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "<think>local</think>\nAnswer: CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:L",  # 3.3
        "<think>CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N</think>\nNot sure.",  # invalid
    ]
    got = metrics(bench, samples, completions, "strict")
    assert got["score"] == pytest.approx((1.0 + 0.78 + 0.0) / 3)
    assert got["mad"] == pytest.approx((0.0 + 2.2) / 2)
    assert got["invalid_rate"] == pytest.approx(1 / 3)


# ----------------------------------------------------------------------- ATE
# Gold sets: {T1071, T1083} and {T1573, T1059, T1070}.


def test_ate_micro_and_macro_f1_differ_as_computed_by_hand() -> None:
    bench = get_benchmark("ctibench-ate")
    samples = bench.load(FIXTURES)
    completions = [
        "<think>web C2, folders</think>\nAnswer: T1071, T1083, T1105",  # tp2 fp1: F1 0.8
        "<think>crypto</think>\nAnswer: T1573",  # tp1 fn2: F1 0.5
    ]
    got = metrics(bench, samples, completions, "strict")
    assert got["micro_f1"] == pytest.approx(6 / 9)  # tp3 fp1 fn2
    assert got["macro_f1"] == pytest.approx(0.65)
    assert got["mean_jaccard"] == pytest.approx((2 / 3 + 1 / 3) / 2)


def test_ate_official_needs_an_answer_line_and_asks_for_one() -> None:
    bench = get_benchmark("ctibench-ate")
    samples = bench.load(FIXTURES)
    assert "'Answer: T1234" in bench.messages(samples[0], "official")[-1]["content"]
    completions = ["Both are here.\nAnswer: T1071, T1083", "T1573, T1059, T1070"]
    got = metrics(bench, samples, completions, "official")
    assert got["micro_f1"] == pytest.approx(4 / 7)  # tp2 fp0 fn3
    assert got["macro_f1"] == pytest.approx(0.5)


# ----------------------------------------------------------------------- TAA
# Gold: Toy Bear, Lonely Group, Quiet Kitten. Alias map: toy bear -> fancy toy, t-100;
# lonely group -> nan; orphan crew -> nan. Related: toy bear -> toy wolf;
# loud kitten -> quiet kitten.


def test_taa_gold_labels_come_from_the_labels_file_by_row() -> None:
    bench = get_benchmark("ctibench-taa")
    samples = bench.load(FIXTURES)
    assert [s.reference for s in samples] == ["Toy Bear", "Lonely Group", "Quiet Kitten"]
    assert (
        "Threat Actor: <threat actor name>" in bench.messages(samples[0], "official")[-1]["content"]
    )


def test_taa_labels_must_be_found(tmp_path: Path) -> None:
    (tmp_path / "cti-taa.tsv").write_bytes((FIXTURES / "cti-taa.tsv").read_bytes())
    with pytest.raises(FileNotFoundError, match="cti-taa-labels.tsv"):
        get_benchmark("ctibench-taa").load(tmp_path)


def test_taa_official_links_actors_through_the_literal_nan() -> None:
    bench = get_benchmark("ctibench-taa")
    samples = bench.load(FIXTURES)
    completions = [
        "Tooling matches.\nThreat Actor: Fancy Toy",  # alias: correct
        "Threat Actor: Orphan Crew",  # linked to lonely group through "nan": correct
        "Threat Actor: Loud Kitten",  # related group: plausible
    ]
    got = metrics(bench, samples, completions, "official")
    assert got["correct"] == pytest.approx(2 / 3)
    assert got["correct_plausible"] == pytest.approx(3 / 3)


def test_taa_strict_drops_the_nan_links() -> None:
    bench = get_benchmark("ctibench-taa")
    samples = bench.load(FIXTURES)
    completions = [
        "<think>x</think>\nAnswer: Fancy Toy",
        "<think>x</think>\nAnswer: Orphan Crew",  # no real link: incorrect
        "<think>x</think>\nAnswer: Loud Kitten",  # plausible
    ]
    got = metrics(bench, samples, completions, "strict")
    assert got["correct"] == pytest.approx(1 / 3)
    assert got["correct_plausible"] == pytest.approx(2 / 3)


def test_real_taa_scores_through_the_authors_maps(shared_benchmarks: Path) -> None:
    bench = get_benchmark("ctibench-taa")
    samples = bench.load(shared_benchmarks / "ctibench")
    gold = [f"Threat Actor: {s.reference}" for s in samples]
    got = metrics(bench, samples, gold, "official")
    # Every gold actor reaches itself through its aliases, the two APT-C-36 rows included
    # (FAITH's \w+ stopped at the hyphen and read "apt": 48 / 50).
    assert got["correct"] == pytest.approx(50 / 50)


def test_taa_official_reads_hyphenated_aliases_whole() -> None:
    bench = get_benchmark("ctibench-taa")
    samples = bench.load(FIXTURES)
    completions = [
        "Threat Actor: T-100",  # alias of Toy Bear (FAITH's \w+ read "t")
        'Threat Actor: "Lonely Group"',  # quotes skipped; itself through the "nan" loop
        "**Threat Actor:** Loud Kitten.",  # bold and final period skipped; related: plausible
    ]
    got = metrics(bench, samples, completions, "official")
    assert got["correct"] == pytest.approx(2 / 3)
    assert got["correct_plausible"] == pytest.approx(3 / 3)


# The CTIBench authors' hand-read predictions per model (evaluation/responses/
# cti-taa-responses.tsv in their repository), when a copy sits beside the benchmark files.
# Correct and correct+plausible per model as this replay measured them (2026-11-30);
# GPT-4's pair is the paper's 52 / 86 (FAITH's \w+ rule gave 48 / 82), the others were
# the same under both rules.
PUBLISHED_TAA = {
    "ChatGPT-3.5": (0.44, 0.62),
    "ChatGPT-4": (0.52, 0.86),
    "Gemini-1.5": (0.38, 0.74),
    "LLAMA3-70B": (0.52, 0.80),
    "LLAMA3-8B": (0.28, 0.36),
}


def test_taa_replay_of_the_published_answers(shared_benchmarks: Path) -> None:
    import csv

    path = shared_benchmarks / "ctibench" / "cti-taa-responses.tsv"
    if not path.is_file():
        pytest.skip("cti-taa-responses.tsv (the authors' TAA predictions) is not present")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    bench = get_benchmark("ctibench-taa")
    samples = bench.load(shared_benchmarks / "ctibench")
    for model, (correct, plausible) in PUBLISHED_TAA.items():
        answers = [f"Threat Actor: {row[model].strip()}" for row in rows]
        got = metrics(bench, samples, answers, "official")
        assert (got["correct"], got["correct_plausible"]) == pytest.approx((correct, plausible))
