"""The audit writer thread: batches share one flush, served requests go first, and a
stalled disk under a flood of refusals costs a summary record, not the server's memory."""

from __future__ import annotations

import threading
from pathlib import Path

from secreason.serve.audit import read_audit
from secreason.serve.audit_queue import BATCH, AuditQueue


def test_served_records_overtake_a_backlog_of_refusals_and_batches_share_a_flush() -> None:
    order: list[str] = []
    syncs: list[int] = []
    durable: list[str] = []
    gate = threading.Event()
    queue = AuditQueue(lambda: syncs.append(len(order)))

    def job(name: str) -> tuple[object, object]:
        def write() -> None:
            if name == "first":
                assert gate.wait(30)  # the writer is busy while the backlog builds
            order.append(name)

        return write, lambda: durable.append(name)

    queue.submit(*job("first"), served=False)  # type: ignore[arg-type]
    while queue.pending():  # the writer took it and is blocked in it
        pass
    for i in range(BATCH + 100):
        queue.submit(*job(f"refused-{i}"), served=False)  # type: ignore[arg-type]
    queue.submit(*job("served"), served=True)  # type: ignore[arg-type]
    gate.set()
    queue.close()
    assert order[:2] == ["first", "served"], order[:3]
    assert len(order) == BATCH + 102 and sorted(durable) == sorted(order)
    # one flush per batch: the blocked one, then two for the 613 queued behind it
    assert syncs == [1, 1 + BATCH, BATCH + 102]


def test_a_failing_write_or_flush_does_not_stop_the_writer() -> None:
    done: list[int] = []
    calls = iter([RuntimeError("disk"), None])

    def sync() -> None:
        error = next(calls, None)
        if error:
            raise error

    queue = AuditQueue(sync)

    def broken() -> None:
        raise OSError("full")

    queue.submit(broken, lambda: done.append(1), served=True)
    queue.close()
    assert done == [1]  # the waiter is released; the failure is the write's to report


def test_refusals_past_the_backlog_are_counted_into_one_summary_record(tmp_path: Path) -> None:
    from secreason.serve.config import load_config
    from secreason.serve.outcome import Outcome
    from secreason.serve.trail import AuditTrail

    path = tmp_path / "audit.jsonl"
    config = load_config(
        overrides={"model.backend": "fixed-text", "audit.path": str(path), "audit.fsync": False}
    )
    trail = AuditTrail(config, "m", None)
    trail.refused_backlog = 5
    assert trail.log is not None and trail.queue is not None
    gate = threading.Event()
    write = trail.log.write

    def stalled(record: dict[str, object], sync: bool = True) -> None:
        assert gate.wait(30)  # the disk hangs under a flood of refusals
        write(record, sync)

    trail.log.write = stalled  # type: ignore[method-assign]

    def refuse(n: int, status: int = 429) -> None:
        state = {"request_id": f"r{n}", "started": 0.0, "key_id": f"k{n % 2}", "model_s": 0.0}
        trail.record_now(state, None, Outcome(http_status=status), None, served=False)

    refuse(0)
    while trail.queue.pending():  # the writer holds r0, stalled
        pass
    for n in range(1, 30):
        refuse(n, 401 if n % 3 == 0 else 429)
    assert trail.queue.refused_pending() == 5 and trail.overflow.total == 24
    gate.set()
    while trail.queue.pending():
        pass
    refuse(30)  # room again: the summary is written before this record
    trail.close()
    records = list(read_audit(path))
    assert [r["request_id"] for r in records] == [f"r{n}" for n in range(6)] + [None, "r30"]
    summary = records[6]["audit_overflow"]
    assert summary["records"] == 24 and summary["by_status"] == {"401": 8, "429": 16}
    assert summary["by_source"] == {"k0": 12, "k1": 12} and summary["other_sources"] == 0


def test_a_summary_taken_as_the_queue_closes_is_still_written(tmp_path: Path) -> None:
    """A refusal arriving once shutdown has closed the queue takes the pending overflow
    summary with it: both are written directly, neither is lost."""
    from secreason.serve.config import load_config
    from secreason.serve.outcome import Outcome
    from secreason.serve.trail import AuditTrail

    path = tmp_path / "audit.jsonl"
    config = load_config(
        overrides={"model.backend": "fixed-text", "audit.path": str(path), "audit.fsync": False}
    )
    trail = AuditTrail(config, "m", None)
    assert trail.queue is not None
    for _ in range(3):
        trail.overflow.add(429, "k0")  # counted while the backlog was full
    trail.queue.close()  # shutdown began
    state = {"request_id": "late", "started": 0.0, "key_id": "k0", "model_s": 0.0}
    trail.record_now(state, None, Outcome(http_status=401), None, served=False)
    trail.close()
    records = list(read_audit(path))
    assert [r["request_id"] for r in records] == [None, "late"], records
    assert records[0]["audit_overflow"]["records"] == 3
