"""The audit writer thread: batches share one flush, served requests go first."""

from __future__ import annotations

import threading

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
