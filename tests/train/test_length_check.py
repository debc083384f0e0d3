"""Length checks before training: every cut row is counted, named and refused.

Real tokenizer and chat template (the tiny model's); the limits are placed relative to
each row's measured length, so each case cuts exactly where it says.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from secreason.train.length_check import (
    LengthReport,
    TruncationError,
    enforce,
    rl_lengths,
    sft_lengths,
)

REPO = Path(__file__).resolve().parents[2]


def _row(reasoning_words: int, answer: str = "B") -> dict[str, Any]:
    thought = " ".join(["token"] * reasoning_words)
    reply = f"<think>\n{thought}\n</think>\nAnswer: {answer}"
    return {
        "messages": [{"role": "user", "content": "Which?"}, {"role": "assistant", "content": reply}]
    }


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {key: [r[key] for r in rows] for key in rows[0]}


def _length(tok: Any, row: dict[str, Any], upto: str | None = None) -> int:
    text = tok.apply_chat_template(row["messages"], tokenize=False)
    if upto is not None:
        text = text[: text.rfind(upto) + len(upto)]
    return len(tok(text, add_special_tokens=False)["input_ids"])


@pytest.fixture(scope="module")
def tok(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


# (case, reasoning words, answer, where the limit sits, keep, over, answer, close, start)
CASES = [
    ("fits", 5, "B", "total", "keep_start", 0, 0, 0, 0),
    ("end-of-turn only", 5, "B", "answer_end", "keep_start", 1, 0, 0, 0),
    ("answer line cut", 5, "B", "close", "keep_start", 1, 1, 0, 0),
    ("long answer cut midway", 5, "B " * 60, "close+5", "keep_start", 1, 1, 0, 0),
    ("reasoning cut too", 200, "B", "half", "keep_start", 1, 1, 1, 0),
    ("keep_end cuts the prompt", 200, "B", "half", "keep_end", 1, 0, 0, 1),
]


@pytest.mark.parametrize(
    ("case", "words", "answer", "where", "keep", "over", "lost_answer", "lost_close", "start"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_sft_rows_over_the_limit_say_what_they_lose(
    tok: Any,
    case: str,
    words: int,
    answer: str,
    where: str,
    keep: str,
    over: int,
    lost_answer: int,
    lost_close: int,
    start: int,
) -> None:
    row = _row(words, answer)
    total = _length(tok, row)
    limit = {
        "total": total,
        "answer_end": _length(tok, row, answer.strip()),
        "close": _length(tok, row, "</think>"),
        "close+5": _length(tok, row, "</think>") + 5,
        "half": total // 2,
    }[where]
    fits = _row(3)
    report = sft_lengths(_columns([fits, row]), tok, limit, keep=keep)
    assert report.rows == 2 and report.longest == total
    assert len(report.over) == over and report.over == ([1] if over else [])
    assert (report.lose_answer, report.lose_close, report.lose_start) == (
        lost_answer,
        lost_close,
        start,
    )


def test_refused_unless_allowed_and_the_message_counts_the_loss(tok: Any, capsys: Any) -> None:
    rows = [_row(3), _row(200), _row(300)]
    report = sft_lengths(_columns(rows), tok, 64)
    with pytest.raises(TruncationError) as err:
        enforce(report, "refuse")
    text = str(err.value)
    assert "2 of 3 rows are longer than max_length=64" in text
    assert "2 lose their answer line" in text and "rows 1, 2" in text
    assert "truncation: allow" in text and f"at least {report.longest}" in text
    enforce(report, "allow")
    assert "warning" in capsys.readouterr().err
    with pytest.raises(TruncationError, match="not one of refuse, allow"):
        enforce(report, "yes")


def test_bfd_split_packing_splits_rows_and_is_not_refused(tok: Any) -> None:
    report = sft_lengths(_columns([_row(200)]), tok, 64, packing_strategy="bfd_split")
    assert report.split_rows and report.over == [0]
    enforce(report, "refuse")  # nothing is cut away, only split


def test_rl_prompts_that_leave_no_room_for_the_completion(tok: Any) -> None:
    prompts = [[{"role": "user", "content": "short"}], [{"role": "user", "content": "w " * 300}]]
    report = rl_lengths({"prompt": prompts}, tok, context=256, max_completion_length=96)
    assert report.limit == 160 and report.over == [1] and report.lose_answer == 1
    assert "1 of 2 rows are longer than context 256 - max_completion_length=160" in (
        report.summary()
    )
    assert not rl_lengths({"prompt": prompts[:1]}, tok, 256, 96).over


def test_summary_of_a_clean_set() -> None:
    report = LengthReport("sft", "max_length", 384, 10, longest=147)
    assert report.summary() == "sft: all 10 rows fit max_length=384 (longest 147 tokens)"


@pytest.mark.slow
def test_sft_command_stops_before_training_and_names_the_loss(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(_row(n)) + "\n" for n in (3, 900)))
    cmd = [
        sys.executable,
        "-m",
        "secreason.train.sft",
        str(REPO / "recipes" / "tiny-cpu" / "sft.yaml"),
        f"model_name_or_path={tiny_model_dir}",
        f"dataset_path={data}",
        f"output_dir={tmp_path / 'out'}",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert "1 of 2 rows are longer than max_length" in run.stderr
    assert "1 lose their answer line" in run.stderr
    assert not list((tmp_path / "out").glob("checkpoint-*"))


def test_rl_check_reads_the_model_context_and_honours_allow(tiny_model_dir: Path, tok: Any) -> None:
    from types import SimpleNamespace

    from secreason.train.length_check import check_rl

    prompts = [[{"role": "user", "content": "w " * 40}]]
    recipe = SimpleNamespace(
        model_name_or_path=str(tiny_model_dir),
        use_vllm=False,
        vllm_max_model_length=None,
        max_completion_length=1000,  # the tiny model holds 1024 positions
        truncation="refuse",
        chat_template_path=None,
    )
    with pytest.raises(TruncationError, match="context 1024 - max_completion_length=24"):
        check_rl(recipe, {"prompt": prompts}, tok)
    recipe.truncation = "allow"
    report = check_rl(recipe, {"prompt": prompts}, tok)
    assert report is not None and report.over == [0]
    recipe.max_completion_length = 96
    assert check_rl(recipe, {"prompt": prompts}, tok).over == []  # type: ignore[union-attr]
