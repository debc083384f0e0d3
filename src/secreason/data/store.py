"""Append-only JSONL keyed by content hash: the resume mechanism of every data step.

A step writes one line per finished unit of work (an item synthesized, a teacher
verdict, a dedup decision) and flushes it at once. On restart it opens the same file,
reads the keys already there and skips them. A kill can leave at most one partial last
line; opening the store cuts it off (that unit is simply redone), so a rerun never
duplicates and never loses finished work.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from secreason.tasks.base import Sample


def sample_to_dict(sample: Sample) -> dict[str, Any]:
    return asdict(sample)


def sample_from_dict(row: dict[str, Any]) -> Sample:
    return Sample(
        id=str(row["id"]),
        task=str(row["task"]),
        messages=[dict(m) for m in row["messages"]],
        reference=str(row["reference"]),
        meta=dict(row.get("meta") or {}),
    )


def _repair_tail(path: Path) -> int:
    """Cut a partial last line (left by a kill mid-write); return bytes removed."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with path.open("rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        # Walk back to the last newline.
        pos = size - 1
        chunk = 4096
        while pos > 0:
            start = max(0, pos - chunk)
            f.seek(start)
            data = f.read(pos - start)
            nl = data.rfind(b"\n")
            if nl >= 0:
                cut = start + nl + 1
                f.truncate(cut)
                return size - cut
            pos = start
        f.truncate(0)
        return size


class JsonlStore:
    """An append-only JSONL file of records, each with a unique ``key``."""

    def __init__(self, path: str | Path, key_field: str = "key", *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.key_field = key_field
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)
        self.repaired_bytes = _repair_tail(self.path)
        self._keys: set[str] = set()
        for lineno, row in self._rows():
            key = row.get(key_field)
            if key is None:
                raise ValueError(f"{self.path}:{lineno}: record has no {key_field!r} field")
            self._keys.add(str(key))
        self._fh = self.path.open("a", encoding="utf-8")

    def _rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        with self.path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield lineno, json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(
                        f"{self.path}:{lineno}: not valid JSON ({err.msg}); delete that line "
                        "or the file to redo its work"
                    ) from None

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def keys(self) -> set[str]:
        return set(self._keys)

    def append(self, record: dict[str, Any]) -> bool:
        """Write ``record`` unless its key is already stored; True when written."""
        key = str(record[self.key_field])
        if key in self._keys:
            return False
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())
        self._keys.add(key)
        return True

    def extend(self, records: Iterable[dict[str, Any]]) -> int:
        return sum(self.append(r) for r in records)

    def records(self) -> Iterator[dict[str, Any]]:
        self._fh.flush()
        for _, row in self._rows():
            yield row

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> JsonlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_samples(path: str | Path, samples: Iterable[Sample]) -> int:
    """Append samples (keyed by id) to a JSONL store; return how many were new."""
    with JsonlStore(path, key_field="id") as store:
        return store.extend(sample_to_dict(s) for s in samples)


def read_samples(path: str | Path) -> list[Sample]:
    with JsonlStore(path, key_field="id") as store:
        return [sample_from_dict(r) for r in store.records()]
