"""The runner: one generation per key, resume after a crash, rescoring, re-asks, trials."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner_fixtures import ScriptedBackend, ToyMCQ  # noqa: E402

from secreason.backends.base import Backend  # noqa: E402
from secreason.evals.cache import GenerationCache  # noqa: E402
from secreason.evals.runner import (  # noqa: E402
    MissingGenerations,
    Runner,
    RunSettings,
    read_predictions,
    score_predictions,
)


def never() -> Backend:
    raise AssertionError("the model must not be loaded")


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_shared_prompt_generates_once_for_both_protocols(tmp_path: Path) -> None:
    backend = ScriptedBackend(wrong={1, 2})
    runner = Runner(tmp_path, RunSettings(model="scripted"), backend)
    result = runner.run(ToyMCQ(n=10))
    assert len(backend.prompts) == 10  # official == strict prompt: one generation each
    assert result.generated == 10 and result.cached == 0
    for protocol in ("official", "strict"):
        metrics = result.metrics[protocol][0]
        assert metrics["accuracy"] == pytest.approx(0.8)
        assert metrics["invalid_rate"] == 0.0
        assert metrics["unclosed_rate"] == 0.0
    log = lines(tmp_path / "samples" / "toy-mcq" / "trial-0.strict.jsonl")
    assert [r["id"] for r in log] == [f"toy-{i}" for i in range(10)]
    first = log[1]
    assert first["status"] == "incorrect" and first["answer"] == "D"
    assert first["reasoning"] == "reasoning about Q1"
    assert first["prompt"][0]["role"] == "system"
    assert first["completion"].endswith("Answer: D")


def test_prompts_reach_the_backend_longest_first(tmp_path: Path) -> None:
    """Dispatch order (``prompt_size``, longest first); the logs keep the dataset's order."""
    backend = ScriptedBackend(batch_size=4)
    Runner(tmp_path, RunSettings(model="scripted"), backend).run(ToyMCQ(n=12))
    sizes = [len(p) for p in backend.prompts]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]
    assert [p.split(":")[0] for p in backend.prompts[:3]] == [
        "Question Q10",
        "Question Q11",
        "Question Q0",
    ]
    log = lines(tmp_path / "samples" / "toy-mcq" / "trial-0.strict.jsonl")
    assert [r["id"] for r in log] == [f"toy-{i}" for i in range(12)]


def test_strict_instruction_makes_a_second_prompt(tmp_path: Path) -> None:
    backend = ScriptedBackend()
    bench = ToyMCQ(n=4, strict_instruction="End with 'Answer: X'.")
    Runner(tmp_path, RunSettings(model="scripted"), backend).run(bench)
    assert len(backend.prompts) == 8
    assert sum(p.endswith("End with 'Answer: X'.") for p in backend.prompts) == 4


def test_rerun_generates_nothing_and_never_loads_the_model(tmp_path: Path) -> None:
    Runner(tmp_path, RunSettings(model="scripted"), ScriptedBackend()).run(ToyMCQ())
    again = Runner(tmp_path, RunSettings(model="scripted"), never).run(ToyMCQ())
    assert again.generated == 0 and again.cached == 10
    assert again.metrics["strict"][0]["accuracy"] == 1.0


def test_resume_after_a_crash_generates_only_what_is_missing(tmp_path: Path) -> None:
    crashing = ScriptedBackend(batch_size=3, fail_after_calls=2)
    with pytest.raises(RuntimeError, match="scripted crash"):
        Runner(tmp_path, RunSettings(model="scripted"), crashing).run(ToyMCQ(n=10))
    cache_file = tmp_path / "cache" / "toy-mcq" / "trial-0.jsonl"
    assert len(lines(cache_file)) == 6  # two batches of three were kept
    resumed = ScriptedBackend(batch_size=3)
    result = Runner(tmp_path, RunSettings(model="scripted"), resumed).run(ToyMCQ(n=10))
    assert len(resumed.prompts) == 4
    records = lines(cache_file)
    assert sorted(r["sample_id"] for r in records) == sorted(f"toy-{i}" for i in range(10))
    assert len({r["key"] for r in records}) == 10
    assert result.metrics["official"][0]["n"] == 10


