"""Every option of every command says what it is in ``--help``.

A newcomer's first hour found options whose help line was only a type and a default
(``serve --no-system-prompt``, ``eval --dtype``, ``reward-server --port``...). The whole
command tree is walked, so an option added later without help fails here by name.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from cli_fixtures import ENV, secreason

from secreason.cli import app


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        yield " ".join(path), command
        return
    for name, sub in subcommands.items():
        yield from _commands(sub, (*path, name))


COMMANDS = dict(_commands(typer.main.get_command(app)))


def test_the_tree_is_walked() -> None:
    assert {"eval", "serve", "sft", "data run", "kb cwe", "reward-server"} <= set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_visible_parameter_has_help(name: str) -> None:
    missing = [
        "/".join(param.opts)
        for param in COMMANDS[name].params
        if param.name != "help"
        and not getattr(param, "hidden", False)
        and not (getattr(param, "help", None) or "").strip()
    ]
    assert not missing, f"secreason {name}: no help text for {', '.join(missing)}"


def test_serve_help_as_a_user_sees_it(tmp_path: Path) -> None:
    result = secreason("serve", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if "--no-system-prompt" in line)
    assert "system_prompt.mode=off" in line, line


@pytest.mark.parametrize("stage", ["sft", "rl"])
def test_recipe_help_shows_a_base_field_the_recipe_redefines(stage: str, tmp_path: Path) -> None:
    """``activation_checkpointing`` is TRL's field, but `auto` is the recipe's own value:
    it was hidden as "a field of SFTConfig" although the README sends readers here."""
    result = subprocess.run(
        [sys.executable, "-m", f"secreason.train.{stage}", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=ENV,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    line = next(
        (x for x in result.stdout.splitlines() if x.strip().startswith("activation_checkpointing")),
        "",
    )
    assert "`auto`" in line, result.stdout
    assert "(default: 'refuse'): " in result.stdout, "a field's help follows its default"
