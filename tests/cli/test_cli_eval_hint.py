"""A refused ``eval`` whose only problems are benchmarks that cannot run says how to run
the rest (the walkthrough's ``--skip-unavailable``), and only then."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_fixtures import FIXTURES, secreason

HINT = "hint: --skip-unavailable runs the other"


@pytest.mark.parametrize(
    ("extra", "hinted"),
    [
        pytest.param([], True, id="data-missing-only"),
        pytest.param(  # a server that is not there: the rest cannot run either
            ["--backend", "openai", "--base-url", "http://127.0.0.1:9/v1"],
            False,
            id="and-server-down",
        ),
    ],
)
def test_skip_unavailable_hint(
    tiny_model_dir: Path, tmp_path: Path, extra: list[str], hinted: bool
) -> None:
    args = ["eval", "paper", "--model", str(tiny_model_dir), "--data", str(FIXTURES)]
    result = secreason(*args, "--limit", "2", "--out", str(tmp_path / "o"), *extra, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "cwe-prediction" in result.stderr  # no built file among the fixtures
    assert (HINT in result.stderr) is hinted, result.stderr
    if hinted:
        hint = next(x for x in result.stderr.splitlines() if x.startswith(HINT))
        assert "ctibench-mcq" in hint and "cwe-prediction" not in hint, hint
