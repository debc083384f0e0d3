"""Helpers of the command-line tests: ``secreason`` run as a real subprocess.

The bad-input tables (``test_cli_errors*.py``, ``test_cli_eval_malformed.py``) all run
the command the way a user does, offline, with progress bars off and a wide terminal
so messages are not wrapped; this module holds that one way of running it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "benchmarks"
ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "SECREASON_PROGRESS": "0",
    "SECREASON_DEBUG": "",
    "COLUMNS": "200",
}


def secreason(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m secreason.cli ARGS`` in ``cwd``; ``env`` replaces :data:`ENV`."""
    return subprocess.run(
        [sys.executable, "-m", "secreason.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env or ENV,
        timeout=300,
    )
