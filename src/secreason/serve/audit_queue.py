"""One thread writes the records of requests refused at the door, in batches.

Every request leaves a record, refusals included (401, 413, 429, bytes that are not
HTTP), and a record must be on disk before the request counts as answered. Written one
per worker-thread task, a flood of cheap refusals (a client looping on a bad key, or on
``/metrics`` past its rate) would queue thousands of ``fsync`` calls in the worker
threads ahead of everyone else's records (measured on this project's 2-core box:
another key's completions stopped answering within a minute). Refusals go through this
queue instead: a single writer drains whatever is pending in one go (many ``os.write``,
ONE ``fsync``), so its throughput grows with the backlog, and the worker threads stay
free for served requests (whose number in flight is bounded by the limits). Records of
served requests that nothing can wait for (a stream torn down by its client) are
queued here too, ahead of the refusals.

If the disk stalls under such a flood, the refusals waiting for it are bounded
(:data:`REFUSED_BACKLOG`): past it, each is counted in an :class:`Overflow` summary
(how many, of which status, from which key or address, over which interval) that
goes into the log as one record, rather than the server running out of memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("secreason.serve")

Job = tuple[Callable[[], None], Callable[[], None]]  # (write one record, when it is durable)
BATCH = 512  # records per fsync at most (a batch of small records: a few ms of writes)
REFUSED_BACKLOG = 50_000  # refusal records waiting for the disk, at most (then counted)


class AuditQueue:
    """A writer thread: :meth:`submit` a write, be called back once it is on disk."""

    def __init__(self, sync: Callable[[], None]) -> None:
        self._sync = sync  # flushes everything written so far (the log's fsync)
        self._served: deque[Job] = deque()
        self._refused: deque[Job] = deque()
        self._ready = threading.Condition()
        self._closing = False
        self.batches = 0
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def submit(self, write: Callable[[], None], done: Callable[[], None], served: bool) -> None:
        """Queue a record's write; ``done`` runs on the writer thread once it is durable
        (or has failed: the write reports its own failures)."""
        with self._ready:
            if self._closing:
                raise RuntimeError("the audit trail is closed")
            (self._served if served else self._refused).append((write, done))
            self._ready.notify()

    def pending(self) -> int:
        return len(self._served) + len(self._refused)

    def refused_pending(self) -> int:
        return len(self._refused)

    def _take(self) -> list[Job] | None:
        with self._ready:
            while not self._served and not self._refused and not self._closing:
                self._ready.wait()
            batch: list[Job] = []
            for queue in (self._served, self._refused):
                while queue and len(batch) < BATCH:
                    batch.append(queue.popleft())
            return batch or None  # None: closing and nothing left

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            for write, _ in batch:
                try:
                    write()
                except Exception:  # the write reports its own failures; never stop here
                    log.exception("audit write raised")
            try:
                self._sync()
            except Exception:
                log.exception("audit fsync failed: %d records may not be on disk", len(batch))
            self.batches += 1
            for _, done in batch:
                try:
                    done()
                except Exception:  # a waiter that went away (a closed loop): not ours
                    log.debug("audit completion callback failed", exc_info=True)

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is pending, then stop the thread."""
        with self._ready:
            self._closing = True
            self._ready.notify()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.error("audit writer still busy after %.0f s at shutdown", timeout_s)


def wake(loop: Any, future: Any) -> Callable[[], None]:
    """A ``done`` callback resolving an asyncio future from the writer thread."""

    def resolve() -> None:
        if not future.done():
            future.set_result(None)

    def done() -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(resolve)

    return done


class Overflow:
    """Refusals counted instead of queued while the backlog is full; one summary record."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clear()
        self.total = 0  # every refusal ever counted here (/metrics)

    def _clear(self) -> None:
        self.count = 0
        self.first = self.last = ""
        self.by_status: Counter[int] = Counter()
        self.by_source: Counter[str] = Counter()

    def add(self, status: int, source: str) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self._lock:
            self.count += 1
            self.total += 1
            self.first = self.first or now
            self.last = now
            self.by_status[status] += 1
            self.by_source[source] += 1

    def take(self) -> dict[str, Any] | None:
        """The summary record of what was counted since the last one (None: nothing)."""
        with self._lock:
            if not self.count:
                return None
            summary = {
                "request_id": None,
                "time": self.last,
                "audit_overflow": {
                    "records": self.count,
                    "from": self.first,
                    "to": self.last,
                    "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
                    # the 50 busiest keys or addresses, and how many others
                    "by_source": dict(self.by_source.most_common(50)),
                    "other_sources": max(0, len(self.by_source) - 50),
                },
            }
            self._clear()
            return summary
