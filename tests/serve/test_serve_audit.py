"""The audit log: whole lines only, rotation, torn-tail recovery, concurrent writers."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from secreason.serve.audit import AuditLog, read_audit, redact


def test_records_round_trip(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", fsync=False)
    log.write({"request_id": "a", "answer": "line\nbreak ✓"})
    log.write({"request_id": "b"})
    log.close()
    assert [r["request_id"] for r in read_audit(tmp_path / "audit.jsonl")] == ["a", "b"]
    assert next(read_audit(tmp_path / "audit.jsonl"))["answer"] == "line\nbreak ✓"


def test_rotation_by_size(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, max_bytes=200, backups=2, fsync=False)
    for i in range(20):
        log.write({"i": i, "pad": "x" * 60})
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    kept = [r["i"] for name in reversed(files) for r in read_audit(tmp_path / name)]
    assert kept == list(range(20 - len(kept), 20)), "rotation lost or reordered recent records"
    assert all((tmp_path / name).stat().st_size <= 200 for name in files)


def test_torn_tail_is_moved_aside_on_open(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"i": 1}\n{"i": 2}\n{"i": 3, "ans')
    log = AuditLog(path, fsync=False)
    log.write({"i": 4})
    log.close()
    assert [r["i"] for r in read_audit(path)] == [1, 2, 4]
    assert (tmp_path / "audit.jsonl.torn").read_bytes() == b'{"i": 3, "ans\n'


def test_torn_only_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"half')
    AuditLog(path, fsync=False).close()
    assert path.read_bytes() == b""


def test_reader_refuses_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"i": 1}\n{"i"')
    with pytest.raises(ValueError, match=r"audit.jsonl:2: torn"):
        list(read_audit(path))


@pytest.mark.parametrize("fsync", [False, True], ids=["no-fsync", "group-commit"])
def test_concurrent_writers_never_interleave(tmp_path: Path, fsync: bool) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, max_bytes=50_000, backups=50, fsync=fsync)

    def write(worker: int) -> None:
        for i in range(100):
            log.write({"worker": worker, "i": i, "pad": "y" * (i * 7)})

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if fsync:
        assert log._synced == log._written == 400, "a record was never flushed to disk"
    log.close()
    records = [r for p in tmp_path.glob("audit.jsonl*") for r in read_audit(p)]
    assert sorted((r["worker"], r["i"]) for r in records) == [
        (w, i) for w in range(4) for i in range(100)
    ]


def test_redact_keeps_a_matchable_digest() -> None:
    assert redact("secret prompt") == redact("secret prompt")
    assert "secret" not in redact("secret prompt")
    assert redact("a") != redact("b")
    assert json.loads(json.dumps(redact("x")))


def test_audit_record_redacts_user_turns_only() -> None:
    from secreason.backends.base import SamplingParams
    from secreason.serve.outcome import Outcome, audit_record
    from secreason.serve.protocol import ChatRequest

    chat = ChatRequest(
        "m",
        [{"role": "system", "content": "rules"}, {"role": "user", "content": "my secret host"}],
        SamplingParams(),
    )
    outcome = Outcome(reasoning="r", answer="a", status="closed")
    kwargs = {"request_id": "x", "model": "m", "system_prompt_version": "v", "latency_ms": 1.0}
    plain = audit_record(outcome, chat, redact_user=False, **kwargs)  # type: ignore[arg-type]
    hidden = audit_record(outcome, chat, redact_user=True, **kwargs)  # type: ignore[arg-type]
    assert plain["messages"][1]["content"] == "my secret host"
    assert "secret" not in json.dumps(hidden)
    assert hidden["messages"][0]["content"] == "rules"
    assert hidden["messages"][1]["content"] == redact("my secret host")
    assert (hidden["reasoning"], hidden["answer"]) == ("r", "a")
