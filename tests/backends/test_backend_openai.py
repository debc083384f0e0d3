"""The openai backend against real OpenAI-compatible servers on loopback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from openai_fixture_server import running_server, stats  # noqa: E402

from secreason.backends.base import SamplingParams  # noqa: E402
from secreason.backends.openai import OpenAIBackend  # noqa: E402
from secreason.backends.registry import make_backend  # noqa: E402
from secreason.reasoning import split  # noqa: E402
from secreason.tasks.mcq import MCQ  # noqa: E402


def conv(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]


@pytest.fixture(scope="module")
def echo_server():
    with running_server("echo", delay=0.05) as url:
        yield url


def test_sends_decoding_and_keeps_order_under_concurrency(echo_server: str) -> None:
    backend = OpenAIBackend(echo_server, "tiny", concurrency=8)
    params = SamplingParams(temperature=0.6, top_p=0.95, max_tokens=77, seed=5)
    before = stats(echo_server)["requests"]
    prompts = [f"question {i}" for i in range(24)]
    out = backend.generate([conv(p) for p in prompts], params)
    backend.close()
    assert [split(g.text).answer for g in out] == prompts
    assert all("seed=5 temperature=0.6 top_p=0.95 max_tokens=77" in g.text for g in out)
    state = stats(echo_server)
    assert state["requests"] - before == 24
    # Requests really overlapped, and never beyond the bound.
    assert 2 <= state["max_in_flight"] <= 8


def test_concurrency_one_sends_one_at_a_time(echo_server: str) -> None:
    with running_server("echo", delay=0.02) as url:
        backend = OpenAIBackend(url, "tiny", concurrency=1)
        backend.generate([conv(f"q{i}") for i in range(6)], SamplingParams())
        backend.close()
        assert stats(url)["max_in_flight"] == 1


def test_reads_split_reasoning_content() -> None:
    with running_server("reasoning") as url:
        backend = OpenAIBackend(url, "tiny")
        gen = backend.generate([conv("which port?")], SamplingParams())[0]
        assert gen.reasoning == "Thinking about: which port?"
        assert gen.text == "Answer: B"
        verdict = MCQ().judge(gen.full_text(), "B")
        assert verdict.split.status == "closed"
        assert verdict.score.status == "correct"
        streamed = "".join(backend.stream(conv("which port?"), SamplingParams()))
        backend.close()
        parts = split(streamed)
        assert parts.status == "closed"
        assert parts.reasoning == "Thinking about: which port?"
        assert parts.answer == "Answer: B"


def test_retries_500_and_429_then_succeeds() -> None:
    with running_server("flaky", fail_times=3) as url:
        backend = OpenAIBackend(url, "tiny", max_retries=4, backoff=0.01)
        out = backend.generate([conv("a"), conv("b")], SamplingParams())
        backend.close()
        assert [split(g.text).answer for g in out] == ["a", "b"]
        assert backend.retries == 6
        assert stats(url)["failures"] == 6


def test_gives_up_after_max_retries_with_a_clear_error() -> None:
    with running_server("flaky", fail_times=10) as url:
        backend = OpenAIBackend(url, "tiny", max_retries=2, backoff=0.01)
        with pytest.raises(RuntimeError, match=r"failed after 3 attempt\(s\)"):
            backend.generate([conv("a")], SamplingParams())
        backend.close()


def test_unreachable_server_fails_after_retries() -> None:
    from openai_fixture_server import free_port

    backend = OpenAIBackend(f"http://127.0.0.1:{free_port()}/v1", "m", max_retries=1, backoff=0.01)
    with pytest.raises(RuntimeError, match="request failed"):
        backend.generate([conv("a")], SamplingParams())
    backend.close()


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("openai", {}, "--base-url"),
        ("tgi", {}, "unknown backend"),
    ],
    ids=["openai-without-url", "unknown-kind"],
)
def test_make_backend_errors(kind: str, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_backend(kind, "m", **options)


def test_make_backend_builds_openai_without_loading_torch() -> None:
    backend = make_backend("openai", "served", base_url="http://127.0.0.1:1/v1", concurrency=3)
    assert isinstance(backend, OpenAIBackend)
    assert backend.concurrency == 3 and backend.model_id == "served"