def test_rescore_with_another_protocol_reads_the_cache_only(tmp_path: Path) -> None:
    first = Runner(
        tmp_path, RunSettings(model="scripted", protocols=("official",)), ScriptedBackend(wrong={0})
    )
    first.run(ToyMCQ())
    settings = RunSettings(model="scripted", protocols=("strict",), rescore=True)
    result = Runner(tmp_path, settings, None).run(ToyMCQ())
    assert set(result.metrics) == {"strict"}
    assert result.metrics["strict"][0]["accuracy"] == pytest.approx(0.9)
    assert result.generated == 0


def test_rescore_refuses_to_generate(tmp_path: Path) -> None:
    Runner(tmp_path, RunSettings(model="scripted"), ScriptedBackend()).run(ToyMCQ(n=3))
    settings = RunSettings(model="scripted", rescore=True)
    with pytest.raises(MissingGenerations, match="7 generation"):
        Runner(tmp_path, settings, None).run(ToyMCQ(n=10))


def test_changing_a_sampling_parameter_regenerates(tmp_path: Path) -> None:
    Runner(tmp_path, RunSettings(model="scripted"), ScriptedBackend()).run(ToyMCQ(n=3))
    backend = ScriptedBackend()
    Runner(tmp_path, RunSettings(model="scripted", max_tokens=64), backend).run(ToyMCQ(n=3))
    assert len(backend.prompts) == 3


def test_trials_use_consecutive_seeds_and_separate_files(tmp_path: Path) -> None:
    backend = ScriptedBackend()
    result = Runner(tmp_path, RunSettings(model="scripted", trials=3, seed=7), backend).run(
        ToyMCQ(n=2)
    )
    assert sorted(set(backend.seeds)) == [7, 8, 9]
    for trial in range(3):
        assert len(lines(tmp_path / "cache" / "toy-mcq" / f"trial-{trial}.jsonl")) == 2
    assert len(result.metrics["official"]) == 3


def test_default_seed_is_the_protocol_seed(tmp_path: Path) -> None:
    backend = ScriptedBackend()
    Runner(tmp_path, RunSettings(model="scripted", trials=2), backend).run(ToyMCQ(n=1))
    assert sorted(set(backend.seeds)) == [42, 43]


def test_official_reasks_until_the_format_is_valid(tmp_path: Path) -> None:
    backend = ScriptedBackend(bad={0, 3}, bad_times=2)
    settings = RunSettings(model="scripted")
    result = Runner(tmp_path, settings, backend).run(ToyMCQ(n=5, reask=5))
    # 5 first answers + 2 items re-asked twice each; strict shares round one, no re-asks.
    assert len(backend.prompts) == 9
    assert result.metrics["official"][0]["accuracy"] == 1.0
    assert result.metrics["strict"][0]["accuracy"] == pytest.approx(0.6)
    log = {r["id"]: r for r in lines(tmp_path / "samples" / "toy-mcq" / "trial-0.official.jsonl")}
    assert log["toy-0"]["attempts"] == 3 and log["toy-1"]["attempts"] == 1


def test_reask_budget_keeps_the_last_invalid_answer(tmp_path: Path) -> None:
    backend = ScriptedBackend(bad={0}, bad_times=10)
    result = Runner(tmp_path, RunSettings(model="scripted", reask=2), backend).run(
        ToyMCQ(n=2, reask=5)
    )
    assert len(backend.prompts) == 4  # two items, then two re-asks of item 0
    assert result.metrics["official"][0]["invalid_rate"] == 0.5


