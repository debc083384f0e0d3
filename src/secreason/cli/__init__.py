"""The ``secreason`` command: a thin Typer app.

Each public module of this package defines ``register(app)`` and adds its commands
(``_``-prefixed ones are helpers of a command); heavy
imports (torch, transformers) stay inside the command functions so that
``secreason --help`` is instant. :func:`main` is the one place errors become messages
(``cli._errors``): ``--debug`` anywhere on the line (or ``SECREASON_DEBUG=1``) shows
tracebacks instead.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

import typer

from secreason import __version__
from secreason.cli._errors import debug_enabled, explain

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Build, evaluate and safely serve cybersecurity reasoning models.",
    context_settings={"show_default": True},
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"secreason {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_show_version, help="Print the version."
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show tracebacks (anywhere on the line; or SECREASON_DEBUG=1)."
    ),
) -> None:
    """Options for every command."""


def _register_all() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(app)


_register_all()


def _run(args: list[str]) -> None:
    """Run the app; a usage mistake (bad option value, missing argument) is one
    ``error:`` line plus where to look, not Typer's boxed panel."""
    try:
        code = app(args=args, prog_name="secreason", standalone_mode=False)
    except Exception as error:  # Typer's own (vendored) click exceptions, by name
        kinds = {kind.__name__ for kind in type(error).__mro__}
        if "Abort" in kinds:
            sys.exit(130)
        if "ClickException" not in kinds:
            raise
        if "NoArgsIsHelpError" in kinds:
            error.show()  # type: ignore[attr-defined]
            sys.exit(getattr(error, "exit_code", 2))
        ctx = getattr(error, "ctx", None)
        hint = f"\nsee: {ctx.command_path} --help" if ctx is not None else ""
        typer.echo(f"error: {error.format_message()}{hint}", err=True)  # type: ignore[attr-defined]
        sys.exit(getattr(error, "exit_code", 2))
    if isinstance(code, int) and not isinstance(code, bool) and code:
        sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """The ``secreason`` command: user errors as one or two lines, exit code 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in args:
        args = [a for a in args if a != "--debug"]
        os.environ["SECREASON_DEBUG"] = "1"
    if debug_enabled():
        _run(args)
        return
    try:
        _run(args)
    except SystemExit as done:
        if done.code == 130:  # Ctrl-C (Typer turns it into exit code 130)
            typer.echo("interrupted; rerun the same command to resume", err=True)
        raise
    except KeyboardInterrupt:
        typer.echo("interrupted; rerun the same command to resume", err=True)
        sys.exit(130)
    except Exception as error:
        message, code = explain(error)
        typer.echo(f"error: {message}", err=True)
        sys.exit(code)
