"""Verifiable tasks. Importing this package registers the built-in tasks."""

from secreason.tasks import actor as _actor  # noqa: F401
from secreason.tasks import attack as _attack  # noqa: F401
from secreason.tasks import cvss as _cvss  # noqa: F401
from secreason.tasks import cwe as _cwe  # noqa: F401
from secreason.tasks import mcq as _mcq  # noqa: F401
from secreason.tasks import mitigation as _mitigation  # noqa: F401
from secreason.tasks.base import (
    PROTOCOLS,
    Extraction,
    Judgement,
    Protocol,
    Sample,
    Score,
    Task,
    get_task,
    task_names,
)

__all__ = [
    "PROTOCOLS",
    "Extraction",
    "Judgement",
    "Protocol",
    "Sample",
    "Score",
    "Task",
    "get_task",
    "task_names",
]
