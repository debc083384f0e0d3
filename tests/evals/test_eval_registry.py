"""The benchmark registry: names, suites, options and the errors that name the fix."""

from __future__ import annotations

import pytest

from secreason.evals import SUITES, benchmark_names, expand, get_benchmark


def test_every_name_builds_and_names_itself() -> None:
    for name in benchmark_names():
        assert get_benchmark(name).name == name


def test_suites() -> None:
    assert expand(["ctibench"]) == [
        "ctibench-mcq",
        "ctibench-rcm",
        "ctibench-rcm-2021",
        "ctibench-vsp",
        "ctibench-ate",
        "ctibench-taa",
    ]
    assert expand(["safety"]) == ["harmbench"]
    paper = expand(["paper"])
    assert len(paper) == 9 and "cwe-prediction" in paper and "seceval-single" in paper
    # every paper benchmark carries the published Foundation-Sec-8B-Reasoning number
    values = {n: get_benchmark(n).references[0].value for n in paper}
    assert values["ctibench-mcq"] == 0.691 and values["cybermetric-2000"] == 0.843
    assert expand(["ctibench-mcq", "ctibench", "cyber"]).count("ctibench-mcq") == 1
    assert set(SUITES) == {"cyber", "ctibench", "athenabench", "safety", "paper"}


def test_options_reach_the_constructor() -> None:
    assert get_benchmark("harmbench", split="val").file.endswith("_val.csv")
    assert get_benchmark("secbench", dedup=True).dedup is True


def test_unknown_names_and_options_say_what_exists() -> None:
    with pytest.raises(KeyError, match="ctibench-mcq"):
        get_benchmark("ctibench-mcqq")
    with pytest.raises(KeyError, match="suites"):
        expand(["papr"])
    with pytest.raises(TypeError, match="secbench"):
        get_benchmark("secbench", nonsense=1)
