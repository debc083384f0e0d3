"""A hostile review of the audit file: crashes, a full disk, racing writers, a wrong clock.

Each row attacks one promise of :class:`~secreason.serve.audit.AuditLog`: every record
whose write returned is in some file exactly once, files hold whole lines only, and
rotation deletes only what retention released. Crashes are real ``kill -9`` of a child
process writing under rotation; a full disk is a child whose ``RLIMIT_FSIZE`` is small
(the kernel refuses bytes past it, as a full disk would); the clock is patched.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from secreason.serve import audit as audit_module
from secreason.serve.audit import AuditLog, read_audit


def _files(path: Path) -> list[Path]:
    """The log's files, oldest first (highest rotation index first, the live file last)."""
    rotated = sorted(
        (p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()),
        key=lambda p: -int(p.suffix[1:]),
    )
    return [*rotated, *([path] if path.exists() else [])]


def _records(path: Path) -> list[dict[str, Any]]:
    return [r for p in _files(path) for r in read_audit(p)]  # read_audit raises on a torn line


# ---------------------------------------------------------------- kill -9 mid-write

WRITER = """
import random, sys
from secreason.serve.audit import AuditLog
path, start, seed, max_bytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
log = AuditLog(path, max_bytes=max_bytes, fsync=False)
sizes = [10, 1000, 200_000, 1_500_000, 2_500_000] if max_bytes > 1000 else [10, 60, 150]
i = start
while True:
    size = rng.choice(sizes)
    log.write({"i": i, "pad": "x" * size})
    sys.stdout.write(f"{i}\\n")
    sys.stdout.flush()
    i += 1
"""


@pytest.mark.parametrize(
    "max_bytes", [3 << 20, 300], ids=["megabyte-records", "a-rotation-every-write"]
)
def test_kill_9_during_writes_under_rotation_loses_no_acknowledged_record(
    tmp_path: Path, max_bytes: int
) -> None:
    path = tmp_path / "audit.jsonl"
    acknowledged: list[int] = []
    rng = random.Random(7)
    for round_ in range(4):
        start = acknowledged[-1] + 1 if acknowledged else 0
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(start + 10_000 * round_), str(round_)]
            + [str(max_bytes)],
            stdout=subprocess.PIPE,
        )
        assert child.stdout is not None
        for _ in range(rng.randint(3, 30)):  # let it write (and rotate) a while
            line = child.stdout.readline()
            assert line, "the writer died on its own"
            acknowledged.append(int(line))
        time.sleep(rng.uniform(0, 0.02))  # land anywhere, mid-write included
        child.send_signal(signal.SIGKILL)
        rest, _ = child.communicate()
        acknowledged.extend(int(x) for x in rest.split())
    AuditLog(path, fsync=False).close()  # the next start recovers a torn tail
    seen = [r["i"] for r in _records(path)]
    assert len(seen) == len(set(seen)), "a record is in the log twice"
    assert set(acknowledged) <= set(seen), sorted(set(acknowledged) - set(seen))
    assert seen == sorted(seen), "rotation reordered the records"


