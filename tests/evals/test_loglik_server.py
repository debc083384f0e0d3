"""Log-likelihood multiple choice through a real loopback server's ``top_logprobs``.

The server (``logprob_server.py``) favours a letter that is a pure function of the
prompt, with its mass split over `` G`` and ``G``; the expected choices follow from its
docstring by hand.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from logprob_server import logprob_server, winner
from typer.testing import CliRunner

from secreason.backends.registry import make_backend
from secreason.cli import app
from secreason.evals.ctibench import CTIBenchMCQ
from secreason.evals.loglik import loglik_results
from secreason.evals.loglik_server import NoLogprobs, letter_logprobs, top_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmarks" / "ctibench"

LETTERS = {  # top tokens, expected per-letter log-probabilities
    "pooled": ([(" A", -1.0), ("A", -1.0), (" B", -0.5)], {"A": -1.0 + math.log(2), "B": -0.5}),
    "absent letters left out": ([(" C", -0.2), (" The", -0.1)], {"C": -0.2}),
    "lower case is not the letter": ([(" a", -0.1), (" B", -3.0)], {"B": -3.0}),
    "whitespace variants": ([("\tD", -2.0), ("D\n", -2.0)], {"D": -2.0 + math.log(2)}),
    "longer tokens do not count": ([(" AB", -0.1), (" Answer", -0.2)], {}),
    "nothing": ([], {}),
}


@pytest.mark.parametrize("case", sorted(LETTERS))
def test_letter_logprobs_table(case: str) -> None:
    top, expected = LETTERS[case]
    got = letter_logprobs([{"token": t, "logprob": v} for t, v in top], "ABCD")
    assert got == pytest.approx(expected)


@pytest.mark.parametrize(
    "payload",
    [
        {"choices": [{"message": {"content": "A"}}]},
        {"choices": [{"logprobs": None}]},
        {"choices": [{"logprobs": {"content": []}}]},
        {"choices": [{"logprobs": {"content": [{"token": "A", "top_logprobs": []}]}}]},
        {"choices": []},
    ],
)
def test_a_payload_without_top_logprobs_is_refused_by_name(payload: dict) -> None:
    with pytest.raises(NoLogprobs, match=r"http://h/v1/chat/completions returned no top_logprobs"):
        top_of(payload, "http://h/v1/chat/completions")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with logprob_server("logprobs") as url:
        yield url


def test_letters_are_read_after_an_answer_prefix(server: str) -> None:
    bench = CTIBenchMCQ()
    samples = bench.load(FIXTURES)
    backend = make_backend("openai", "served", base_url=server, concurrency=2)
    results = loglik_results(bench, samples, backend, "official")
    for sample, item in zip(samples, results, strict=True):
        user = bench.messages(sample, "official")[-1]["content"]
        chosen = max(item.extra["logprobs"], key=item.extra["logprobs"].get)
        assert chosen == winner(user), sample.id
        assert item.extra["logprobs"][chosen] == pytest.approx(-0.9 + math.log(2))
        status = "correct" if chosen == sample.reference else "incorrect"
        assert item.judgement.score.status == status
    body = httpx.get(server.removesuffix("/v1") + "/last").json()
    assert body["messages"][-1] == {"role": "assistant", "content": "Answer:"}
    assert (body["max_tokens"], body["logprobs"], body["top_logprobs"]) == (1, True, 20)
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False


def test_no_letter_among_the_top_tokens_is_invalid_not_guessed() -> None:
    bench = CTIBenchMCQ()
    with logprob_server("words") as url:
        backend = make_backend("openai", "served", base_url=url)
        results = loglik_results(bench, bench.load(FIXTURES, 2), backend, "official")
    assert [r.judgement.score.status for r in results] == ["invalid", "invalid"]


def test_cli_server_loglik_and_refusal(server: str, tmp_path: Path) -> None:
    bench = CTIBenchMCQ()
    samples = bench.load(FIXTURES)
    expected = sum(
        winner(bench.messages(s, "official")[-1]["content"]) == s.reference for s in samples
    ) / len(samples)
    base = ["eval", "ctibench-mcq", "--backend", "openai", "--model", "served", "--data"]
    base += [str(FIXTURES), "--mc-mode", "loglik", "--protocol", "official"]
    out = ["--base-url", server, "--out", str(tmp_path / "a"), "--dedup"]
    result = CliRunner().invoke(app, [*base, *out])
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    official = report["benchmarks"][0]["protocols"]["official"]
    assert official["accuracy"]["mean"] == pytest.approx(expected)
    # --dedup reaches the log-likelihood path too (the fixture has no repeated rows)
    assert official["dedup/n"]["mean"] == len(samples)
    assert official["dedup/accuracy"]["mean"] == pytest.approx(expected)
    with logprob_server("plain") as plain:
        refused = CliRunner().invoke(
            app, [*base, "--base-url", plain, "--out", str(tmp_path / "b")]
        )
    assert refused.exit_code != 0
    assert "returned no top_logprobs" in refused.stderr + str(refused.exception)


def test_cli_think_then_loglik_through_the_server(server: str, tmp_path: Path) -> None:
    args = ["eval", "ctibench-mcq", "--backend", "openai", "--model", "served", "--data"]
    args += [str(FIXTURES), "--mc-mode", "think-then-loglik", "--protocol", "official"]
    args += ["--limit", "2", "--base-url", server, "--out", str(tmp_path / "t")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    # the last request continued the model's own (empty) reasoning, closed, then 'Answer:'
    body = httpx.get(server.removesuffix("/v1") + "/last").json()
    assert body["messages"][-1]["role"] == "assistant"
    assert body["messages"][-1]["content"] == "<think></think>\nAnswer:"
    log = tmp_path / "t" / "samples" / "ctibench-mcq" / "trial-0.official.jsonl"
    assert log.read_text().count('"mode": "think-then-loglik"') == 2
