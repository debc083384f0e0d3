"""An append-only JSONL audit trail of what the deployment did for each request.

A reasoning model's selling point is that its reasoning can be inspected, so an
operator may need to show later what was asked, what the model thought, what it
answered and why the guard let it through. The log therefore has to survive the
process dying at any moment:

* each record is ONE ``os.write`` of a complete line on a descriptor opened with
  ``O_APPEND``, so concurrent writers never interleave and a record is either
  entirely in the file or not at all (the kernel keeps written data when the process
  is killed; ``fsync`` additionally keeps it across a power loss);
* on open, a trailing fragment without its newline (left by a machine crash in the
  middle of a large write) is moved to ``<path>.torn`` so the log itself only ever
  holds whole lines;
* the file rotates by size (``path`` -> ``path.1`` -> ``path.2`` ..., ``.1`` newest),
  and rotation deletes nothing a retention rule has not released: by default every
  file is kept (a client sending large requests cannot flush evidence out); with
  ``backups`` and/or ``retain_days`` a rotated file goes once it is beyond that many
  newer files AND older than that many days. Low disk space is warned about;
* every file (the log, its rotations, ``.torn``) is readable by the owner only (0600);
* a record that cannot be encoded as UTF-8 (a lone surrogate) is written with JSON
  escapes instead, never dropped.

User content can be redacted to a digest, which still lets two records be matched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("secreason.serve")
MODE = 0o600


def redact(text: str) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"[redacted sha256:{digest} chars:{len(text)}]"


class AuditLog:
    """Thread-safe appender; call :meth:`write` from a worker thread, not the event loop."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int = 100 << 20,
        backups: int | None = None,
        retain_days: float | None = None,
        fsync: bool = True,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups  # None: no count rule (with no age rule either: keep all)
        self.retain_days = retain_days
        self.fsync = fsync
        self._lock = threading.Lock()  # guards the descriptor, rotation and counters
        self._sync_lock = threading.Lock()  # one fsync at a time
        self._written = 0  # lines written so far
        self._synced = 0  # lines known to be on disk
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._recover_torn_tail()
        self._fd = self._open()
        self._check_disk()

    def _open(self) -> int:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, MODE)
        os.fchmod(fd, MODE)  # a file that existed with wider permissions is narrowed
        return fd

    def _recover_torn_tail(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            block = min(size, 1 << 20)
            handle.seek(size - block)
            tail = handle.read(block)
            if tail.endswith(b"\n"):
                return
            cut = tail.rfind(b"\n")
            keep = size - block + cut + 1 if cut >= 0 else 0
            handle.seek(keep)
            fragment = handle.read()
            torn = os.open(
                self.path.with_name(self.path.name + ".torn"),
                os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                MODE,
            )
            try:
                os.fchmod(torn, MODE)
                os.write(torn, fragment + b"\n")
            finally:
                os.close(torn)
            handle.truncate(keep)

    def rotated(self) -> list[tuple[int, Path]]:
        """The rotated files as (index, path), newest (``.1``) first."""
        pattern = re.compile(re.escape(self.path.name) + r"\.(\d+)")
        found = []
        for candidate in self.path.parent.iterdir():
            match = pattern.fullmatch(candidate.name)
            if match:
                found.append((int(match.group(1)), candidate))
        return sorted(found)

    def _rotate(self) -> None:
        os.close(self._fd)
        for index, older in reversed(self.rotated()):  # oldest first: targets are free
            os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._release()
        self._fd = self._open()
        self._check_disk()

    def _release(self) -> None:
        """Delete the rotated files every configured retention rule has released."""
        if self.backups is None and self.retain_days is None:
            return
        cutoff = time.time() - 86400 * (self.retain_days or 0.0)
        for index, older in self.rotated():
            beyond_count = self.backups is None or index > self.backups
            aged = self.retain_days is None or older.stat().st_mtime < cutoff
            if beyond_count and aged:
                older.unlink(missing_ok=True)

    def _check_disk(self) -> None:
        try:
            usage = shutil.disk_usage(self.path.parent)
        except OSError:
            return
        if usage.free < 10 * self.max_bytes or usage.free < usage.total // 20:
            log.warning(
                "audit log %s: %.1f GiB free on its disk; retention keeps %s, so the log "
                "will fill it (set audit.backups / audit.retain_days, or archive old files)",
                self.path,
                usage.free / (1 << 30),
                "everything"
                if self.backups is None and self.retain_days is None
                else "what its rules have not released",
            )

    def write(self, record: dict[str, Any]) -> None:
        """Append one record; with ``fsync``, return once it is on disk.

        Durability uses group commit: writers that arrive while another thread is in
        ``fsync`` find their line already covered (or wait for the next ``fsync``), so
        concurrent requests share one disk flush instead of queueing for one each.
        """
        try:
            line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode()
        except UnicodeEncodeError:  # a lone surrogate: JSON escapes keep it, readable
            line = (json.dumps(record, ensure_ascii=True, default=str) + "\n").encode()
        with self._lock:
            full = self._would_overflow(len(line))
        if full:  # lock order everywhere: sync lock, then descriptor lock
            with self._sync_lock, self._lock:
                if self._would_overflow(len(line)):
                    self._sync_now()  # the rotated file must be complete on disk too
                    self._rotate()
        with self._lock:
            written = os.write(self._fd, line)
            if written != len(line):  # a short write on a full disk: never leave half a line
                raise OSError(f"audit log {self.path}: short write ({written}/{len(line)} bytes)")
            self._written += 1
            mine = self._written
        if self.fsync:
            with self._sync_lock:
                if self._synced < mine:
                    with self._lock:
                        covered, fd = self._written, self._fd
                    os.fsync(fd)
                    self._synced = max(self._synced, covered)

    def _would_overflow(self, extra: int) -> bool:
        size = os.fstat(self._fd).st_size
        return bool(size) and size + extra > self.max_bytes

    def _sync_now(self) -> None:
        if self.fsync:
            os.fsync(self._fd)
            self._synced = self._written

    def close(self) -> None:
        with self._sync_lock, self._lock:
            os.close(self._fd)


def read_audit(path: str | Path) -> Iterator[dict[str, Any]]:
    """Records of one audit file, oldest first; a torn last line raises, never hides."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.endswith("\n"):
                raise ValueError(f"{path}:{number}: torn audit line (no newline)")
            yield json.loads(line)
