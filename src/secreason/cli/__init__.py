"""The ``secreason`` command: a thin Typer app.

Each public module of this package defines ``register(app)`` and adds its commands
(``_``-prefixed ones are helpers of a command); heavy
imports (torch, transformers) stay inside the command functions so that
``secreason --help`` is instant.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__.splitlines()[0])


def _register_all() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(app)


_register_all()


def main() -> None:
    app()
