"""The append-only store: skips what exists, survives a partial last line."""

from __future__ import annotations

from pathlib import Path

import pytest

from secreason.data.store import JsonlStore, read_samples, write_samples
from secreason.tasks.base import Sample


def test_append_skips_existing_keys(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    with JsonlStore(path) as store:
        assert store.append({"key": "a", "v": 1})
        assert not store.append({"key": "a", "v": 2})
        assert store.extend([{"key": "b"}, {"key": "a"}]) == 1
    with JsonlStore(path) as store:
        assert store.keys() == {"a", "b"}
        assert [r["key"] for r in store.records()] == ["a", "b"]
        assert not store.append({"key": "b"})


@pytest.mark.parametrize(
    ("tail", "kept"),
    [(b'{"key": "c", "v"', ["a", "b"]), (b"", ["a", "b"]), (b'{"key": "c"}\n', ["a", "b", "c"])],
    ids=["partial-line-cut", "clean-end", "complete-line-kept"],
)
def test_partial_last_line_from_a_kill_is_cut(tmp_path: Path, tail: bytes, kept: list[str]) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"key": "a"}\n{"key": "b"}\n' + tail)
    with JsonlStore(path) as store:
        assert sorted(store.keys()) == kept
        store.append({"key": "d"})
    assert path.read_bytes().endswith(b'{"key": "d"}\n')
    assert len(path.read_bytes().splitlines()) == len(kept) + 1


def test_corrupt_middle_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"key": "a"}\nnot json\n{"key": "b"}\n')
    with pytest.raises(ValueError, match=r"s\.jsonl:2: not valid JSON"):
        JsonlStore(path)


def test_missing_key_field(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"id": "a"}\n')
    with pytest.raises(ValueError, match=r":1: record has no 'key'"):
        JsonlStore(path)


def test_samples_round_trip(tmp_path: Path) -> None:
    s = Sample("x1", "mcq", [{"role": "user", "content": "q"}], "B", {"options": {"A": "a"}})
    assert write_samples(tmp_path / "i.jsonl", [s, s]) == 1
    assert read_samples(tmp_path / "i.jsonl") == [s]
