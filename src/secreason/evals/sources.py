"""Where a benchmark's rows come from: a hub dataset id, a file, or a folder.

Offline users point ``--data`` at the files as their authors published them (a folder
holding ``cti-rcm.tsv`` etc.); users with the hub pass a dataset id. Both paths end in
the same thing, a list of plain row dicts in file order, so a row's 0-based position
is a stable id that predictions files can refer to.

A source that is wrong says so here, naming the file: another benchmark's file (its
type differs from the published one), a line that is not UTF-8 (the line number), a
folder that holds the benchmark neither directly nor in one of its subfolders (so one
root such as ``../shared/benchmarks`` serves every benchmark).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

Row = dict[str, Any]
T = TypeVar("T")

csv.field_size_limit(1 << 30)  # CTIBench ATE prompts hold the whole ATT&CK id list


def _suffix(name: str | Path) -> str:
    suffixes = [x.lower() for x in Path(name).suffixes[-2:]]
    return "".join(suffixes) if suffixes[-1:] == [".gz"] else "".join(suffixes[-1:])


def local_file(source: str | Path, names: str | Sequence[str]) -> Path | None:
    """The local file meant by ``source``, or None when ``source`` is not local.

    A file is taken as is, if its type (extension) is the published one's. A folder
    must hold one of ``names`` (the published file names, first match wins), directly or
    in exactly one of its subfolders (a root of every benchmark's folder). A folder that
    holds none of them is an error that says which names were expected, rather than a
    silent fall-through to the hub.
    """
    wanted = [names] if isinstance(names, str) else list(names)
    path = Path(source).expanduser()
    if path.is_file():
        kinds = {_suffix(name) for name in wanted}
        if _suffix(path) not in kinds:
            raise ValueError(
                f"{path}: a {_suffix(path) or 'extension-less'} file, but this benchmark "
                f"reads {' or '.join(wanted)}; is --data pointing at another benchmark's file?"
            )
        return path
    if path.is_dir():
        for name in wanted:
            if (path / name).is_file():
                return path / name
        for name in wanted:
            found = sorted(p for p in path.glob(f"*/{name}") if p.is_file())
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise ValueError(
                    f"{path}: {name} is in several subfolders ({', '.join(map(str, found))}); "
                    "point --data at one of them"
                )
        raise FileNotFoundError(
            f"{path}: none of {', '.join(wanted)} in this folder or its subfolders; point "
            "--data at the file itself or at a folder holding it under its published name"
        )
    if path.suffix or str(source).startswith((".", "/", "~")):
        expected = " or ".join(wanted)
        raise FileNotFoundError(
            f"{path}: no such file or folder; pass --data PATH, the file itself or a "
            f"folder holding {expected}"
        )
    return None


def utf8_problem(path: str | Path) -> str:
    """``FILE:LINE: not UTF-8 ...`` for the first line of ``path`` that fails to decode."""
    with open(path, "rb") as handle:
        if handle.read(2) in (b"\xff\xfe", b"\xfe\xff"):
            return (
                f"{path}: UTF-16 text; save it as UTF-8, e.g. "
                f"iconv -f utf-16 -t utf-8 {path} > fixed"
            )
        handle.seek(0)
        for number, raw in enumerate(handle, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as error:
                byte = raw[error.start : error.start + 1].hex()
                return (
                    f"{path}:{number}: not UTF-8 text (byte 0x{byte} at column "
                    f"{error.start + 1}); save the file as UTF-8, e.g. "
                    f"iconv -f latin1 -t utf-8 {path} > fixed"
                )
    return f"{path}: not UTF-8 text; save the file as UTF-8"


def read_table(path: Path, delimiter: str | None = None, columns: Sequence[str] = ()) -> list[Row]:
    """A CSV/TSV file with a header row, every cell kept as the exact string.

    A UTF-8 byte-order mark is dropped (else it sticks to the first column's name);
    ``columns`` the header must hold, named in the error with what it has instead.
    """
    sep = delimiter or ("\t" if path.suffix.lower() == ".tsv" else ",")
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle, delimiter=sep)
            if reader.fieldnames is None:
                raise ValueError(f"{path}: empty file (no header row)")
            header = [str(name) for name in reader.fieldnames]
            missing = [c for c in columns if c not in header]
            if missing:
                raise ValueError(
                    f"{path}:1: no column {', '.join(map(repr, missing))} in the header "
                    f"(it has {', '.join(map(repr, header))}); is this the published file?"
                )
            return [dict(row) for row in reader]
    except UnicodeDecodeError:
        raise ValueError(utf8_problem(path)) from None


def read_json(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8-sig") as handle:
            return json.load(handle)
    except UnicodeDecodeError:
        raise ValueError(utf8_problem(path)) from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None


def read_jsonl(path: Path, keys: Sequence[str] = ()) -> list[Row]:
    """The JSON objects of a JSON-lines file; FILE:LINE for a line that is not one, or
    that lacks one of ``keys``. Blank lines are skipped, a byte-order mark dropped."""
    rows: list[Row] = []
    try:
        with path.open(encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{number}: not valid JSON ({error.msg})") from None
                if not isinstance(row, dict):
                    raise ValueError(
                        f"{path}:{number}: a row must be a JSON object, got {type(row).__name__}"
                    )
                missing = [k for k in keys if k not in row]
                if missing:
                    raise ValueError(
                        f"{path}:{number}: no key {', '.join(map(repr, missing))} "
                        f"(the row has {', '.join(map(repr, row)) or 'none'})"
                    )
                rows.append(row)
    except UnicodeDecodeError:
        raise ValueError(utf8_problem(path)) from None
    if not rows:
        raise ValueError(f"{path}: empty file (no JSON line)")
    return rows


def required(row: Row, key: str, where: str) -> Any:
    """``row[key]``, or a ValueError naming the place and the columns the row has."""
    if key not in row or row[key] is None:
        has = ", ".join(map(repr, row)) or "none"
        raise ValueError(f"{where}: no {key!r} (the row has {has})")
    return row[key]


def read_any(path: Path) -> list[Row]:
    """Rows of a local file by its extension (tsv, csv, json list, jsonl)."""
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".csv"):
        return read_table(path)
    if suffix == ".jsonl":
        return read_jsonl(path)
    if suffix == ".json":
        data = read_json(path)
        if isinstance(data, list):
            return data
        raise ValueError(f"{path}: expected a JSON list of rows")
    raise ValueError(f"{path}: unsupported file type {suffix!r} (tsv, csv, json, jsonl)")


def hub_rows(dataset_id: str, config: str | None = None, split: str | None = None) -> list[Row]:
    """Rows of a Hugging Face dataset (network or the local HF cache)."""
    from datasets import load_dataset  # lazy: heavy, and never used in tests

    data = load_dataset(dataset_id, config) if config else load_dataset(dataset_id)
    if split is None:
        split = "test" if "test" in data else next(iter(data))
    return [dict(row) for row in data[split]]


def limited(rows: list[T], limit: int | None) -> list[T]:
    return rows if limit is None else rows[: max(0, limit)]
