"""How every command refuses bad input: one ``error: ...`` line on stderr, exit code 2
(usage), so scripts can tell a refusal from a run that failed (exit 1)."""

from __future__ import annotations

from typing import NoReturn

import typer


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
