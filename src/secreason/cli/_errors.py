"""One error path for every command: a user's mistake becomes one or two lines that name
the file (and line) and what to do, never a 300-line traceback.

Commands refuse known mistakes themselves with :func:`fail` (exit code 2, usage, so
scripts can tell a refusal from a run that failed). Everything else that escapes a
command reaches :func:`explain` through ``secreason.cli.main``: a missing file, a file
that is not UTF-8 (the line is found by rescanning the file), a missing optional extra,
a model folder that does not exist, or any error our loaders raise with a ``file:line``
message. Tracebacks are shown only with ``--debug`` or ``SECREASON_DEBUG=1``.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from types import TracebackType
from typing import NoReturn

import typer

from secreason.evals.sources import utf8_problem

#: optional extras by the module that needs them (pyproject's optional-dependencies)
EXTRAS = {
    "vllm": "vllm",
    "lm_eval": "general",
    "alpaca_eval": "general",
    "deepspeed": "deepspeed",
}
DEBUG_HINT = "rerun with --debug (or SECREASON_DEBUG=1) for the traceback"


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def debug_enabled() -> bool:
    return os.environ.get("SECREASON_DEBUG", "").lower() in ("1", "true", "yes", "on")


def _opened_file(tb: TracebackType | None) -> str | None:
    """The text file being read where the error was raised (innermost frame first)."""
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        for value in frame.f_locals.values():
            if isinstance(value, io.TextIOWrapper) and isinstance(value.name, str):
                return value.name
    return None


def model_problem(model: str) -> str | None:
    """Why ``model`` (a folder or hub id) cannot be loaded, judged without loading it."""
    path = Path(model).expanduser()
    if path.is_file():
        return f"model {model}: a file, not a folder; give the folder of a saved model"
    if path.exists():
        if path.is_dir() and not (path / "config.json").is_file():
            has_adapter = (path / "adapter_config.json").is_file()
            if not has_adapter:
                return (
                    f"model {model}: the folder holds no config.json; give the folder of a "
                    "saved model (e.g. runs/NAME/rl/final)"
                )
        return None
    first = Path(model).parts[0] if Path(model).parts else ""
    local_looking = (
        model.startswith((".", "/", "~"))
        or model.count("/") > 1
        or (first != model and Path(first).is_dir())
    )
    if local_looking:
        return f"model {model}: no such folder; give the folder of a saved model (with config.json)"
    return None


def jsonl_problem(path: Path) -> str | None:
    """Why ``path`` is not a JSONL file of objects (``FILE:LINE: what``), read in full."""
    import json

    if path.suffix != ".jsonl":
        return None  # the loader says what it accepts (a saved dataset folder, a hub id)
    if path.is_dir():
        return f"{path}: a folder, not a JSONL file"
    if not path.is_file():
        return None
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        return utf8_problem(path)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            return f"{path}:{number}: not valid JSON ({error.msg}); one JSON object a line"
        if not isinstance(record, dict):
            kind = "null" if record is None else type(record).__name__
            return f"{path}:{number}: a JSON {kind}, not an object; one JSON object a line"
    return None


def port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (out of range, in use), checked up front."""
    import socket

    if not 1 <= port <= 65535:
        return f"--port {port}: out of range; choose 1-65535 (e.g. 8000)"
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except socket.gaierror as error:
        return f"--host {host}: not an address of this machine ({error.strerror})"
    except OSError as error:
        return f"{host}:{port}: cannot listen ({error.strerror}); choose another --port"
    return None


def explain(error: BaseException) -> tuple[str, int]:
    """One or two lines for an error that escaped a command, and the exit code."""
    if isinstance(error, UnicodeDecodeError):
        name = _opened_file(error.__traceback__)
        if name and Path(name).is_file():
            return utf8_problem(name), 2
        return f"input is not UTF-8 text ({error.reason}); save it as UTF-8", 2
    if isinstance(error, (FileNotFoundError, IsADirectoryError, NotADirectoryError)):
        if error.filename is not None and error.strerror:
            return f"{error.filename}: {error.strerror.lower()}; check the path", 2
        return str(error), 2
    if isinstance(error, PermissionError) and error.filename is not None:
        return f"{error.filename}: permission denied", 2
    if isinstance(error, ModuleNotFoundError) and error.name:
        root = error.name.split(".")[0]
        if root in EXTRAS:
            return (
                f"this needs {root}, which is not installed: pip install "
                f"'secreason[{EXTRAS[root]}]'",
                2,
            )
        return f"the Python package {root!r} is missing: reinstall secreason (pip install -e .)", 2
    if isinstance(error, ImportError):
        return str(error), 2
    kind = type(error).__name__
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    first = text.strip().splitlines()[0] if text.strip() else kind
    if kind == "HFValidationError" or "is not a local folder" in text or "Repo id must" in text:
        quoted = re.findall(r"'([^']+)'", text)
        model = quoted[-1] if quoted else "the model"
        return (
            f"model {model}: not a local folder and not a hub id; give the folder of a "
            "saved model (with config.json) or org/name",
            2,
        )
    if "OfflineModeIsEnabled" in text or "offline mode is enabled" in text.lower():
        return (
            f"{first}\nthis needs the Hugging Face Hub: unset HF_HUB_OFFLINE / "
            "HF_DATASETS_OFFLINE once to fill the local cache, or give local files",
            2,
        )
    if isinstance(error, (ValueError, KeyError, OSError)) or type(error).__module__.startswith(
        "secreason"
    ):
        return first, 2
    return f"unexpected {kind}: {first}\n{DEBUG_HINT}, and please report it", 1
