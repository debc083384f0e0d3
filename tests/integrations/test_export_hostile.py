"""A hostile review of ``data export`` and ``export``/``card``: rows and paths a careless
user passes. Each row runs the ``secreason`` entry point (``secreason.cli.main``, the
same error path as the installed command) and expects exit code 2 with one ``error:``
line naming what is wrong, no traceback, and nothing half-written; a few rows that
must succeed check what was written. One row runs the real command in a subprocess.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from secreason.cli import main

GOOD = {
    "id": "a",
    "prompt": [{"role": "user", "content": "Which CWE? The page echoes the query."}],
    "task": "cwe",
    "reference": "CWE-79",
}


def secreason(*argv: str) -> tuple[int, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            main(list(argv))
            code = 0
        except SystemExit as done:
            code = int(done.code or 0)
    return code, err.getvalue() + out.getvalue()


def jsonl(path: Path, *rows: Any, prefix: str = "") -> Path:
    path.write_text(prefix + "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# (id, rows of the source JSONL, needle of the error)
BAD_ROWS: list[tuple[str, list[Any], str]] = [
    ("prompt-is-text", [{**GOOD, "prompt": "Which CWE?"}], "prompt must be a list of chat turns"),
    ("turn-without-role", [{**GOOD, "prompt": [{"content": "q"}]}], "prompt[0] must be"),
    ("turn-is-text", [{**GOOD, "prompt": ["q"]}], "prompt[0] must be"),
    ("turn-content-null", [{**GOOD, "prompt": [{"role": "user", "content": None}]}], "prompt[0]"),
    ("task-is-number", [{**GOOD, "task": 5}], "task 5 is not a task name"),
    ("gold-no-answer-pays", [{**GOOD, "reference": "XSS"}], "gold 'XSS' is not an answer"),
    ("mcq-gold-out-of-range", [{**GOOD, "task": "mcq", "reference": "E"}], "gold 'E'"),
    ("second-row-named", [GOOD, {**GOOD, "id": "b", "reference": None}], "row 1 (id='b')"),
]


@pytest.mark.parametrize("fmt", ["verl", "openrlhf"])
@pytest.mark.parametrize(("name", "rows", "needle"), BAD_ROWS, ids=[r[0] for r in BAD_ROWS])
def test_data_export_refuses_rows_the_reward_cannot_score(
    tmp_path: Path, fmt: str, name: str, rows: list[Any], needle: str
) -> None:
    source = jsonl(tmp_path / "train.jsonl", *rows)
    code, text = secreason(
        "data", "export", str(source), "--format", fmt, "--out", str(tmp_path / "o")
    )
    assert code == 2 and needle in text, text
    assert "Traceback" not in text and "unexpected" not in text
    assert not list((tmp_path / "o").glob("train.*"))


def test_data_export_reads_bom_files_and_list_golds(tmp_path: Path) -> None:
    row = {**GOOD, "task": "ate", "reference": ["T1059.001", "T1071"]}
    source = jsonl(tmp_path / "train.jsonl", row, prefix="\ufeff")
    code, text = secreason(
        "data", "export", str(source), "--format", "verl", "--out", str(tmp_path / "v")
    )
    assert code == 0, text
    (got,) = pq.read_table(tmp_path / "v" / "train.parquet").to_pylist()
    assert got["reward_model"]["ground_truth"] == "T1059.001, T1071"


def test_data_export_out_paths(tmp_path: Path) -> None:
    source = jsonl(tmp_path / "train.jsonl", GOOD)
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, needle in [
        (afile, "a file, not a folder"),
        (afile / "sub", "is a file, not a folder"),
    ]:
        code, text = secreason("data", "export", str(source), "--format", "verl", "--out", str(out))
        assert code == 2 and needle in text, text
    out = tmp_path / "v"
    out.mkdir()
    (out / "test.parquet").write_bytes(b"old")  # an earlier export's split
    code, text = secreason("data", "export", str(source), "--format", "verl", "--out", str(out))
    assert code == 0 and "also holds test.parquet" in text, text
    code, again = secreason("data", "export", str(source), "--format", "verl", "--out", str(out))
    assert code == 0, again  # a rerun overwrites its own files


# ---------------------------------------------------------------- export and card


def _paths(tmp: Path, model: Path) -> dict[str, Path]:
    afile = tmp / "afile"
    afile.write_text("x")
    blocked = tmp / "blocked"
    blocked.mkdir()
    (blocked / "vllm").write_text("x")  # a file where the target's folder goes
    bad_json = tmp / "summary.json"
    bad_json.write_text("{nope", encoding="utf-8")
    spaced = tmp / "my model"  # a real model folder whose name is no model name
    spaced.mkdir()
    for item in model.iterdir():
        (spaced / item.name).symlink_to(item)
    return {"afile": afile, "blocked": blocked, "bad_json": bad_json, "spaced": spaced}


# (id, argv with {model}, {tmp} and the paths of _paths as placeholders, needle)
EXPORTS: list[tuple[str, list[str], str]] = [
    ("model-missing", ["export", "{tmp}/none", "--to", "vllm"], "not a model folder"),
    ("model-is-file", ["export", "{afile}", "--to", "vllm"], "not a model folder"),
    ("out-is-file", ["export", "{model}", "--to", "vllm", "--out", "{afile}"], "not a folder"),
    ("out-under-file", ["export", "{model}", "--to", "vllm", "--out", "{afile}/x"], "is a file"),
    (
        "target-folder-is-file",
        ["export", "{model}", "--to", "vllm", "--out", "{blocked}"],
        "vllm is a file where a folder goes",
    ),
    ("no-target", ["export", "{model}", "--to", ","], "expected some of vllm"),
    ("name-shell", ["export", "{model}", "--to", "ollama", "--name", 'x"; rm -rf ~; "'], "--name"),
    ("name-space", ["export", "{model}", "--to", "ollama", "--name", "my model"], "'my model'"),
    ("default-name-space", ["export", "{spaced}", "--to", "ollama"], "give --name"),
    (
        "summary-not-json",
        ["export", "{model}", "--to", "vllm", "--data-summary", "{bad_json}"],
        "summary.json:1: not JSON",
    ),
    (
        "summary-missing",
        ["export", "{model}", "--to", "vllm", "--data-summary", "{tmp}/none.json"],
        "--data-summary",
    ),
    (
        "system-prompt-missing",
        ["export", "{model}", "--to", "vllm", "--system-prompt", "{tmp}/none.txt"],
        "none.txt",
    ),
    ("card-out-folder", ["card", "{model}", "--out", "{tmp}"], "give the card's file path"),
    ("card-name-shell", ["card", "{model}", "--out", "{tmp}/c.md", "--name", "a;b"], "'a;b'"),
]


@pytest.mark.parametrize(("name", "argv", "needle"), EXPORTS, ids=[e[0] for e in EXPORTS])
def test_export_refuses_bad_paths_and_names(
    tiny_model_dir: Path, tmp_path: Path, name: str, argv: list[str], needle: str
) -> None:
    paths = {k: str(v) for k, v in _paths(tmp_path, tiny_model_dir).items()}
    args = [a.format(model=tiny_model_dir, tmp=tmp_path, **paths) for a in argv]
    if args[0] == "export" and "--out" not in args:
        args += ["--out", str(tmp_path / "o")]
    code, text = secreason(*args)
    assert code == 2 and needle in text, text
    assert text.count("error:") == 1 and "Traceback" not in text
    assert not (tmp_path / "o").exists()


def test_a_shell_name_is_refused_by_the_real_command(tiny_model_dir: Path, tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("secreason")
    command = [str(cli), "export", str(tiny_model_dir), "--to", "ollama", "--out", str(tmp_path)]
    done = subprocess.run([*command, "--name", "$(reboot)"], capture_output=True, text=True)
    assert done.returncode == 2 and "error: --name '$(reboot)'" in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []


def test_export_twice_into_the_same_folder(tiny_model_dir: Path, tmp_path: Path) -> None:
    for _ in range(2):  # existing outputs are rewritten, not appended to or refused
        code, text = secreason(
            "export", str(tiny_model_dir), "--to", "vllm,ollama", "--out", str(tmp_path / "o")
        )
        assert code == 0, text
    assert (tmp_path / "o" / "ollama" / "Modelfile").read_text().count("FROM ") == 1
