"""Reports: every file is written, mean +- std is right, published numbers line up."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest

from secreason.evals.base import Reference
from secreason.evals.report import build_report, markdown, summarize, write_report
from secreason.evals.runner import BenchmarkResult


def result() -> BenchmarkResult:
    return BenchmarkResult(
        name="toy-mcq",
        headline="accuracy",
        references=(
            Reference("Foundation-Sec-8B-Reasoning", "accuracy", 0.691),
            Reference("Llama-3.1-8B-Instruct", "accuracy", 0.62),
        ),
        n_samples=10,
        metrics={
            "official": [
                {"accuracy": 0.7, "invalid_rate": 0.1, "unclosed_rate": 0.0},
                {"accuracy": 0.5, "invalid_rate": 0.3, "unclosed_rate": 0.1},
            ],
            "strict": [
                {"accuracy": 0.6, "invalid_rate": 0.2, "unclosed_rate": 0.0},
                {"accuracy": 0.4, "invalid_rate": 0.4, "unclosed_rate": 0.1},
            ],
        },
    )


@pytest.mark.parametrize(
    ("values", "mean", "std"),
    [([0.5], 0.5, 0.0), ([0.7, 0.5], 0.6, statistics.stdev([0.7, 0.5])), ([], None, None)],
    ids=["one-trial", "two-trials", "none"],
)
def test_summarize(values: list[float], mean: float | None, std: float | None) -> None:
    stat = summarize(values)
    assert stat["mean"] == (pytest.approx(mean) if mean is not None else None)
    assert stat["std"] == (pytest.approx(std) if std is not None else None)


def test_report_lines_up_protocols_and_references() -> None:
    report = build_report([result()], {"model": "tiny", "backend": "transformers"})
    bench = report["benchmarks"][0]
    assert bench["trials"] == 2
    assert bench["protocols"]["official"]["accuracy"]["mean"] == pytest.approx(0.6)
    refs = {r["model"]: r for r in bench["references"]}
    # Published numbers are strict by default: compared with our strict mean (0.5).
    assert refs["Foundation-Sec-8B-Reasoning"]["ours"] == pytest.approx(0.5)
    assert refs["Foundation-Sec-8B-Reasoning"]["delta"] == pytest.approx(0.5 - 0.691)
    text = markdown(report)
    assert (
        "| toy-mcq | accuracy | 0.600 ± 0.141 | 0.500 ± 0.141 | 0.200 ± 0.141 / 0.300 ± 0.141"
        in text
    )
    assert "| toy-mcq | accuracy | strict | 0.500 ± 0.141 | 0.691 | 0.620 |" in text


def test_write_report_makes_every_file(tmp_path: Path) -> None:
    paths = write_report(tmp_path, [result()], {"model": "tiny"})
    assert set(paths) == {"json", "csv", "md", "png"}
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(paths["json"].read_text())
    assert data["benchmarks"][0]["name"] == "toy-mcq"
    rows = list(csv.DictReader(paths["csv"].open()))
    row = next(r for r in rows if r["protocol"] == "strict" and r["metric"] == "accuracy")
    assert float(row["mean"]) == pytest.approx(0.5) and row["trials"] == "2"
    assert "Against published numbers" in paths["md"].read_text()


# ------------------------------------------------------------ intervals and subsets


def _logs(tmp_path: Path, trials: list[list[dict]], protocol: str = "strict") -> dict[str, str]:
    out = {}
    for t, lines in enumerate(trials):
        path = tmp_path / f"{t}.{protocol}.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        out[f"{t}.{protocol}"] = str(path)
    return out


def _line(item: str, status: str, **details: float) -> dict:
    score = 1.0 if status == "correct" else 0.0
    return {
        "id": item,
        "status": status,
        "score": score,
        "details": details,
        "finish_reason": "length" if status == "invalid" else "stop",
        "format": {"status": "unclosed" if status == "invalid" else "closed", "ok": True},
    }


TRIAL_0 = ["correct", "correct", "wrong", "invalid"]
TRIAL_1 = ["correct", "wrong", "wrong", "correct"]


def _pooled(
    tmp_path: Path, reported_accuracy: float = 0.5, name: str = "toy-mcq"
) -> BenchmarkResult:
    trials = [[_line(f"i{k}", s) for k, s in enumerate(t)] for t in (TRIAL_0, TRIAL_1)]
    return BenchmarkResult(
        name=name,
        headline="accuracy",
        references=(),
        n_samples=4,
        metrics={
            "strict": [
                {
                    "accuracy": reported_accuracy,
                    "invalid_rate": 0.25,
                    "truncated_rate": 0.25,
                    "n": 4,
                },
                {"accuracy": 0.5, "invalid_rate": 0.0, "truncated_rate": 0.0, "n": 4},
            ]
        },
        samples_log=_logs(tmp_path, trials),
    )


def test_every_mean_gets_its_interval_from_items_with_trials_pooled(tmp_path: Path) -> None:
    bench = build_report([_pooled(tmp_path)], {})["benchmarks"][0]
    stat = bench["protocols"]["strict"]["accuracy"]
    assert stat["mean"] == pytest.approx(0.5) and stat["n_items"] == 4  # items, not 8 rows
    low, high = stat["ci"]
    assert 0.0 <= low < 0.5 < high <= 1.0
    invalid = bench["protocols"]["strict"]["invalid_rate"]
    assert invalid["ci"][0] == 0.0 and invalid["ci"][1] > 0.125
    assert bench["protocols"]["strict"]["n"]["ci"] is None  # a count has no interval
    text = markdown(build_report([_pooled(tmp_path)], {}))
    assert f"0.500 [{low:.3f}, {high:.3f}]" in text
    assert "| truncated |" in text and "0.125 [" in text  # the truncation rate is shown


def test_logs_that_do_not_reproduce_the_reported_number_give_no_interval(
    tmp_path: Path,
) -> None:
    bench = build_report([_pooled(tmp_path, reported_accuracy=0.9)], {})["benchmarks"][0]
    assert bench["protocols"]["strict"]["accuracy"]["ci"] is None
    assert bench["protocols"]["strict"]["invalid_rate"]["ci"] is not None


@pytest.mark.parametrize(
    ("run", "n", "caveat"),
    [
        ({"limit": 30, "rows_total": {"toy-mcq": 2500}}, 30, "n = 30 of 2,500 (--limit 30)"),
        ({"limit": 30}, 30, "n = 30 (--limit 30)"),
        ({"limit": 50}, 30, None),  # the whole benchmark is smaller than the limit
        ({"limit": 30, "rows_total": {"toy-mcq": 30}}, 30, None),
        ({}, 30, None),
    ],
    ids=["limit-of-total", "limit-unknown-total", "limit-above-size", "all-rows", "no-limit"],
)
def test_subset_caveat(run: dict, n: int, caveat: str | None) -> None:
    res = result()
    res.n_samples = n
    report = build_report([res], run)
    text = markdown(report)
    if caveat is None:
        assert report["benchmarks"][0]["caveat"] is None and "Subset" not in text
        assert all(r["comparable"] for r in report["benchmarks"][0]["references"])
        return
    assert f"toy-mcq: {caveat}: a subset, not comparable to the published number" in text
    assert "> **Subset.**" in text and "0.500 ± 0.141 † |" in text
    assert not any(r["comparable"] for r in report["benchmarks"][0]["references"])


def test_vsp_shows_the_official_mad_with_its_interval(tmp_path: Path) -> None:
    lines = [_line("v0", "correct", deviation=0.0), _line("v1", "wrong", deviation=2.0)]
    lines.append(_line("v2", "invalid"))  # no vector: not in the MAD (CTIBench's rule)
    vsp = BenchmarkResult(
        name="ctibench-vsp",
        headline="score",
        references=(Reference("Foundation-Sec-8B-Reasoning", "score", 0.856),),
        n_samples=3,
        metrics={"official": [{"score": 1 / 3, "mad": 1.0}]},
        samples_log=_logs(tmp_path, [lines], "official"),
    )
    report = build_report([vsp], {})
    mad = report["benchmarks"][0]["protocols"]["official"]["mad"]
    assert mad["n_items"] == 3 and mad["ci"] == [0.0, 2.0]
    assert "| ctibench-vsp | mad | 1.000 [0.000, 2.000] |" in markdown(report)


def test_csv_is_tidy_one_row_per_benchmark_protocol_metric(tmp_path: Path) -> None:
    paths = write_report(
        tmp_path / "r", [_pooled(tmp_path, name="pooled"), result()], {"model": "m"}
    )
    rows = list(csv.DictReader(paths["csv"].open()))
    keys = [(r["benchmark"], r["protocol"], r["metric"]) for r in rows]
    assert len(keys) == len(set(keys))
    assert "values" not in rows[0] and {"trial_0", "trial_1", "ci_low", "ci_high"} <= set(rows[0])
    assert not any(r["metric"] in ("n", "missing") for r in rows)  # counts are columns
    row = next(r for r in rows if r["metric"] == "accuracy" and r["trials"] == "2")
    assert row["n"] == "4" and float(row["trial_0"]) == pytest.approx(0.5)
    published = next(
        r
        for r in rows
        if r["protocol"] == "strict"
        and r["metric"] == "accuracy"
        and r["published: Foundation-Sec-8B-Reasoning"]
    )
    assert float(published["published: Foundation-Sec-8B-Reasoning"]) == pytest.approx(0.691)


def test_chart_names_the_run_and_gives_mad_its_own_panel() -> None:
    from secreason.evals.report_chart import _families, _title, run_label

    assert run_label({"model": "runs/demo/rl/final"}) == "demo/rl"
    assert run_label({"model": "org/Model-8B", "run_name": "ablation"}) == "ablation"
    report = build_report([result()], {"model": "runs/demo/rl/final", "limit": 10})
    assert _title(report).splitlines() == [
        "demo/rl: toy-mcq (subset)",
        f"n = {report['benchmarks'][0]['n_samples']} per benchmark: "
        "not comparable to the published numbers",
    ]
    assert _title(build_report([result()], {"model": "m"})) == "m: toy-mcq"  # full set
    bench = report["benchmarks"][0]
    bench["protocols"]["official"]["mad"] = {"mean": 1.0, "ci": None}
    assert [f[0].split()[0] for f in _families(report)] == ["headline", "MAD", "failure"]


def test_the_full_size_is_read_from_the_run_data_when_not_given() -> None:
    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks"
    res = result()
    res.name, res.n_samples = "ctibench-mcq", 2
    report = build_report([res], {"limit": 2, "data": str(fixtures)})
    assert report["benchmarks"][0]["subset"] == {"n": 2, "of": 4, "limit": 2}
    # No local data named: the total is unknown, never fetched from a hub.
    report = build_report([res], {"limit": 2})
    assert report["benchmarks"][0]["caveat"].startswith("ctibench-mcq: n = 2 (--limit 2)")


def test_chart_prints_each_score_so_a_zero_is_seen_as_measured() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from secreason.evals.report_chart import _families, _score_panel

    report = build_report([result()], {"model": "m"})
    bench = report["benchmarks"][0]
    bench["protocols"]["official"][bench["headline"]].update(mean=0.0, ci=[0.0, 0.0])
    bench["protocols"]["strict"][bench["headline"]].update(mean=float("nan"), ci=None)
    fig, ax = plt.subplots()
    _score_panel(ax, report, _families(report)[0][1])
    texts = [t.get_text() for t in ax.texts]
    plt.close(fig)
    assert "0.00" in texts and "n/a" in texts  # a measured 0 vs no number at all


@pytest.mark.parametrize(
    ("mean", "ci", "n_items", "note"),
    [
        (0.0, [0.0, 0.0], 20, "[0, 0.168] for n = 20"),  # all wrong: exact bound named
        (1.0, [1.0, 1.0], 20, "for n = 20"),  # all right: the same caveat
        (0.5, [0.3, 0.7], 20, None),  # a real interval: no note
        (0.5, [0.5, 0.5], 20, None),  # zero width but not a 0/1 rate (one trial's mean)
        (0.0, None, None, None),  # no interval at all: nothing to explain
    ],
)
def test_a_zero_width_interval_is_explained(
    mean: float, ci: list[float] | None, n_items: int | None, note: str | None
) -> None:
    report = build_report([result()], {"model": "m"})
    for stats in report["benchmarks"][0]["protocols"].values():
        for stat in stats.values():
            if isinstance(stat, dict) and stat.get("ci"):
                stat["ci"] = [0.2, 0.8]  # every other interval has width
        stats[report["benchmarks"][0]["headline"]].update(mean=mean, ci=ci, n_items=n_items)
    text = markdown(report)
    if note is None:
        assert "bootstrap cannot reach past the sample" not in text
    else:
        assert "bootstrap cannot reach past the sample" in text and note in text
