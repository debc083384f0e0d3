"""Build-once JSON indexes for the knowledge bases, plus the lookup error they share.

Parsing the CWE XML catalog or the ATT&CK STIX bundles takes about a second; reading a
compact index takes tens of milliseconds. Each knowledge base therefore builds its index
once per package version and stores it under ``$SECREASON_CACHE/kb`` (default
``~/.cache/secreason/kb``). JSON rather than pickle: a security toolkit should not
execute code found in a cache directory, and the files stay inspectable.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

#: Bump when the layout of any index changes; old files are then simply ignored.
INDEX_SCHEMA = 2


class UnknownEntryError(KeyError):
    """An id or name that a knowledge base does not hold; the message says what to try."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


def cache_dir() -> Path:
    """Where indexes live: ``$SECREASON_CACHE/kb`` or ``~/.cache/secreason/kb``."""
    root = os.environ.get("SECREASON_CACHE")
    if root:
        return Path(root).expanduser() / "kb"
    return Path.home() / ".cache" / "secreason" / "kb"


def package_version(distribution: str) -> str:
    """The installed version of a data package (part of every index key)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def index_path(name: str, key: str, directory: Path | None = None) -> Path:
    """The file an index named ``name`` with version ``key`` is stored in."""
    slug = re.sub(r"[^A-Za-z0-9.+-]+", "_", key)
    return (directory or cache_dir()) / f"{name}-{slug}-schema{INDEX_SCHEMA}.json"


def cached_index(
    name: str, key: str, build: Callable[[], dict[str, Any]], directory: Path | None = None
) -> dict[str, Any]:
    """Read the index for (name, key), building and storing it first when absent.

    A corrupt or unreadable index is rebuilt. When the cache directory cannot be
    written (read-only home), the freshly built index is used without being stored.
    """
    path = index_path(name, key, directory)
    if path.is_file():
        try:
            with path.open(encoding="utf-8") as handle:
                loaded: dict[str, Any] = json.load(handle)
            if loaded.get("_key") == key:
                return loaded
        except (OSError, ValueError):
            pass
    data = build()
    data["_key"] = key
    with contextlib.suppress(OSError):
        _write_atomically(path, data)
    return data


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    """Write to a temporary file then rename, so concurrent readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, ensure_ascii=False, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
