"""What a demo folder holds besides the stages: its configuration and its base model.

A rerun of ``secreason demo`` into a folder must continue *that* demo: the stored
configuration is compared field by field (``--quick`` in the folder of a full demo,
another seed, another task mix are refused, naming the fields), and the base model is
built beside its place and renamed, so a kill never leaves a half-written model for
SFT to start from (an older, torn one is built again).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from secreason.train.demo import DemoConfig

CONFIG_FILE = "demo_config.json"
# Fields that change how fast the demo runs, not what it computes.
_SPEED_ONLY = ("threads",)


class DemoError(RuntimeError):
    """The demo folder holds another demo, or a part of it cannot be used."""


def _config_values(config: DemoConfig) -> dict[str, Any]:
    values = json.loads(json.dumps(asdict(config) | {"recipes": str(config.recipes)}))
    return {k: v for k, v in values.items() if k not in _SPEED_ONLY}


def check_config(config: DemoConfig, out: Path) -> None:
    """Store the demo's configuration in ``out``, or refuse one that differs from it."""
    path = out / CONFIG_FILE
    current = _config_values(config)
    if path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = None
        if not isinstance(stored, dict):
            raise DemoError(f"{path}: damaged; delete {out} to run the demo again")
        changed = [k for k in current if k in stored and stored[k] != current[k]]
        if changed:
            lines = [f"{out} holds a demo with another configuration; changed:"]
            lines += [f"  {k}: {stored[k]!r} -> {current[k]!r}" for k in changed]
            lines.append(f"Fix: --out {out}-2 (a new folder), or delete {out} to start over.")
            raise DemoError("\n".join(lines))
        return
    tmp = path.with_name(f".{CONFIG_FILE}.tmp")
    tmp.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def ensure_base_model(base_dir: Path, seed: int, corpus: Callable[[], Any]) -> None:
    """Build the tiny base model unless a whole one is there (built aside, then renamed,
    so a kill never leaves a half-written model that SFT would start from)."""
    from secreason.train.checkpoints import model_source_problem, say
    from secreason.train.tiny import build_tiny_model

    if base_dir.is_dir():
        problem = (
            "unfinished (no secreason_tiny.json)"
            if not (base_dir / "secreason_tiny.json").is_file()
            else model_source_problem(str(base_dir))
        )
        if problem is None:
            return
        say(f"{base_dir}: {problem}; building it again")
        shutil.rmtree(base_dir)
    tmp = base_dir.with_name(base_dir.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    build_tiny_model(tmp, seed=seed, corpus=corpus())
    tmp.rename(base_dir)
