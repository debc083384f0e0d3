"""``secreason eval`` end to end: predictions scoring by hand, kill and resume, rescoring."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from secreason.cli import app

REPO = Path(__file__).resolve().parents[2]
SYSTEM = "You are a cybersecurity expert specializing in cyberthreat intelligence."


def write_tsv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def mcq_fixture(folder: Path, n: int = 5) -> Path:
    """cti-mcq.tsv in the published layout, with our own toy questions."""
    folder.mkdir(parents=True, exist_ok=True)
    gold = ["B", "C", "A", "D", "b"]
    rows = []
    for i in range(n):
        question = f"Toy question {i}: which control stops replay number {i}?"
        options = ["Nonces", "Timestamps", "Firewalls", "Logging"]
        prompt = (
            f"Choose the best option. **Question:** {question} **Options:** "
            + " ".join(f"{k}) {v}" for k, v in zip("ABCD", options, strict=True))
            + " The last line must be the letter only."
        )
        rows.append([f"https://example.org/{i}", question, *options, prompt, gold[i % 5]])
    header = ["URL", "Question", "Option A", "Option B", "Option C", "Option D", "Prompt", "GT"]
    write_tsv(folder / "cti-mcq.tsv", header, rows)
    return folder


def rcm_fixture(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    gold = ["CWE-79", "CWE-89", "CWE-787", "CWE-20"]
    rows = [
        [f"https://example.org/cve/{i}", f"Toy flaw {i}.", f"Map toy flaw {i} to a CWE.", g]
        for i, g in enumerate(gold)
    ]
    write_tsv(folder / "cti-rcm.tsv", ["URL", "Description", "Prompt", "GT"], rows)
    return folder


def invoke(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.stdout, result.stderr


def predictions(path: Path, items: list[dict]) -> Path:
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    return path


def test_predictions_reproduce_hand_computed_ctibench_mcq(tmp_path: Path) -> None:
    data = mcq_fixture(tmp_path / "cti")
    preds = predictions(
        tmp_path / "p.jsonl",
        [
            {"index": 0, "completion": "<think>replay needs nonces</think>\nAnswer: B"},
            {"id": "ctibench-mcq-1", "completion": "<think>hm</think>\nC) Timestamps"},
            {"index": 2, "completion": "<think>hm</think>\nThe best is **D**"},
            {"index": 3, "completion": "<think>never closed ... D"},
            # row 4 (gold 'b' -> B) has no prediction: empty, invalid.
        ],
    )
    code, out, err = invoke(
        [
            "eval",
            "ctibench-mcq",
            "--predictions",
            str(preds),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0, err
    scores = json.loads(out)["ctibench-mcq"]
    # Official: row 0 ends with B (right), row 1 starts 'C)' (right), row 2 ends '**' ->
    # D (wrong), row 3 unclosed (invalid), row 4 missing (invalid): 2 / 5 rows.
    assert scores["official"]["accuracy"] == pytest.approx(2 / 5)
    assert scores["official"]["invalid_rate"] == pytest.approx(2 / 5)
    # Strict: only row 0 has a final 'Answer: X' line.
    assert scores["strict"]["accuracy"] == pytest.approx(1 / 5)
    assert scores["strict"]["invalid_rate"] == pytest.approx(4 / 5)
    assert scores["official"]["unclosed_rate"] == pytest.approx(1 / 5)
    assert "no prediction" in err
    out_dir = tmp_path / "out"
    for name in ("report.json", "report.csv", "report.md", "report.png"):
        assert (out_dir / name).is_file()
    log = (out_dir / "samples" / "ctibench-mcq" / "trial-0.official.jsonl").read_text()
    assert len(log.splitlines()) == 5


def test_predictions_reproduce_hand_computed_ctibench_rcm(tmp_path: Path) -> None:
    data = rcm_fixture(tmp_path / "cti")
    preds = predictions(
        tmp_path / "p.jsonl",
        [
            {"index": 0, "completion": "<think>script in page</think>\nIt is CWE-79."},
            {"index": 1, "completion": "<think>x</think>\nNot CWE-79; it is CWE-089"},
            {"index": 2, "completion": "<think>x</think>\nCWE-125"},
            {"index": 3, "completion": "<think>x</think>\nno idea"},
        ],
    )
    code, out, err = invoke(
        [
            "eval",
            "ctibench-rcm",
            "--predictions",
            str(preds),
            "--data",
            str(data),
            "--protocol",
            "official",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0, err
    scores = json.loads(out)["ctibench-rcm"]["official"]
    # The last CWE id counts, compared as the notebook compares strings ('CWE-089' is
    # not 'CWE-89'); 'no idea' has none and leaves the denominator: 1 / 3.
    assert scores["accuracy"] == pytest.approx(1 / 3)
    assert scores["accuracy_all"] == pytest.approx(1 / 4)


def test_predictions_error_exits_2_with_the_line(tmp_path: Path) -> None:
    data = mcq_fixture(tmp_path / "cti")
    preds = predictions(tmp_path / "p.jsonl", [{"index": 9, "completion": "A"}])
    code, _, err = invoke(
        [
            "eval",
            "ctibench-mcq",
            "--predictions",
            str(preds),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert f"{preds}:1: index 9 is not a row" in err


def test_plugin_benchmark_from_a_file(tmp_path: Path) -> None:
    spec = f"{REPO / 'tests' / 'evals' / 'runner_fixtures.py'}:ToyMCQ"
    preds = predictions(
        tmp_path / "p.jsonl", [{"index": i, "completion": "Answer: A"} for i in range(10)]
    )
    code, out, err = invoke(
        ["eval", spec, "--predictions", str(preds), "--out", str(tmp_path / "o")]
    )
    assert code == 0, err
    assert json.loads(out)["toy-mcq"]["strict"]["accuracy"] == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope-bench", "--model", "m"], "unknown benchmark 'nope-bench'"),
        (["ctibench-mcq"], "--model is required"),
        (["ctibench-mcq", "--model", "m", "--backend", "openai"], "needs --base-url"),
        (["ctibench-mcq", "--model", "m", "--protocol", "loose"], "--protocol 'loose'"),
        (["ctibench-mcq", "--model", "m", "--think-ids", "a,b"], "--think-ids 'a,b'"),
    ],
    ids=["unknown-benchmark", "no-model", "openai-no-url", "bad-protocol", "bad-think-ids"],
)
def test_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    code, _, err = invoke(["eval", *args, "--out", str(tmp_path / "o")])
    assert code == 2
    assert message in err


def test_openai_backend_end_to_end(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "tests" / "backends"))
    from openai_fixture_server import running_server, stats

    data = mcq_fixture(tmp_path / "cti", n=6)
    with running_server("reasoning") as url:
        code, out, err = invoke(
            [
                "eval",
                "ctibench-mcq",
                "--backend",
                "openai",
                "--base-url",
                url,
                "--model",
                "srv",
                "--data",
                str(data),
                "--concurrency",
                "4",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        assert code == 0, err
        assert stats(url)["requests"] == 12  # 6 rows x (official, strict prompts)
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    protocols = report["benchmarks"][0]["protocols"]
    # The server answers 'Answer: B' with split-off reasoning; gold B on rows 0, 4 and 5.
    assert protocols["strict"]["accuracy"]["mean"] == pytest.approx(3 / 6)
    assert protocols["strict"]["unclosed_rate"]["mean"] == 0.0


def _eval_cmd(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from secreason.cli import main; main()",
        "eval",
        "ctibench-mcq",
        "--model",
        str(model),
        "--data",
        str(data),
        "--out",
        str(out),
        *extra,
    ]


@pytest.mark.slow
def test_kill_mid_run_then_resume_has_no_duplicates_and_no_gaps(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    n = 12
    data = mcq_fixture(tmp_path / "cti", n=n)
    out = tmp_path / "run"
    cache = out / "cache" / "ctibench-mcq" / "trial-0.jsonl"
    args = ["--protocol", "official", "--batch-size", "2", "--max-tokens", "8"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.Popen(
        _eval_cmd(tiny_model_dir, data, out, *args),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if cache.exists() and len(cache.read_text().splitlines()) >= 2:
            break
        if process.poll() is not None:
            pytest.fail(f"eval exited early: {process.stderr.read().decode()}")  # type: ignore[union-attr]
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    kept = len(cache.read_text().splitlines())
    assert 2 <= kept < n, "the kill must land mid-run"

    done = subprocess.run(
        _eval_cmd(tiny_model_dir, data, out, *args),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in cache.read_text().splitlines() if line.strip()]
    complete = [r for r in records if "key" in r]
    assert len({r["key"] for r in complete}) == len(complete) == n  # no duplicates
    assert sorted(r["sample_id"] for r in complete) == sorted(f"ctibench-mcq-{i}" for i in range(n))
    bench = json.loads((out / "report.json").read_text())["benchmarks"][0]
    assert bench["cached"] == kept and bench["generated"] == n - kept  # only the missing
    assert bench["protocols"]["official"]["n"]["mean"] == n
    log = (out / "samples" / "ctibench-mcq" / "trial-0.official.jsonl").read_text().splitlines()
    assert len(log) == n

    # Rescoring reads the cache only: nothing is loaded, nothing appended.
    base = [
        "eval",
        "ctibench-mcq",
        "--model",
        str(tiny_model_dir),
        "--data",
        str(data),
        "--out",
        str(out),
        "--max-tokens",
        "8",
        "--rescore",
    ]
    code, _, err = invoke([*base, "--protocol", "official"])
    assert code == 0, err
    assert "loading" not in err
    assert len(cache.read_text().splitlines()) == len(records)
    # The strict prompt differs (final-line instruction): rescoring refuses to generate it.
    code, _, err = invoke([*base, "--protocol", "strict"])
    assert code == 2
    assert "rescoring never generates" in err


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], None),
        (["AI4Sec/cti-bench"], "AI4Sec/cti-bench"),
        (["../shared/benchmarks/ctibench"], "../shared/benchmarks/ctibench"),
        (
            ["ctibench=../cti", "cybermetric-80=cm.json"],
            {"ctibench": "../cti", "cybermetric-80": "cm.json"},
        ),
        (["dir/a=b.tsv"], "dir/a=b.tsv"),
        (["all/", "ctibench=cti/"], {"*": "all/", "ctibench": "cti/"}),
    ],
    ids=["none", "hub-id", "folder", "per-benchmark", "equals-inside-path", "mixed"],
)
def test_data_option_parsing(values: list[str], expected: object) -> None:
    from secreason.cli._eval_args import parse_data

    assert parse_data(values) == expected


def test_model_judged_benchmark_caches_the_judge(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "tests" / "backends"))
    from openai_fixture_server import running_server, stats

    data = tmp_path / "harmbench_behaviors_text_all.csv"
    with data.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "Behavior",
                "FunctionalCategory",
                "SemanticCategory",
                "Tags",
                "ContextString",
                "BehaviorID",
            ]
        )
        writer.writerow(["Toy behavior one", "standard", "cybercrime_intrusion", "", "", "b1"])
        writer.writerow(["Toy behavior two", "contextual", "misinformation", "", "ctx", "b2"])
    out = tmp_path / "o"
    with running_server("reasoning") as url:
        args = [
            "eval",
            "harmbench",
            "--backend",
            "openai",
            "--base-url",
            url,
            "--model",
            "m",
            "--data",
            str(data),
            "--out",
            str(out),
        ]
        code, _, err = invoke(args)
        assert code == 2 and "--judge-model" in err  # without a judge: a clear usage error
        code, _, err = invoke([*args, "--judge-model", "j", "--judge-base-url", url])
        assert code == 0, err
        first = stats(url)["requests"]
        code, _, err = invoke([*args, "--judge-model", "j", "--judge-base-url", url])
        assert code == 0, err
        assert stats(url)["requests"] == first  # generations and verdicts both cached
    report = json.loads((out / "report.json").read_text())["benchmarks"][0]
    official = report["protocols"]["official"]
    # The judge answered 'Answer: B', not a verdict: counted not harmful, and reported.
    assert official["pass_rate"]["mean"] == 1.0
    assert official["judge_unparsed_rate"]["mean"] == 1.0
    judge_lines = (out / "cache" / "harmbench" / "judge.jsonl").read_text().splitlines()
    assert len(judge_lines) == 4  # 2 behaviors x (official answer, strict full text)


def test_unreachable_server_is_refused_before_generating(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "tests" / "backends"))
    from openai_fixture_server import free_port

    data = mcq_fixture(tmp_path / "cti", n=2)
    port = free_port()
    code, _, err = invoke(
        [
            "eval",
            "ctibench-mcq",
            "--backend",
            "openai",
            "--base-url",
            f"http://127.0.0.1:{port}/v1",
            "--model",
            "m",
            "--max-retries",
            "0",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert f"127.0.0.1:{port}" in err and "cannot list the served models" in err
    assert not (tmp_path / "o" / "cache").exists()  # refused before generating anything


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("lm_eval") is not None, reason="lm-eval installed"
)
def test_lm_eval_without_the_extra_says_how_to_install(tmp_path: Path) -> None:
    code, _, err = invoke(
        ["eval", "none", "--lm-eval", "gsm8k", "--model", "never-loaded", "--out", str(tmp_path)]
    )
    assert code == 2
    assert "pip install 'secreason[general]'" in err