def test_cache_survives_a_line_cut_off_by_a_kill(tmp_path: Path) -> None:
    Runner(tmp_path, RunSettings(model="scripted"), ScriptedBackend()).run(ToyMCQ(n=4))
    path = tmp_path / "cache" / "toy-mcq" / "trial-0.jsonl"
    text = path.read_text().splitlines(keepends=True)
    path.write_text("".join(text[:3]) + text[3][:25])  # the last write was cut off
    backend = ScriptedBackend()
    Runner(tmp_path, RunSettings(model="scripted"), backend).run(ToyMCQ(n=4))
    assert len(backend.prompts) == 1
    cache = GenerationCache(path)
    assert len(cache) == 4 and cache.skipped_lines == 1  # the stub is sealed and skipped


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json\n", "not a JSON line"),
        ('{"id": "toy-0"}\n', "needs 'completion'"),
        ('{"completion": "x"}\n', "needs 'id' or 'index'"),
        ('{"id": "toy-99", "completion": "x"}\n', "'toy-99' is not a row"),
        ('{"index": 5, "completion": "x"}\n', "index 5 is not a row"),
        ('{"index": 0, "completion": "a"}\n{"id": "toy-0", "completion": "b"}\n', "second"),
        ('{"index": 0, "completion": 3}\n', "must be a string"),
    ],
    ids=[
        "bad-json",
        "no-completion",
        "no-id",
        "unknown-id",
        "index-beyond",
        "duplicate",
        "non-string",
    ],
)
def test_predictions_errors_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        read_predictions(path, ToyMCQ(n=5).load())
    assert f"{path}:" in str(error.value)


def test_predictions_score_missing_rows_as_invalid(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"index": 0, "completion": "Answer: A"}\n'
        '{"id": "toy-1", "completion": "<think>hm</think>\\nB"}\n'
        '{"index": 2, "completion": "<think>never closed"}\n'
    )
    runner = Runner(tmp_path / "out", RunSettings(protocols=("official",)), None)
    result = score_predictions(runner, ToyMCQ(n=4), path)
    metrics = result.metrics["official"][0]
    assert metrics["accuracy"] == 0.5  # 2 correct of 4 rows
    assert metrics["missing"] == 1.0
    assert metrics["unclosed_rate"] == 0.25
    assert metrics["invalid_rate"] == 0.5


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        (None, "ctibench-mcq", None),
        ("some/hub-id", "ctibench-mcq", "some/hub-id"),
        ({"ctibench": "cti/"}, "ctibench-mcq", "cti/"),
        ({"ctibench": "cti/", "ctibench-rcm": "rcm.tsv"}, "ctibench-rcm", "rcm.tsv"),
        ({"ctibench": "cti/"}, "cybermetric-2000", None),
        ({"cti": "x/"}, "ctibench-mcq", None),
        ({"*": "all/", "cybermetric": "cm/"}, "ctibench-mcq", "all/"),
        ({"*": "all/", "cybermetric": "cm/"}, "cybermetric-500", "cm/"),
    ],
    ids=[
        "default",
        "one-for-all",
        "family",
        "exact-beats-family",
        "other-family",
        "prefix-needs-dash",
        "star-fallback",
        "family-beats-star",
    ],
)
def test_data_source_per_benchmark(data, name: str, expected: str | None) -> None:
    bench = ToyMCQ()
    bench.name = name
    assert RunSettings(data=data).source(bench) == expected


def test_counts_ignore_cache_lines_of_other_settings(tmp_path: Path) -> None:
    Runner(tmp_path, RunSettings(model="scripted"), ScriptedBackend()).run(ToyMCQ(n=3))
    other = Runner(tmp_path, RunSettings(model="scripted", max_tokens=64), ScriptedBackend())
    result = other.run(ToyMCQ(n=5))
    assert (result.generated, result.cached) == (5, 0)
    again = Runner(tmp_path, RunSettings(model="scripted"), ScriptedBackend()).run(ToyMCQ(n=5))
    assert (again.generated, again.cached) == (2, 3)
