"""More bad inputs a newcomer throws at every command, beyond the first table.

Folders where files belong (and the reverse), UTF-16 and binary files, a byte-order
mark, CRLF, JSONL lines that are lists or null, a truncated last line, YAML that is a
list, a scalar or empty, typos and wrong types in overrides, impossible ports, option
values out of range. Each row runs the real command in a subprocess and asserts: a
non-zero exit, no traceback, the file (and line) or value at fault named on stderr,
and a short message. Rows are chosen to fail before torch is loaded, to stay fast.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from cli_fixtures import FIXTURES, secreason

MCQ = str(FIXTURES / "ctibench")
GOOD = {"completion": "Answer: CWE-79", "reference": "CWE-79"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad-inputs-extra")
    line = json.dumps(GOOD)
    (root / "good.jsonl").write_text(line + "\n")
    (root / "crlf.jsonl").write_bytes(f"{line}\r\n{line}\r\n".encode())
    (root / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + line.encode() + b"\n")
    (root / "utf16.jsonl").write_bytes((line + "\n").encode("utf-16"))
    (root / "utf16.yaml").write_bytes(b"model_name_or_path: x\n".decode().encode("utf-16"))
    (root / "nonobj.jsonl").write_text("[1, 2]\n42\nnull\n")
    (root / "trunc.jsonl").write_text(line + '\n{"completion": "Ans')
    (root / "binary.jsonl").write_bytes(bytes(range(128, 256)) * 3)
    (root / "binary.yaml").write_bytes(bytes(range(128, 256)) * 3)
    (root / "dir.jsonl").mkdir()
    (root / "dir.yaml").mkdir()
    (root / "list.yaml").write_text("- a\n- b\n")
    (root / "scalar.yaml").write_text("just a sentence\n")
    (root / "empty.yaml").write_text("")
    (root / "mix.yaml").write_text("mix:\n  seed: 1\n")
    (root / "mix-typo.yaml").write_text("mix:\n  seedd: 1\n")
    (root / "afile").write_text("")
    (root / "badrun").mkdir()
    (root / "badrun" / "report.json").write_text("[1]")
    (root / "model").mkdir()
    (root / "model" / "config.json").write_text("{}")
    (root / "model_noconfig").mkdir()
    (root / "ok.yaml").write_text(
        "model_name_or_path: model\ndataset_path: good.jsonl\noutput_dir: out\nuse_cpu: true\n"
    )
    return root


BUILD = ("build-benchmark", "cwe-prediction")
SINCE = ("--out", "o.tsv", "--since", "2024-01-01")

# (id, argv, strings stderr must contain, most stderr lines allowed)
TABLE = [
    # score
    ("score-folder", ["score", "cwe", "dir.jsonl"], ["dir.jsonl", "folder"], 2),
    ("score-utf16", ["score", "cwe", "utf16.jsonl"], ["utf16.jsonl", "UTF-16", "iconv"], 2),
    ("score-binary", ["score", "cwe", "binary.jsonl"], ["binary.jsonl:1", "UTF-8"], 2),
    (
        "score-lines-not-objects",
        ["score", "cwe", "nonobj.jsonl", "--summary", "s.json"],
        ["nonobj.jsonl: line 1", "nonobj.jsonl: line 3", "not a JSON object"],
        4,
    ),
    (
        "score-truncated-last-line",
        ["score", "cwe", "trunc.jsonl", "--summary", "s.json"],
        ["trunc.jsonl: line 2", "not valid JSON"],
        2,
    ),
    (
        "score-out-under-a-file",
        ["score", "cwe", "good.jsonl", "--out", "afile/x.jsonl"],
        ["afile/x.jsonl"],
        2,
    ),
    ("score-set-without-equals", ["score", "cwe", "good.jsonl", "--set", "x"], ["'x'", "="], 2),
    (
        "score-aliases-binary",
        ["score", "taa", "good.jsonl", "--aliases", "binary.jsonl"],
        ["--aliases binary.jsonl:1", "UTF-8"],
        1,
    ),
    (
        "score-aliases-folder",
        ["score", "taa", "good.jsonl", "--aliases", "dir.jsonl"],
        ["--aliases dir.jsonl", "a folder"],
        1,
    ),
    (
        "score-related-missing",
        ["score", "taa", "good.jsonl", "--related", "gone.json"],
        ["--related gone.json", "no such file"],
        1,
    ),
    (
        "score-aliases-a-list",
        ["score", "taa", "good.jsonl", "--aliases", "badrun/report.json"],
        ["badrun/report.json", "expected an object"],
        1,
    ),
    # data
    ("data-run-folder", ["data", "run", "dir.yaml"], ["dir.yaml", "folder"], 2),
    ("data-run-list", ["data", "run", "list.yaml"], ["list.yaml", "mapping"], 2),
    ("data-run-scalar", ["data", "run", "scalar.yaml"], ["scalar.yaml", "mapping"], 2),
    ("data-run-empty", ["data", "run", "empty.yaml"], ["empty.yaml", "empty"], 2),
    ("data-run-utf16", ["data", "run", "utf16.yaml"], ["utf16.yaml", "UTF-16"], 2),
    (
        "data-run-typo",
        ["data", "run", "mix-typo.yaml"],
        ["mix-typo.yaml:2", "seedd", "did you mean 'seed'"],
        2,
    ),
    (
        "data-run-wrong-type",
        ["data", "run", "mix.yaml", "--set", "mix.seed=abc"],
        ["mix.seed", "'abc'"],
        2,
    ),
    ("data-synthesize-set-no-equals", ["data", "synthesize", "--set", "nokey"], ["nokey"], 2),
    ("data-audit-a-file", ["data", "audit", "afile"], ["afile", "data run"], 2),
    (
        "data-export-list-line",
        ["data", "export", "nonobj.jsonl", "--format", "verl", "--out", "o"],
        ["nonobj.jsonl:1", "not an object"],
        2,
    ),
    (
        "data-export-truncated",
        ["data", "export", "trunc.jsonl", "--format", "openrlhf", "--out", "o"],
        ["trunc.jsonl:2"],
        2,
    ),
    (
        "data-teacher-list-line",
        ["data", "teacher", "nonobj.jsonl", "--out", "t.jsonl"],
        ["nonobj.jsonl:1", "not an object"],
        2,
    ),
    (
        "data-dedup-truncated",
        ["data", "dedup", "trunc.jsonl", "--out", "d.jsonl"],
        ["trunc.jsonl:2", "not valid JSON"],
        2,
    ),
    ("data-card-not-json", ["data", "card", "nonobj.jsonl"], ["nonobj.jsonl:2", "JSON"], 2),
    # sft / rl (all refused before TRL is imported)
    (
        "sft-dataset-null-line",
        ["sft", "ok.yaml", "--set", "dataset_path=nonobj.jsonl"],
        ["ok.yaml", "nonobj.jsonl:1", "not an object"],
        2,
    ),
    (
        "sft-dataset-folder",
        ["sft", "ok.yaml", "--set", "dataset_path=dir.jsonl"],
        ["dir.jsonl", "folder"],
        2,
    ),
    (
        "sft-model-without-config",
        ["sft", "ok.yaml", "--set", "model_name_or_path=model_noconfig"],
        ["model_noconfig", "config.json"],
        2,
    ),
    (
        "sft-model-is-a-file",
        ["sft", "ok.yaml", "--set", "model_name_or_path=afile"],
        ["afile", "not a folder"],
        2,
    ),
    ("rl-binary-recipe", ["rl", "binary.yaml"], ["binary.yaml:1", "UTF-8"], 2),
    ("rl-scalar-recipe", ["rl", "scalar.yaml"], ["scalar.yaml", "mapping"], 2),
    (
        "sft-set-wrong-type",
        ["sft", "ok.yaml", "--set", "max_steps=abc"],
        ["max_steps: expected an integer, got 'abc'"],
        1,
    ),
    ("rl-set-without-equals", ["rl", "ok.yaml", "--set", "max_steps"], ["max_steps", "="], 2),
    # eval
    ("eval-negative-limit", ["eval", "ctibench-mcq", "--limit", "-1"], ["--limit"], 2),
    ("eval-zero-trials", ["eval", "ctibench-mcq", "--trials", "0"], ["--trials"], 2),
    (
        "eval-predictions-list-line",
        ["eval", "ctibench-mcq", "--data", MCQ, "--predictions", "nonobj.jsonl"],
        ["nonobj.jsonl:1"],
        2,
    ),
    (
        "eval-predictions-folder",
        ["eval", "ctibench-mcq", "--data", MCQ, "--predictions", "dir.jsonl"],
        ["dir.jsonl"],
        2,
    ),
    (
        "eval-model-is-a-file",
        ["eval", "ctibench-mcq", "--data", MCQ, "--model", "afile"],
        ["afile", "not a folder"],
        3,
    ),
    (
        "eval-list-data-missing",
        ["eval", "--list", "--data", "gone/ctibench/cti-mcq.tsv"],
        ["--data gone/ctibench/cti-mcq.tsv", "no such file"],
        1,
    ),
    (
        "eval-list-data-missing-for-one",
        ["eval", "--list", "--data", "ctibench-mcq=./gone.tsv"],
        ["--data ./gone.tsv", "no such file or folder"],
        1,
    ),
    (
        "eval-set-fixed-by-name",
        ["eval", "cybermetric", "--set", "size=abc", "--predictions", "good.jsonl"],
        ["cybermetric-2000", "size is set by the name", "eval --list"],
        1,
    ),
    (
        "eval-set-unknown-option",
        ["eval", "ctibench-mcq", "--set", "size=5", "--predictions", "good.jsonl"],
        ["ctibench-mcq", "no option 'size'", "fewshot"],
        1,
    ),
    (
        "eval-set-wrong-type",
        ["eval", "cybermetric", "--set", "reask=abc", "--predictions", "good.jsonl"],
        ["reask: expected an integer, got 'abc'"],
        1,
    ),
    # serve / reward-server
    ("serve-port-out-of-range", ["serve", "--model", "m", "--port", "70000"], ["70000"], 2),
    ("serve-port-by-set", ["serve", "--model", "m", "--set", "port=99999"], ["99999"], 2),
    ("serve-port-not-a-number", ["serve", "--model", "m", "--set", "port=abc"], ["abc"], 2),
    ("serve-set-no-equals", ["serve", "--model", "m", "--set", "nonsense"], ["nonsense"], 2),
    ("serve-unknown-host", ["serve", "--model", "m", "--host", "999.1.1.1"], ["--host"], 2),
    ("serve-model-is-a-file", ["serve", "--model", "afile"], ["afile", "not a folder"], 2),
    (
        "serve-system-prompt-folder",
        ["serve", "--model", "model", "--system-prompt", "dir.yaml"],
        ["system prompt dir.yaml", "a folder", "text file"],
        1,
    ),
    (
        "serve-system-prompt-missing",
        ["serve", "--model", "model", "--system-prompt", "nothere.txt"],
        ["system prompt nothere.txt", "no such file"],
        1,
    ),
    ("serve-config-list", ["serve", "--config", "list.yaml"], ["list.yaml", "mapping"], 2),
    ("reward-server-port", ["reward-server", "--port", "70000"], ["70000", "1-65535"], 2),
    # export / card / build-benchmark
    (
        "export-out-is-a-file",
        ["export", "model", "--to", "vllm", "--out", "afile"],
        ["afile", "folder"],
        2,
    ),
    (
        "card-summary-utf16",
        ["card", "model", "--data-summary", "utf16.jsonl"],
        ["utf16.jsonl", "UTF-16"],
        2,
    ),
    (
        "card-report-a-list",
        ["card", "model", "--eval", "badrun"],
        ["badrun/report.json", "report"],
        2,
    ),
    ("build-binary", [*BUILD, "binary.jsonl", *SINCE], ["binary.jsonl:1", "UTF-8"], 2),
    ("build-empty-folder", [*BUILD, "dir.jsonl", *SINCE], ["dir.jsonl", "no record"], 2),
    ("build-negative-limit", [*BUILD, "good.jsonl", *SINCE, "--limit", "-3"], ["--limit"], 2),
    (
        "build-out-under-a-file",
        [*BUILD, "good.jsonl", "--out", "afile/x", "--since", "2024-01-01"],
        ["--out afile/x", "afile is a file"],
        1,
    ),
    (
        "build-out-is-a-folder",
        [*BUILD, "good.jsonl", "--out", "dir.yaml", "--since", "2024-01-01"],
        ["--out dir.yaml", "a folder"],
        1,
    ),
    # usage
    ("unknown-command", ["evaluate"], ["evaluate"], 2),
    ("missing-argument", ["score"], ["task", "score --help"], 2),
]


@pytest.mark.parametrize(
    ("argv", "expected", "most"), [row[1:] for row in TABLE], ids=[r[0] for r in TABLE]
)
def test_bad_input_is_a_short_clear_message(
    inputs: Path, argv: list[str], expected: list[str], most: int
) -> None:
    result = secreason(*argv, cwd=inputs)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "│" not in result.stderr, result.stderr  # no boxed panel: plain error lines
    for text in expected:
        assert text in result.stderr, (text, result.stderr)
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    lines = [x for x in lines if not x.startswith(("warning:", "note:"))]
    assert 1 <= len(lines) <= most, result.stderr


def test_bom_and_crlf_are_read_as_text(inputs: Path) -> None:
    for name in ("bom.jsonl", "crlf.jsonl"):
        result = secreason("score", "cwe", name, "--summary", f"{name}.json", cwd=inputs)
        assert result.returncode == 0, result.stderr
        rows = [json.loads(x) for x in result.stdout.splitlines()]
        assert rows and all(r["score"] == 1.0 for r in rows), rows


def test_a_port_in_use_is_refused_before_loading(inputs: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        for argv in (["serve", "--model", "m", "--port", port], ["reward-server", "--port", port]):
            result = secreason(*argv, cwd=inputs)
            assert result.returncode == 2, result.stderr
            assert f"127.0.0.1:{port}" in result.stderr and "--port" in result.stderr
            assert "Traceback" not in result.stderr


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads all")
def test_an_unreadable_file_is_named(inputs: Path) -> None:
    locked = inputs / "locked.jsonl"
    locked.write_text(json.dumps(GOOD) + "\n")
    locked.chmod(0)
    try:
        result = secreason("score", "cwe", "locked.jsonl", cwd=inputs)
    finally:
        locked.chmod(0o644)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "locked.jsonl" in result.stderr and "permission" in result.stderr
