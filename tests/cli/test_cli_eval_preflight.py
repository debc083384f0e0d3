"""``secreason eval`` before it generates: data, names, context, trials, the server.

The preflight must find every problem at once, clamp what it can fix (max_tokens to the
context left by the longest prompt, computed here independently with the tokenizer),
and record how a server treats system prompts; names and ``--data ROOT`` resolve the
way ``--list`` says they do.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from secreason.cli import _eval_preflight as pre
from secreason.cli import app
from secreason.evals.registry import expand, get_benchmark
from secreason.evals.runner import Runner, RunSettings
from secreason.evals.sources import local_file

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "benchmarks"


def invoke(args: list[str]) -> Any:
    return CliRunner().invoke(app, args, catch_exceptions=False)


# ------------------------------------------------------------------------ names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cybermetric", ["cybermetric-2000"]),
        ("mmlu", ["mmlu-security"]),
        ("mmlu-security", ["mmlu-security"]),
        ("ctibench-mcq", ["ctibench-mcq"]),
    ],
)
def test_aliases(name: str, expected: list[str]) -> None:
    assert expand([name]) == expected
    assert get_benchmark(name).name == expected[0]


@pytest.mark.parametrize(
    ("name", "suggested"),
    [("cybermetrc", "cybermetric"), ("mmlu-sec", "mmlu-security"), ("ctibench-mq", "ctibench-mcq")],
)
def test_unknown_names_suggest_the_closest(name: str, suggested: str) -> None:
    with pytest.raises(KeyError) as error:
        expand([name])
    assert f"did you mean {suggested}" in error.value.args[0]


def test_data_root_finds_each_benchmark_folder() -> None:
    root = Runner("unused", RunSettings(data=str(FIXTURES)))
    for name, folder in [
        ("ctibench-mcq", "ctibench"),
        ("cybermetric-80", "cybermetric"),
        ("mmlu-security", "mmlu_computer_security"),
        ("secbench", "secbench"),
    ]:
        bench = get_benchmark(name)
        direct = Runner("unused", RunSettings(data=str(FIXTURES / folder))).load(bench)
        assert direct and [s.id for s in root.load(bench)] == [s.id for s in direct]


def test_data_root_with_a_file_in_two_subfolders_is_ambiguous(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        shutil.copy(FIXTURES / "ctibench" / "cti-mcq.tsv", tmp_path / sub)
    with pytest.raises(ValueError, match="several subfolders"):
        local_file(tmp_path, "cti-mcq.tsv")


@pytest.mark.parametrize(
    ("source", "names", "message"),
    [
        (FIXTURES / "cybermetric" / "CyberMetric-80-v1.json", "cti-mcq.tsv", "another benchmark"),
        (FIXTURES / "ctibench" / "cti-mcq.tsv", "CyberMetric-2000-v1.json", "another benchmark"),
        (FIXTURES / "secbench", "cti-mcq.tsv", "none of cti-mcq.tsv"),
    ],
)
def test_wrong_sources_are_named(source: Path, names: str, message: str) -> None:
    with pytest.raises((ValueError, FileNotFoundError), match=message) as error:
        local_file(source, names)
    assert str(source) in str(error.value)


def test_list_shows_names_files_and_row_counts() -> None:
    result = invoke(["eval", "--list", "--data", str(FIXTURES)])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    n_mcq = len((FIXTURES / "ctibench" / "cti-mcq.tsv").read_text().splitlines()) - 1
    assert f"rows={n_mcq}" in lines["ctibench-mcq"]
    n_cm = len(
        json.loads((FIXTURES / "cybermetric" / "CyberMetric-80-v1.json").read_text())["questions"]
    )
    assert f"rows={n_cm}" in lines["cybermetric-80"]
    assert "unavailable" in lines["cwe-prediction"]  # no built file under the root
    assert "= cybermetric-2000" in lines["cybermetric"]
    assert "paper" in lines


# ------------------------------------------------------------- context, trials


def test_max_tokens_is_clamped_to_the_context_left_by_the_longest_prompt(
    tiny_model_dir: Path,
) -> None:
    settings = RunSettings(model=str(tiny_model_dir), data=str(FIXTURES), max_tokens=100_000)
    runner = Runner("unused", settings)
    bench = get_benchmark("ctibench-mcq")
    report = pre.Preflight()
    pre.check_data(runner, [bench], report)
    pre.clamp_max_tokens(runner, [bench], str(tiny_model_dir), report)
    longest = _longest_prompt(tiny_model_dir, runner, bench)
    context = json.loads((tiny_model_dir / "config.json").read_text())["max_position_embeddings"]
    assert report.context == context
    assert settings.sampling(bench, 0).max_tokens == context - longest
    assert report.notes and "100000->" in report.notes[0] and str(context) in report.notes[0]
    assert not report.problems


def test_a_prompt_longer_than_the_context_is_a_problem(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pre, "context_length", lambda model: 16)
    runner = Runner("unused", RunSettings(data=str(FIXTURES)))
    bench = get_benchmark("ctibench-mcq")
    report = pre.Preflight()
    pre.check_data(runner, [bench], report)
    pre.clamp_max_tokens(runner, [bench], str(tiny_model_dir), report)
    assert report.problems and "no room to answer" in report.problems[0]


@pytest.mark.parametrize(
    ("temperature", "trials", "greedy_once", "expected"),
    [
        (None, 3, True, 1),
        (0.0, 3, True, 1),
        (0.7, 3, True, 3),
        (None, 3, False, 3),
        (None, 1, True, 1),
    ],
)
def test_greedy_runs_once(
    temperature: float | None, trials: int, greedy_once: bool, expected: int
) -> None:
    settings = RunSettings(trials=trials, temperature=temperature, greedy_once=greedy_once)
    bench = get_benchmark("ctibench-mcq")  # its protocol decodes greedily
    assert settings.trials_for(bench) == expected
    report = pre.Preflight()
    pre.greedy_note(Runner("unused", settings), [bench], report)
    assert bool(report.notes) == (expected == 1 and trials > 1)


def test_missing_optional_extras_are_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pre.importlib.util, "find_spec", lambda name: None)
    report = pre.Preflight()
    pre.check_extras(True, True, report)
    pre.check_backend("vllm", "some-org/model", report)
    text = "\n".join(report.problems)
    assert "--lm-eval" in text and "--alpaca-eval" in text and "secreason[vllm]" in text
    assert text.count("secreason[general]") == 2


# ------------------------------------------------------------------- server


@pytest.fixture
def models_server() -> Iterator[str]:
    """A loopback server whose /v1/models describes a secreason deployment."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(
                {
                    "data": [
                        {
                            "id": "srv",
                            "owned_by": "secreason",
                            "max_model_len": 4096,
                            "secreason": {"system_prompt": {"mode": "replace", "version": "v1"}},
                        }
                    ]
                }
            ).encode()
            self.send_response(200 if self.path == "/v1/models" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_server_policy_and_context_are_read_from_models(models_server: str) -> None:
    report = pre.Preflight()
    pre.check_backend("openai", "srv", report, base_url=models_server)
    assert not report.problems
    assert report.server is not None
    assert report.server["system_prompt"] == {"mode": "replace", "version": "v1"}
    assert report.context == 4096


def test_a_model_the_server_does_not_serve_is_refused(models_server: str) -> None:
    report = pre.Preflight()
    pre.check_backend("openai", "other", report, base_url=models_server)
    assert report.problems and "serves srv" in report.problems[0]


def test_server_policy_flag_and_skipped_benchmarks_are_recorded(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(REPO / "tests" / "backends"))
    from openai_fixture_server import running_server

    with running_server("reasoning") as url:
        result = invoke(
            [
                "eval",
                "ctibench-mcq",
                "cwe-prediction",  # no built file under the root: skipped, and said so
                "--skip-unavailable",
                "--backend",
                "openai",
                "--base-url",
                url,
                "--model",
                "srv",
                "--data",
                str(FIXTURES),
                "--limit",
                "2",
                "--server-system-prompt",
                "off",
                "--out",
                str(tmp_path / "o"),
            ]
        )
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    assert run["server"]["system_prompt"] == {"mode": "off", "source": "flag"}
    assert run["rows"] == {"ctibench-mcq": 2}
    assert run["benchmarks"] == ["ctibench-mcq"] and run["skipped"] == ["cwe-prediction"]
    assert "skipped (--skip-unavailable): cwe-prediction (no data)" in result.output
    assert "system-prompt policy: **off**" in (tmp_path / "o" / "report.md").read_text()


def test_a_secreason_server_reports_its_policy_into_run_json_and_the_report(
    tmp_path: Path,
) -> None:
    """A real ``secreason serve`` (fixed-text backend, default ``replace`` policy)."""
    import sys

    sys.path.insert(0, str(REPO / "tests" / "serve"))
    from serve_fixtures import Server

    server = Server(
        {"model": {"backend": "fixed-text", "served_name": "srv"}}, tmp_path, "fixed"
    ).wait_ready()
    try:
        result = invoke(
            [
                "eval",
                "ctibench-mcq",
                "--backend",
                "openai",
                "--base-url",
                server.base_url + "/v1",
                "--model",
                "srv",
                "--data",
                str(FIXTURES / "ctibench"),
                "--limit",
                "2",
                "--out",
                str(tmp_path / "o"),
            ]
        )
    finally:
        server.kill()
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    assert run["server"]["system_prompt"]["mode"] == "replace"
    assert run["server"]["owned_by"].startswith("secreason")
    assert "system-prompt policy: **replace**" in (tmp_path / "o" / "report.md").read_text()


# ----------------------------------------------- served context (max_model_len)


def _longest_prompt(tokenizer_dir: Path, runner: Runner, bench: Any) -> int:
    """The longest prompt in tokens, counted here independently of the preflight."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    return max(
        len(
            tokenizer(
                tokenizer.apply_chat_template(
                    bench.messages(s, p), add_generation_prompt=True, tokenize=False
                ),
                add_special_tokens=False,
            )["input_ids"]
        )
        for s in runner.load(bench)
        for p in ("official", "strict")
    )


def _served_report(runner: Runner, bench: Any, context: int | None, mode: str = "off") -> Any:
    report = pre.Preflight(context=context)
    report.server = {"url": "http://srv/v1", "system_prompt": {"mode": mode}}
    pre.check_data(runner, [bench], report)
    return report


def test_a_served_context_is_clamped_with_the_given_tokenizer(tiny_model_dir: Path) -> None:
    settings = RunSettings(data=str(FIXTURES), max_tokens=100_000)
    runner = Runner("unused", settings)
    bench = get_benchmark("ctibench-mcq")
    longest = _longest_prompt(tiny_model_dir, runner, bench)
    report = _served_report(runner, bench, longest + 40, mode="replace")
    pre.clamp_max_tokens(runner, [bench], "srv", report, served=True, tokenizer=str(tiny_model_dir))
    assert not report.problems
    assert settings.sampling(bench, 0).max_tokens == 40
    assert "served model's" in report.notes[0] and "100000->40" in report.notes[0]
    assert "mode replace, is not counted" in report.notes[0]


@pytest.mark.parametrize(
    ("max_tokens", "context", "tokenizer", "problem"),
    [
        (1024, 1024, None, "max_tokens 1024 leaves no room for a prompt"),
        (5000, 1024, None, "in the served model's 1024-token context (max_model_len at"),
        (1023, 1024, None, None),  # might fit: the server's 400 decides
        (5000, None, None, None),  # the server does not say its context: nothing to check
        (10, 1024, "/nonexistent/tok", "--tokenizer /nonexistent/tok: cannot load it"),
    ],
)
def test_a_served_context_without_a_tokenizer_refuses_only_what_cannot_fit(
    max_tokens: int, context: int | None, tokenizer: str | None, problem: str | None
) -> None:
    settings = RunSettings(data=str(FIXTURES), max_tokens=max_tokens)
    runner = Runner("unused", settings)
    bench = get_benchmark("ctibench-mcq")
    report = _served_report(runner, bench, context)
    pre.clamp_max_tokens(runner, [bench], "srv", report, served=True, tokenizer=tokenizer)
    if problem is None:
        assert not report.problems and not report.notes
    else:
        assert len(report.problems) == 1 and problem in report.problems[0], report.problems
        assert "--tokenizer" in report.problems[0]
    assert settings.sampling(bench, 0).max_tokens == max_tokens


@pytest.fixture
def small_server() -> Iterator[tuple[str, list[int]]]:
    """A loopback vLLM-like server: 'srv' with a 600-token context; it keeps each
    request's max_tokens and answers 'A'."""
    seen: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def _send(self, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send({"data": [{"id": "srv", "owned_by": "vllm", "max_model_len": 600}]})

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(request["max_tokens"])
            message = {"role": "assistant", "content": "<think>x</think>A"}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            self._send(
                {
                    "id": "c",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "srv",
                    "choices": [choice],
                }  # fmt: skip
            )

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    server.shutdown()


def test_eval_through_a_server_clamps_to_its_max_model_len(
    small_server: tuple[str, list[int]], tiny_model_dir: Path, tmp_path: Path
) -> None:
    url, seen = small_server
    args = ["eval", "ctibench-mcq", "--backend", "openai", "--base-url", url, "--model", "srv"]
    args += ["--data", str(FIXTURES / "ctibench"), "--limit", "2", "--max-tokens", "5000"]
    refused = invoke([*args, "--out", str(tmp_path / "a")])
    assert refused.exit_code == 2 and not seen
    assert "max_tokens 5000 leaves no room for a prompt" in refused.output
    done = invoke([*args, "--tokenizer", str(tiny_model_dir), "--out", str(tmp_path / "b")])
    assert done.exit_code == 0, done.output
    runner = Runner("unused", RunSettings(data=str(FIXTURES / "ctibench"), limit=2))
    room = 600 - _longest_prompt(tiny_model_dir, runner, get_benchmark("ctibench-mcq"))
    assert seen and set(seen) == {room}
    assert "max_tokens clamped to the served model's 600-token context" in done.output
