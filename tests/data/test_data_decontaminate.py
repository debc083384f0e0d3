"""Planted contamination is caught; clean text is not; the report names what and why."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from secreason.data.decontaminate import (
    ContaminationIndex,
    DecontamConfig,
    decontaminate,
    read_benchmark_folder,
)

sys.path.insert(0, str(Path(__file__).parent))
from contamination_fixtures import WORDS, clean, edit, sentence, write_benchmarks  # noqa: E402


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[ContaminationIndex, dict]:
    root = tmp_path_factory.mktemp("benchmarks")
    items = write_benchmarks(root)
    return ContaminationIndex(read_benchmark_folder(root), DecontamConfig()), items


def _check(index: ContaminationIndex, prompts: list[str], answers: list[str] | None = None):
    answers = answers or [""] * len(prompts)
    return decontaminate([str(i) for i in range(len(prompts))], prompts, answers, index)


def test_planted_recall_and_false_positive_rate(bench) -> None:
    index, items = bench
    rng = random.Random(1)
    verbatim, edited = [], []
    for name in ("fixture/rcm", "fixture/mcq"):
        for text in rng.sample(items[name], 40):
            around = sentence(rng, 30)
            verbatim.append(f"Consider this. {around} {text} {sentence(rng, 10)}")
            edited.append(f"{around} {edit(text, rng)}")
    answers_planted = [f"The answer is: {a}" for a in rng.sample(items["fixture/saq"], 20)]
    cleans = [clean(rng) for _ in range(1000)]

    prompts = verbatim + edited + [sentence(rng, 20)] * len(answers_planted) + cleans
    answers = [""] * (len(verbatim) + len(edited)) + answers_planted + [""] * len(cleans)
    keep, report = _check(index, prompts, answers)
    caught = [not k for k in keep]
    n_v, n_e, n_a = len(verbatim), len(edited), len(answers_planted)
    recall_verbatim = sum(caught[:n_v]) / n_v
    recall_edited = sum(caught[n_v : n_v + n_e]) / n_e
    recall_answers = sum(caught[n_v + n_e : n_v + n_e + n_a]) / n_a
    fp_rate = sum(caught[n_v + n_e + n_a :]) / len(cleans)
    print(
        f"\nrecall verbatim {recall_verbatim:.3f}, edited {recall_edited:.3f}, "
        f"answers {recall_answers:.3f}; false-positive rate {fp_rate:.4f} (n={len(cleans)})"
    )
    assert recall_verbatim == 1.0
    assert recall_edited >= 0.95
    assert recall_answers == 1.0
    assert fp_rate <= 0.005
    per = report.per_benchmark
    assert per["fixture/rcm"]["removed"] >= 80 and per["fixture/mcq"]["removed"] >= 80
    assert per["fixture/saq"]["reasons"] == {"ngram:answer": n_a}
    example = per["fixture/rcm"]["examples"][0]
    assert example["benchmark_item"]["shared"] >= 2 and example["reason"].startswith("ngram")
    # The preamble repeated in every rcm prompt is boilerplate, not contamination.
    assert report.boilerplate_dropped["fixture/rcm"] > 0


def test_cve_id_overlap_is_contamination(bench) -> None:
    index, _ = bench
    keep, report = _check(
        index,
        [
            "Which weakness does cve-2031-1007 show? It is reworded entirely here.",
            "Which weakness does CVE-2031-99999 show?",
        ],
    )
    assert keep == [False, True]
    assert report.per_benchmark["fixture/rcm"]["reasons"] == {"cve": 1}


def test_cve_from_item_meta(bench) -> None:
    index, _ = bench
    keep, _ = decontaminate(
        ["a"], ["no id in the text"], [""], index, extra_cves=[["cve-2031-1010"]]
    )
    assert keep == [False]


@pytest.mark.parametrize(
    ("extra_grams", "caught"),
    [(-99, False), (-1, False), (0, True), (10, True)],
    ids=["no-overlap", "one-gram-short", "exactly-enough", "long-run"],
)
def test_threshold_edges(bench, extra_grams: int, caught: bool) -> None:
    """Caught exactly when the shared n-grams reach max(min_shared, min_coverage * item)."""
    index, items = bench
    item = next(i for i, t in enumerate(index.items) if t.benchmark == "fixture/rcm" and i >= 5)
    need = int(index.need[item])
    assert need >= 2  # a single common 8-gram is never enough
    words = index.items[item].prompt.split("\n", 1)[1].split(": ", 1)[1].split()
    n_words = max(0, need + extra_grams + 7)
    rng = random.Random(2)
    filler = " ".join(rng.choice(WORDS) + "zz" for _ in range(10))
    text = f"{filler} {' '.join(words[:n_words])} {filler}"
    keep, _ = _check(index, [text])
    assert keep == [not caught]


def test_real_benchmarks_planted(shared_benchmarks: Path) -> None:
    """On the real benchmark files: pasted items are caught, demo items are not."""
    from secreason.data.demo import make_demo_items

    texts = read_benchmark_folder(shared_benchmarks)
    index = ContaminationIndex(texts, DecontamConfig())
    rng = random.Random(0)
    planted = [t.prompt for t in rng.sample(texts, 200) if len(t.prompt.split()) >= 12]
    train, _ = make_demo_items(150, seed=0, tasks=("mcq",))
    demo = ["\n".join(m["content"] for m in s.messages) for s in train]
    keep, _ = _check(index, planted + demo)
    recall = keep[: len(planted)].count(False) / len(planted)
    fp = keep[len(planted) :].count(False) / len(demo)
    print(f"\nreal benchmarks: recall {recall:.3f} (n={len(planted)}), demo flagged {fp:.3f}")
    assert recall >= 0.98 and fp == 0.0


def test_answer_formats_and_kb_text_do_not_count(tmp_path: Path) -> None:
    """A shared CVSS vector or a quoted knowledge-base definition is not contamination."""
    from secreason.data.decontaminate import BenchmarkText

    kb_definition = (
        "The product constructs all or part of a command using externally influenced "
        "input but does not neutralize special elements that modify the intended command."
    )
    bench = [
        BenchmarkText(
            "b/vsp",
            0,
            "Score the flaw in the widget parser.",
            "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        ),
        BenchmarkText("b/mcq", 0, f"Which weakness is this? {kb_definition} Pick one option."),
    ]
    index = ContaminationIndex(bench, DecontamConfig(), allowed=[kb_definition])
    texts = [
        "Answer: CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        f"The catalog defines it so: {kb_definition}",
    ]
    keep, report = decontaminate(["v", "k"], texts, ["", ""], index)
    assert keep == [True, True]
    assert report.allowed_dropped["b/mcq"] > 0
    without_kb = ContaminationIndex(bench, DecontamConfig())
    assert decontaminate(["k"], texts[1:], [""], without_kb)[0] == [False]


def test_harness_loaders_catch_planted_items(shared_benchmarks: Path) -> None:
    """The evaluation harness's own loaders feed the same index (benchmark names as in evals)."""
    from secreason.data.decontaminate import harness_texts

    texts, missing = harness_texts(shared_benchmarks)
    names = {t.benchmark for t in texts}
    assert {"ctibench-rcm", "ctibench-vsp", "cybermetric-2000", "secbench"} <= names
    assert all(name not in names for name in missing)
    index = ContaminationIndex(texts, DecontamConfig())
    rcm = [t for t in texts if t.benchmark == "ctibench-rcm"][:50]
    # The RCM description pasted on its own (without the benchmark's instructions).
    pasted = [t.prompt.split("CVE Description:")[-1].split("\n")[0] for t in rcm]
    keep, report = _check(index, pasted)
    assert keep.count(False) >= 48
    assert report.per_benchmark["ctibench-rcm"]["removed"] >= 48