def test_a_torn_tail_longer_than_the_recovery_block_keeps_the_whole_lines(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    whole = b"".join(json.dumps({"i": i}).encode() + b"\n" for i in range(3))
    fragment = b'{"i": 3, "pad": "' + b"x" * (3 << 20)  # a 3 MB record cut by a crash
    path.write_bytes(whole + fragment)
    AuditLog(path, fsync=False).close()
    assert [r["i"] for r in read_audit(path)] == [0, 1, 2], "whole records left the log"
    assert (tmp_path / "audit.jsonl.torn").read_bytes() == fragment + b"\n"


def test_a_crash_mid_rotation_leaves_a_gap_that_does_not_shorten_retention(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, max_bytes=200, fsync=False)
    for i in range(8):  # three rotated files and the live one
        log.write({"i": i, "pad": "x" * 60})
    log.close()
    real_replace, calls = os.replace, []

    def crash_after_two(src: Any, dst: Any) -> None:
        calls.append(dst)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed mid-rotation")  # not caught anywhere
        real_replace(src, dst)

    log = AuditLog(path, max_bytes=200, fsync=False)
    monkeypatch.setattr(audit_module.os, "replace", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        log.write({"i": 8, "pad": "x" * 60})
    monkeypatch.setattr(audit_module.os, "replace", real_replace)
    gaps = {i for i, _ in log.rotated()}
    assert gaps == {1, 3, 4}, gaps  # .2 moved to .3 and .3 to .4, then the crash
    log = AuditLog(path, max_bytes=200, backups=3, fsync=False)
    log.write({"i": 9, "pad": "x" * 60})
    log.write({"i": 10, "pad": "x" * 60})
    log.close()
    # backups=3: the three newest rotated files stay, whatever their numbers
    kept = [r["i"] for r in _records(path)]
    assert kept == sorted(kept) and kept[-1] == 10
    assert len([p for p in _files(path) if p != path]) == 3
    assert kept[0] <= 3, f"a file within the 3 newest was deleted (kept {kept})"


# ------------------------------------------------------------------ full disk

FULL_DISK = """
import resource, sys
from secreason.serve.audit import AuditLog, read_audit
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
for attempt in range(2):  # the second: a restart on the still-full disk
    log = AuditLog(sys.argv[1], max_bytes=1 << 30, fsync=True)
    for i in range(60):
        n = attempt * 100 + i
        try:
            log.write({"i": n, "pad": "y" * (300 + 97 * (i % 7))})
        except OSError as error:
            print("fail", n, type(error).__name__, flush=True)
        else:
            print("ok", n, flush=True)
    log.close()
"""


def test_a_full_disk_fails_records_loudly_and_leaves_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    limit = 16 << 10
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(path), str(limit)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]  # SIGXFSZ did not kill it
    ok = {int(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("ok")}
    failed = {int(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("fail")}
    assert ok and failed and not ok & failed
    seen = [r["i"] for r in read_audit(path)]  # whole lines only: no half record inside
    assert sorted(seen) == sorted(ok), "a failed write left part of a line, or a record is lost"
    assert path.stat().st_size <= limit


# --------------------------------------------------------- writers of one process


@pytest.mark.parametrize("instances", [1, 2], ids=["one-log", "two-logs-one-path"])
def test_concurrent_writers_under_rotation_lose_nothing(tmp_path: Path, instances: int) -> None:
    path = tmp_path / "audit.jsonl"
    logs = [AuditLog(path, max_bytes=16 << 10, fsync=instances == 1) for _ in range(instances)]

    def write(worker: int) -> None:
        rng = random.Random(worker)
        log = logs[worker % instances]
        for i in range(120):
            log.write({"w": worker, "i": i, "pad": "z" * rng.choice([5, 400, 3000, 9000])})

    threads = [threading.Thread(target=write, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for log in logs:
        log.close()
    records = _records(path)
    assert sorted((r["w"], r["i"]) for r in records) == [
        (w, i) for w in range(6) for i in range(120)
    ]
    for worker in range(6):  # each writer's records stay in its order across files
        mine = [r["i"] for r in records if r["w"] == worker]
        assert mine == sorted(mine), worker
    too_big = [p.name for p in _files(path) if p.stat().st_size > (16 << 10) + 9100]
    assert not too_big, too_big


# ---------------------------------------------------------------------- the clock


def _rotated_three(path: Path) -> None:
    log = AuditLog(path, max_bytes=200, fsync=False)
    for i in range(8):
        log.write({"i": i, "pad": "x" * 60})
    log.close()


def test_a_clock_that_went_backwards_keeps_files_from_the_future(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.jsonl"
    _rotated_three(path)
    now = time.time()
    monkeypatch.setattr(audit_module.time, "time", lambda: now - 30 * 86400)
    log = AuditLog(path, max_bytes=200, retain_days=1, fsync=False)
    log.write({"i": 8, "pad": "x" * 60})  # a rotation applies the age rule
    log.close()
    assert len(_records(path)) == 9, "files written 'in the future' were aged out"


def test_a_clock_jumping_forward_does_not_age_out_what_this_process_just_rotated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, max_bytes=200, retain_days=1, fsync=False)
    for i in range(6):
        log.write({"i": i, "pad": "x" * 60})
    now = time.time()
    monkeypatch.setattr(audit_module.time, "time", lambda: now + 100 * 86400)  # bad NTP step
    for i in range(6, 10):
        log.write({"i": i, "pad": "x" * 60})
    log.close()
    assert [r["i"] for r in _records(path)] == list(range(10))


def test_files_old_by_the_wall_clock_from_an_earlier_run_are_still_released(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    _rotated_three(path)
    week_ago = time.time() - 7 * 86400
    for older in _files(path)[:-1]:
        os.utime(older, (week_ago, week_ago))
    log = AuditLog(path, max_bytes=200, retain_days=1, fsync=False)
    log.write({"i": 8, "pad": "x" * 60})
    log.close()
    assert [r["i"] for r in _records(path)] == [6, 7, 8]  # the new .1 and the live file


def test_a_live_file_moved_away_is_reopened_not_written_where_it_went(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, fsync=False)
    log.write({"i": 0})
    path.rename(tmp_path / "archived.jsonl")  # logrotate, or an operator
    log.write({"i": 1})
    log.close()
    assert [r["i"] for r in read_audit(tmp_path / "archived.jsonl")] == [0]
    assert [r["i"] for r in read_audit(path)] == [1]
