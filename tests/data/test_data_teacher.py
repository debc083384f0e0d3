"""The teacher client against a real, misbehaving HTTP server on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from secreason.data.demo import make_demo_items
from secreason.data.store import sample_to_dict
from secreason.data.teacher import (
    RequestResult,
    TeacherConfig,
    difficulty_of,
    judge_completions,
    run_teacher,
)
from secreason.data.template_teacher import template_trace
from secreason.reasoning import FormatConfig
from secreason.tasks.base import Sample

sys.path.insert(0, str(Path(__file__).parent))
from fault_server import FAULTS, FaultServer  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _items(n: int) -> list[Sample]:
    train, heldout = make_demo_items(n, seed=3, tasks=("mcq",))
    return (train + heldout)[:n]


def _prompt(s: Sample) -> str:
    return "".join(m["content"] for m in s.messages)


def _wrong(s: Sample) -> str:
    other = "A" if s.reference != "A" else "B"
    return template_trace(s).replace(f"Answer: {s.reference}", f"Answer: {other}")


def test_fault_injection_every_item_ends_kept_rejected_or_failed(tmp_path: Path) -> None:
    items = _items(30)
    answers: dict[str, str] = {}
    expected = {"kept": 0, "rejected": 0, "failed": 0}
    plan: list[Sample] = []
    for i, s in enumerate(items):
        if i % 6 == 0:
            answers[_prompt(s)] = _wrong(s)
            expected["rejected"] += 1
        elif i % 6 == 1:
            answers[_prompt(s)] = f"Answer: {s.reference}"  # right answer, no reasoning
            expected["rejected"] += 1
        elif i % 6 == 2:
            s = replace(s, messages=[{"role": "user", "content": _prompt(s) + " ALWAYS_500"}])
            s.id = s.id + "-f"
            expected["failed"] += 1
        else:
            answers[_prompt(s)] = template_trace(s)
            expected["kept"] += 1
        plan.append(s)
    with FaultServer(answers, stall_s=1.0) as server:
        cfg = TeacherConfig(
            base_url=server.base_url,
            model="fault",
            k=3,
            concurrency=6,
            timeout_s=0.3,
            max_retries=20,
            backoff_base_s=0.001,
            backoff_max_s=0.01,
        )
        report = run_teacher(plan, tmp_path / "t.jsonl", config=cfg, show_progress=False)
        served = dict(server.served)
    assert set(FAULTS) <= set(served), served  # every fault was really injected
    assert report.adds_up()
    assert report.counts == expected
    rows = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(s.id for s in plan)
    by_id = {r["id"]: r for r in rows}
    for i, s in enumerate(plan):
        row = by_id[s.id]
        if i % 6 == 0:
            assert row["reasons"] == {"verifier:incorrect": 3}
        elif i % 6 == 1:
            assert row["outcome"] == "rejected"
            assert all(k.startswith("format:") for k in row["reasons"]), row
        elif i % 6 == 2:
            assert row["outcome"] == "failed"
            assert "HTTP 500" in next(iter(row["errors"]))
        else:
            assert row["outcome"] == "kept" and row["traces"] == [template_trace(s)]
            assert row["difficulty"] == "always"


def test_fatal_status_is_not_retried(tmp_path: Path) -> None:
    """A 404 (unknown route/model) fails at once instead of burning retries."""
    items = _items(2)
    with FaultServer({}) as server:
        cfg = TeacherConfig(
            base_url=server.base_url + "/nowhere",
            k=1,
            max_retries=5,
            backoff_base_s=0.5,
            timeout_s=2,
        )
        report = run_teacher(items, tmp_path / "t.jsonl", config=cfg, show_progress=False)
        assert dict(server.served) == {"404": 2}  # one request per item: no retries
    assert report.counts["failed"] == 2
    row = json.loads((tmp_path / "t.jsonl").read_text().splitlines()[0])
    assert "HTTP 404" in next(iter(row["errors"]))


@pytest.mark.parametrize(
    ("results", "outcome", "difficulty"),
    [
        ([RequestResult(None, error="x")] * 2, "failed", "unknown"),
        ([RequestResult("<think>\nshort\n</think>\nAnswer: B", "stop")], "rejected", "never"),
        ([RequestResult("TRACE", "length")], "rejected", "never"),
        ([RequestResult("TRACE", "stop"), RequestResult(None, error="e")], "kept", "always"),
        ([RequestResult("TRACE", "stop"), RequestResult("WRONG", "stop")], "kept", "mixed"),
    ],
    ids=["all-failed", "too-short-reasoning", "truncated", "one-failed-one-kept", "mixed"],
)
def test_judge_completions_table(results, outcome, difficulty) -> None:
    s = _items(1)[0]
    fixed = [
        replace(
            r,
            text=template_trace(s)
            if r.text == "TRACE"
            else _wrong(s)
            if r.text == "WRONG"
            else r.text,
        )  # noqa: E501
        for r in results
    ]
    v = judge_completions(
        s, fixed, keep_per_item=2, format_config=FormatConfig(), prefilled=False, teacher="t"
    )
    assert (v.outcome, v.difficulty) == (outcome, difficulty)
    assert v.n_completed + sum(v.errors.values()) == v.n_requested


def test_difficulty_grades() -> None:
    assert [difficulty_of(p, c) for p, c in [(0, 0), (0, 4), (4, 4), (1, 4)]] == [
        "unknown",
        "never",
        "always",
        "mixed",
    ]


def test_resume_after_sigkill_no_duplicates_no_losses(tmp_path: Path) -> None:
    items = _items(30)
    items_path = tmp_path / "items.jsonl"
    items_path.write_text("".join(json.dumps(sample_to_dict(s)) + "\n" for s in items))
    out = tmp_path / "teacher.jsonl"
    answers = {_prompt(s): template_trace(s) for s in items}
    with FaultServer(answers, faults=("ok",), delay_s=0.08) as server:
        cmd = [
            sys.executable,
            "-c",
            "from secreason.cli import main; main()",
            "data",
            "teacher",
            str(items_path),
            "--out",
            str(out),
            "--split",
            "all",
            "--set",
            "teacher.kind=endpoint",
            "--set",
            f"teacher.base_url={server.base_url}",
            "--set",
            "teacher.k=2",
            "--set",
            "teacher.concurrency=2",
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if out.exists() and len(out.read_bytes().splitlines()) >= 5:
                break
            if proc.poll() is not None:
                pytest.fail(f"teacher exited early: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        before = out.read_bytes()
        done_before = len(before.splitlines())
        assert 5 <= done_before < len(items), "the kill must land mid-run"
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr[-2000:]
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == len(items)
    assert set(ids) == {s.id for s in items}
    assert all(r["outcome"] == "kept" for r in rows)
    complete_before = before[: before.rfind(b"\n") + 1]
    assert out.read_bytes().startswith(complete_before)  # finished work was kept as is
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    assert summary["kept"] == len(items) and summary["adds_up"]


def test_failed_items_are_asked_again_on_rerun(tmp_path: Path) -> None:
    items = _items(4)
    answers = {_prompt(s): template_trace(s) for s in items}
    with FaultServer(answers, faults=("500",)) as server:
        cfg = TeacherConfig(base_url=server.base_url, k=2, max_retries=1, backoff_base_s=0.001)
        first = run_teacher(items, tmp_path / "t.jsonl", config=cfg, show_progress=False)
        assert first.counts == {"kept": 0, "rejected": 0, "failed": 4}
        server.faults = ("ok",)  # the endpoint recovers
        second = run_teacher(items, tmp_path / "t.jsonl", config=cfg, show_progress=False)
        third = run_teacher(items, tmp_path / "t.jsonl", config=cfg, show_progress=False)
    assert second.counts == {"kept": 4, "rejected": 0, "failed": 0}
    assert second.skipped_existing == 0 and third.skipped_existing == 4
    rows = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and len({r["key"] for r in rows}) == 8  # appended, never rewritten


def test_rate_limiter_spaces_request_starts() -> None:
    import asyncio

    from secreason.data.teacher_client import _RateLimiter

    async def go() -> float:
        limiter = _RateLimiter(rps=1000.0)
        t0 = time.monotonic()
        for _ in range(10):
            await limiter.wait()
        return limiter._next - t0

    spent = asyncio.run(go())
    # Ten starts are booked at least 1/rps apart (a schedule, not a wall-clock timing).
    assert spent >= 10 * 0.001 - 1e-9
    assert asyncio.run(_noop_limiter()) == 0.0


async def _noop_limiter() -> float:
    from secreason.data.teacher_client import _RateLimiter

    limiter = _RateLimiter(None)
    await limiter.wait()
    return limiter.interval
