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
_BLOCK = 1 << 20  # the torn-tail scan reads backwards this much at a time

# One pair of locks per file: two AuditLog objects on one path in one process (a
# reload, a second deployment) serialise their writes, rotations and recovery.
_LOCKS: dict[str, tuple[threading.Lock, threading.Lock]] = {}
_LOCKS_GUARD = threading.Lock()


def _locks_for(path: Path) -> tuple[threading.Lock, threading.Lock]:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(os.path.realpath(path), (threading.Lock(), threading.Lock()))


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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # _lock guards the descriptor, rotation and counters; _sync_lock: one fsync at a
        # time. Shared by every AuditLog of this file in the process.
        self._sync_lock, self._lock = _locks_for(self.path)
        self._written = 0  # lines written so far
        self._synced = 0  # lines known to be on disk
        # inode -> monotonic time this process rotated it out: a wall clock that jumps
        # forward must not age out files this process has just rotated
        self._rotated_at: dict[int, float] = {}
        with self._sync_lock, self._lock:  # another writer of this file may be mid-line
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
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return
            keep, end = 0, size  # after the last newline, however far back it is
            while end > 0:
                start = max(0, end - _BLOCK)
                handle.seek(start)
                cut = handle.read(end - start).rfind(b"\n")
                if cut >= 0:
                    keep = start + cut + 1
                    break
                end = start
            handle.seek(keep)
            fragment = handle.read() + b"\n"
            torn = os.open(
                self.path.with_name(self.path.name + ".torn"),
                os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                MODE,
            )
            try:
                os.fchmod(torn, MODE)
                if os.write(torn, fragment) != len(fragment):  # a full disk: keep it in place
                    raise OSError(f"audit log {self.path}: could not move its torn tail aside")
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
        self._rotated_at[os.fstat(self._fd).st_ino] = time.monotonic()
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
        keep_s = 86400 * (self.retain_days or 0.0)
        cutoff = time.time() - keep_s
        # Counted by rank, not by number: a crash mid-rotation can leave a gap (.1, .3).
        for rank, (_, older) in enumerate(self.rotated(), 1):
            beyond_count = self.backups is None or rank > self.backups
            stat = older.stat()
            rotated_at = self._rotated_at.get(stat.st_ino)
            aged = self.retain_days is None or (
                stat.st_mtime < cutoff  # a file from the future (clock set back) is young
                and (rotated_at is None or time.monotonic() - rotated_at >= keep_s)
            )
            if beyond_count and aged:
                older.unlink(missing_ok=True)
                self._rotated_at.pop(stat.st_ino, None)

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

    def write(self, record: dict[str, Any], sync: bool = True) -> None:
        """Append one record; with ``fsync`` (and ``sync``), return once it is on disk
        (``sync=False``: a batch writer calls :meth:`sync` once for many records).

        Durability uses group commit: writers that arrive while another thread is in
        ``fsync`` find their line already covered (or wait for the next ``fsync``), so
        concurrent requests share one disk flush instead of queueing for one each.
        """
        try:
            line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode()
        except UnicodeEncodeError:  # a lone surrogate: JSON escapes keep it, readable
            line = (json.dumps(record, ensure_ascii=True, default=str) + "\n").encode()
        while True:  # the size check and the write under one lock: max_bytes holds
            with self._lock:
                self._follow_rotation()
                size = os.fstat(self._fd).st_size
                if not (size and size + len(line) > self.max_bytes):
                    self._append(line, size)
                    self._written += 1
                    mine = self._written
                    break
            with self._sync_lock, self._lock:  # lock order everywhere: sync, then descriptor
                self._follow_rotation()
                if self._would_overflow(len(line)):
                    self._sync_now()  # the rotated file must be complete on disk too
                    self._rotate()
        if sync:
            self.sync(mine)

    def sync(self, upto: int | None = None) -> None:
        """With ``fsync`` on, return once line ``upto`` (default: every line written so
        far) is on disk; a writer that finds its line covered by another's flush skips."""
        if not self.fsync:
            return
        with self._sync_lock:
            if self._synced < (self._written if upto is None else upto):
                with self._lock:
                    covered, fd = self._written, self._fd
                os.fsync(fd)
                self._synced = max(self._synced, covered)

    def _append(self, line: bytes, size: int) -> None:
        """One ``os.write`` of a whole line; on a full disk (a short write, or an error
        after part of it) the part is cut off again: never half a line in the log."""
        try:
            written = os.write(self._fd, line)
        except OSError:
            self._cut_back(size)
            raise
        if written != len(line):
            self._cut_back(size)
            raise OSError(f"audit log {self.path}: short write ({written}/{len(line)} bytes)")

    def _cut_back(self, size: int) -> None:
        try:
            os.ftruncate(self._fd, size)
        except OSError:
            log.exception("audit log %s: could not cut a partial line back", self.path)

    def _follow_rotation(self) -> None:
        """Another AuditLog of this file rotated it: write to the new live file."""
        try:
            current = os.stat(self.path).st_ino
        except FileNotFoundError:
            current = None
        if current != os.fstat(self._fd).st_ino:
            os.close(self._fd)
            self._fd = self._open()

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
