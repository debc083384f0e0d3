"""Is a saved folder whole? Checkpoints and model folders after a kill, a crash or a full disk.

A process killed while transformers saves a checkpoint leaves ``checkpoint-N`` half
written: weights but no ``trainer_state.json`` (it is saved last), a file cut short, or
a zero-byte file after a crash before the data reached the disk. Resuming from such a
folder fails deep inside ``torch.load`` or safetensors, so the stage looks at each
checkpoint first, newest to oldest, and resumes from the newest *whole* one. A torn one
is renamed ``torn-checkpoint-N`` (kept, never deleted: a judgement could be wrong, and
transformers' rotation only looks at ``checkpoint-*``), and stderr says so.

The checks read headers only (safetensors' JSON header, the zip directory torch writes
at the end of a ``.pt`` file), so they cost milliseconds even for an 8B checkpoint.
The same goes for what a stage may write into: an ``output_dir`` holding another
program's files is refused, and a lock keeps two runs out of one folder.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TORN_PREFIX = "torn-"
LOCK_FILE = ".secreason.lock"
# Where a checkpoint or model folder keeps its weights (plain, sharded, LoRA, DeepSpeed, FSDP).
_WEIGHTS = ("model*.safetensors", "pytorch_model*", "adapter_model*", "global_step*")
_TORCH = (".pt", ".pth", ".bin")
_JSON_LIMIT = 64 * 1024 * 1024
# Formats that are never empty when whole (a zero-byte file of another kind may be).
_NEVER_EMPTY = frozenset({".safetensors", ".json", ".jinja", ".model", *_TORCH})


def say(message: str) -> None:
    """One line on stderr (stdout may be a progress bar or a pipe a script parses)."""
    print(f"[secreason] {message}", file=sys.stderr, flush=True)


def _safetensors_problem(path: Path, size: int) -> str | None:
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            return "cut short (no header)"
        (length,) = struct.unpack("<Q", head)
        if length > size - 8:
            return "cut short (header larger than the file)"
        try:
            header = json.loads(fh.read(length))
        except ValueError:
            return "damaged header"
    ends = [
        int(v["data_offsets"][1])
        for k, v in header.items()
        if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v
    ]
    if 8 + length + max(ends, default=0) > size:
        return "cut short (tensor data missing)"
    return None


def file_problem(path: Path) -> str | None:
    """Why one saved file is not whole (None when it looks whole)."""
    try:
        size = path.stat().st_size
        if size == 0 and path.suffix in _NEVER_EMPTY:
            return "empty (0 bytes)"
        if path.suffix == ".safetensors":
            return _safetensors_problem(path, size)
        if path.suffix in _TORCH and not zipfile.is_zipfile(path):
            return "cut short (not a complete torch file)"
        if path.suffix == ".json" and size <= _JSON_LIMIT:
            json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, struct.error) as err:
        return f"unreadable ({type(err).__name__})"
    return None


def folder_problem(folder: Path, *, checkpoint: bool) -> str | None:
    """Why a checkpoint (``checkpoint=True``) or a model folder is not whole."""
    if checkpoint:
        state = folder / "trainer_state.json"
        if not state.is_file():
            return "no trainer_state.json (saved last: killed while saving?)"
    if not any(any(folder.glob(pattern)) for pattern in _WEIGHTS):
        return "no weights"
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        problem = file_problem(path)
        if problem:
            return f"{path.relative_to(folder)} is {problem}"
    if checkpoint:
        state_data = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
        if not isinstance(state_data, dict) or "global_step" not in state_data:
            return "trainer_state.json has no global_step"
    return None


def _step(folder: Path) -> int | None:
    tail = folder.name[len("checkpoint-") :]
    return int(tail) if folder.name.startswith("checkpoint-") and tail.isdigit() else None


def _main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def set_aside(folder: Path) -> Path | None:
    """Rename a torn checkpoint out of transformers' way (main process only)."""
    if not _main_process():
        return None
    target = folder.with_name(TORN_PREFIX + folder.name)
    n = 1
    while target.exists():
        n += 1
        target = folder.with_name(f"{TORN_PREFIX}{folder.name}.{n}")
    try:
        folder.rename(target)
    except OSError:
        return None  # another process moved it first
    return target


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The newest whole checkpoint; torn ones are set aside, each named on stderr."""
    found = Path(output_dir).glob("checkpoint-*")
    folders = [p for p in found if p.is_dir() and _step(p) is not None]
    skipped = 0
    for folder in sorted(folders, key=lambda p: _step(p) or 0, reverse=True):
        problem = folder_problem(folder, checkpoint=True)
        if problem is None:
            if skipped:
                say(f"resuming from {folder.name}, the newest whole checkpoint")
            return str(folder)
        skipped += 1
        moved = set_aside(folder)
        where = f"; moved to {moved.name} (delete it to free the space)" if moved else ""
        say(f"skipping {folder}: {problem}{where}")
    if skipped:
        say(f"{output_dir}: no whole checkpoint left; training starts from step 0")
    return None


def model_source_problem(model: str) -> str | None:
    """Why a stage cannot start from ``model`` (a local folder or a hub id): a stage's
    output folder instead of its model, a stage that did not finish, torn weights."""
    from secreason.cli._errors import model_problem
    from secreason.train.continuation import RECIPE_FILE

    path = Path(model).expanduser()
    if not path.is_dir():
        return model_problem(model)  # a file, a missing folder; None for a hub id
    if (path / RECIPE_FILE).is_file() and not (path / "config.json").is_file():
        hint = f"{path / 'final'}" if (path / "final").is_dir() else f"{path}/final once it ends"
        return f"model {model}: a training stage's output folder; its model is {hint}"
    stage = path.parent / RECIPE_FILE
    marker = path / "secreason_stage.json"
    if stage.is_file() and path.name == "final" and not marker.is_file():
        return (
            f"model {model}: the stage writing it ({path.parent}) did not finish (no "
            f"{marker.name}); rerun that stage's command to finish it, then this one"
        )
    exported = marker.is_file() or (path / "config.json").is_file()
    if exported or (path / "adapter_config.json").is_file():
        problem = folder_problem(path, checkpoint=False)
        if problem:
            return f"model {model}: {problem}; save or export that model again"
    return None


def output_dir_problem(out: Path) -> str | None:
    """Why ``out`` cannot be a stage's ``output_dir``: a file, or a folder of other things
    (a stage resumes from, rotates and overwrites what it finds there)."""
    from secreason.train.continuation import RECIPE_FILE

    if out.exists() and not out.is_dir():
        return f"output_dir {out}: a file, not a folder; choose a new folder"
    if not out.is_dir() or (out / RECIPE_FILE).is_file():
        return None
    others = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    if not others:
        return None
    shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
    return (
        f"output_dir {out}: not empty and not a secreason stage's folder (no {RECIPE_FILE}; "
        f"it holds {shown}); a stage would resume from, rotate or overwrite what is there. "
        "Fix: choose a new or empty folder"
    )


@contextmanager
def output_lock(out: Path) -> Iterator[str | None]:
    """Hold ``out``'s lock while a stage trains into it; yields who holds it when another
    process does (None when this one got it). The kernel drops it when a process dies,
    killed or not. Only the main process locks (all processes of one run share it)."""
    if not _main_process():
        yield None
        return
    out.mkdir(parents=True, exist_ok=True)
    with (out / LOCK_FILE).open("a+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            yield fh.read().strip() or "pid unknown"
            return
        except OSError as err:  # a file system without locks (some NFS mounts)
            say(f"{out}: cannot lock ({err.strerror}); make sure no other run uses it")
            yield None
            return
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        try:
            yield None
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_whole(path: Path, text: str) -> None:
    """Write a small file so that a kill leaves the old or the new one, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def saved_state(checkpoint: str | Path) -> dict[str, Any]:
    """A checkpoint's trainer state (``trainer_state.json``)."""
    state: dict[str, Any] = json.loads(
        (Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8")
    )
    return state


def holds_every_step(checkpoint: str | Path, args: Any) -> bool:
    """Whether ``checkpoint`` already reached the end the training arguments ask for
    (resuming from it, transformers would train one step past that end)."""
    state = saved_state(checkpoint)
    step = int(state.get("global_step", 0))
    if args.max_steps > 0:
        return step >= args.max_steps
    saved_max = state.get("max_steps") or 0
    same_length = state.get("num_train_epochs") == args.num_train_epochs
    return bool(saved_max) and same_length and step >= saved_max
