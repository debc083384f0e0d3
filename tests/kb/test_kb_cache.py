"""The build-once index: written on first load, read (not rebuilt) afterwards, self-healing."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from secreason.kb import attack, cwe
from secreason.kb.cache import (
    INDEX_SCHEMA,
    UnknownEntryError,
    cache_dir,
    cached_index,
    index_path,
)


def _refuse_to_build() -> dict[str, Any]:
    raise AssertionError("the index was rebuilt instead of read")


@pytest.mark.parametrize(
    ("module", "name", "loader", "memo"),
    [
        (cwe, "cwe", cwe.load_cwe, cwe._load_cwe),
        (attack, "attack", attack.load_attack, attack._load_attack),
    ],
    ids=["cwe", "attack"],
)
def test_second_load_reads_the_index(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    module: Any,
    name: str,
    loader: Callable[..., Any],
    memo: Any,
) -> None:
    monkeypatch.setenv("SECREASON_CACHE", str(tmp_path))
    first = loader()
    path = index_path(name, module.index_key())
    assert path.parent == tmp_path / "kb" and path.is_file()
    assert loader() is first  # memoised in-process

    memo.cache_clear()
    monkeypatch.setattr(module, "build_index", _refuse_to_build)
    second = loader()
    assert second is not first and second == first
    memo.cache_clear()


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SECREASON_CACHE", str(tmp_path / "root"))
    assert cache_dir() == tmp_path / "root" / "kb"
    monkeypatch.delenv("SECREASON_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "secreason" / "kb"


def test_index_name_carries_key_and_schema(tmp_path: Path) -> None:
    path = index_path("cwe", "cwe4.14/cwe2 3.0.0", tmp_path)
    assert path.parent == tmp_path
    assert path.name == f"cwe-cwe4.14_cwe2_3.0.0-schema{INDEX_SCHEMA}.json"


def _counting_builder(calls: list[int]) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        calls.append(1)
        return {"value": len(calls)}

    return build


def test_corrupt_index_is_rebuilt(tmp_path: Path) -> None:
    calls: list[int] = []
    build = _counting_builder(calls)
    assert cached_index("demo", "v1", build, tmp_path)["value"] == 1
    assert cached_index("demo", "v1", build, tmp_path)["value"] == 1 and len(calls) == 1
    index_path("demo", "v1", tmp_path).write_text('{"value": 1, "_key": "v1"', encoding="utf-8")
    assert cached_index("demo", "v1", build, tmp_path)["value"] == 2
    stored = json.loads(index_path("demo", "v1", tmp_path).read_text(encoding="utf-8"))
    assert stored == {"value": 2, "_key": "v1"}


def test_index_with_another_key_inside_is_not_trusted(tmp_path: Path) -> None:
    calls: list[int] = []
    path = index_path("demo", "v1", tmp_path)
    path.write_text(json.dumps({"value": 99, "_key": "v0"}), encoding="utf-8")
    assert cached_index("demo", "v1", _counting_builder(calls), tmp_path)["value"] == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_cache_still_answers(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        calls: list[int] = []
        assert cached_index("demo", "v1", _counting_builder(calls), locked)["value"] == 1
        assert not any(locked.iterdir())
    finally:
        locked.chmod(0o700)


def test_unwritable_cache_path_still_answers(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory", encoding="utf-8")
    calls: list[int] = []
    assert cached_index("demo", "v1", _counting_builder(calls), blocker / "kb")["value"] == 1
    assert cached_index("demo", "v1", _counting_builder(calls), blocker / "kb")["value"] == 2


def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    cached_index("demo", "v1", _counting_builder([]), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [index_path("demo", "v1", tmp_path).name]
    assert index_path("demo", "v1", tmp_path).stat().st_mode & 0o044 == 0o044  # readable by all


def test_unknown_entry_error_is_a_readable_key_error() -> None:
    error = UnknownEntryError("CWE-1 is not in CWE 4.14")
    assert isinstance(error, KeyError)
    assert str(error) == "CWE-1 is not in CWE 4.14"  # no KeyError quotes
