"""Which data a run was trained on, so a rerun on other data is not a silent resume.

The recipe names its data by path; rewriting the file at that path (a new ``secreason
data run`` into the same folder) leaves the recipe unchanged, so a rerun would resume the
old checkpoints on the new rows, or report the stage finished. A stage stores a digest
of each data file or ``save_to_disk`` folder beside its recipe; a rerun whose data
differs is refused like any other recipe change, the field named ``dataset_path
(contents)``. The same holds for a starting model another stage exported (SFT retrained
under RL's feet), known by its done marker. Hub ids and paths that are not local are
not digested.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

DATA_FILE = "secreason_data.json"
FIELDS = ("dataset_path", "eval_dataset_path")
SUFFIX = " (contents)"
_CACHE: dict[tuple[str, int, int], str] = {}


def _file_digest(path: Path, hasher: Any) -> None:
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            hasher.update(block)


def digest(path: str) -> str | None:
    """``sha256:<16 hex>`` of a file, or of a folder's files (names and bytes); None for
    what is not a local file or folder."""
    p = Path(path).expanduser()
    if not path or not p.exists():
        return None
    stat = p.stat()
    key = (str(p.resolve()), stat.st_size, stat.st_mtime_ns)
    if p.is_file() and key in _CACHE:
        return _CACHE[key]
    hasher = hashlib.sha256()
    if p.is_file():
        _file_digest(p, hasher)
    else:
        # ``datasets`` writes its map caches (cache-*.arrow) beside a saved dataset's
        # files: they follow from the data, they are not data.
        saved = (c for c in p.rglob("*") if c.is_file() and not c.name.startswith("cache-"))
        for child in sorted(saved):
            hasher.update(str(child.relative_to(p)).encode() + b"\0")
            _file_digest(child, hasher)
    value = f"sha256:{hasher.hexdigest()[:16]}"
    if p.is_file():
        _CACHE[key] = value
    return value


def current(recipe: Any) -> dict[str, str]:
    """The recipe's data digests, by field name plus ``SUFFIX``; a starting model that
    another stage exported is known by its done marker (written once per training)."""
    values = {name + SUFFIX: digest(str(getattr(recipe, name, "") or "")) for name in FIELDS}
    marker = Path(str(recipe.model_name_or_path)).expanduser() / "secreason_stage.json"
    if marker.is_file():
        values["model_name_or_path" + SUFFIX] = digest(str(marker))
    return {k: v for k, v in values.items() if v is not None}


def stored(output_dir: str | Path) -> dict[str, str]:
    """The digests stored with a run (empty when none, or unreadable)."""
    try:
        values = json.loads((Path(output_dir) / DATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return values if isinstance(values, dict) else {}


def save(recipe: Any) -> None:
    """Store the recipe's data digests beside its recipe (whole or not at all)."""
    path = Path(str(recipe.output_dir)) / DATA_FILE
    tmp = path.with_name(f".{DATA_FILE}.tmp")
    tmp.write_text(json.dumps(current(recipe), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
