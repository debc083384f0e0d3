"""One configuration grammar: a YAML file read one way, ``--set key=value`` parsed one
way, help that shows defaults, and recipe help from the accelerate entry points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from secreason.cli import app
from secreason.configfile import ConfigFileError, line_of, parse_set, read_yaml


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("learning_rate=3e-4", ("learning_rate", 3e-4)),
        ("bf16=true", ("bf16", True)),
        ("output_dir=", ("output_dir", "")),
        ("mix.ratios=[1, 2]", ("mix.ratios", [1, 2])),
        ("--max-steps=5", ("max-steps", 5)),
        ("name=a=b", ("name", "a=b")),
    ],
)
def test_parse_set(item: str, expected: tuple[str, Any]) -> None:
    assert parse_set(item) == expected


@pytest.mark.parametrize("item", ["nonsense", "=1", "key=[1"])
def test_parse_set_refuses(item: str) -> None:
    with pytest.raises(ConfigFileError, match="--set"):
        parse_set(item)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "file not found"),
        ("dir", "is a folder"),
        (b"a: 1\nb: \xff\n", "recipe.yaml:2: not UTF-8"),
        ("a: 1\nb: [1\n", "recipe.yaml:3:1: not valid YAML"),
        ("- a\n", "must be a YAML mapping"),
    ],
    ids=["missing", "folder", "not-utf8", "broken", "list"],
)
def test_read_yaml_errors_name_file_and_line(
    tmp_path: Path, content: str | bytes | None, message: str
) -> None:
    path = tmp_path / "recipe.yaml"
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigFileError, match=message) as error:
        read_yaml(path)
    assert str(path) in str(error.value)
    assert len(str(error.value).splitlines()) == 1


def test_read_yaml_lines(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("a: 1\nlimits:\n  x: 2\n  max_tokens: 3\n")
    data, tree = read_yaml(path)
    assert data["limits"]["max_tokens"] == 3
    assert line_of(tree, "limits.max_tokens") == 4 and line_of(tree, "nope") is None
    (tmp_path / "empty.yaml").write_text("")
    assert read_yaml(tmp_path / "empty.yaml") == ({}, None)


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (["eval", "--help"], ["default: transformers", "default: both", "--set", "--list"]),
        (["serve", "--help"], ["127.0.0.1", "8000"]),
        (["score", "--help"], ["default: strict", "--set"]),
        (["sft", "--help"], ["--set", "python -m secreason.train.sft --help"]),
        (["data", "run", "--help"], ["--set"]),
    ],
)
def test_help_shows_defaults_and_set(command: list[str], shown: list[str]) -> None:
    result = CliRunner().invoke(app, command, env={"COLUMNS": "250"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for item in shown:
        assert item in text, item


def test_recipe_help_from_the_accelerate_entry_point(capsys: pytest.CaptureFixture[str]) -> None:
    from secreason.train.config import SFTRecipe
    from secreason.train.sft import main

    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m secreason.train.sft RECIPE.yaml [--set key=value")
    assert "model_name_or_path (default: '')" in out and "SFTConfig" in out
    own = SFTRecipe.__dataclass_fields__["truncation"].default
    assert f"truncation (default: {own!r})" in out
