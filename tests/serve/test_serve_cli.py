"""``secreason serve`` argument handling (the server itself is exercised in test_serve_server)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from secreason.cli import app


def test_config_errors_exit_2_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text("model:\n  path: m\nguard:\n  allow_categories: [S2, S42]\n")
    result = CliRunner().invoke(app, ["serve", "--config", str(path)])
    assert result.exit_code == 2
    assert f"{path}:4: guard.allow_categories" in result.output
    assert "S42" in result.output


def test_set_needs_key_and_value() -> None:
    result = CliRunner().invoke(app, ["serve", "--model", "m", "--set", "limits.max_tokens"])
    assert result.exit_code != 0 and "dotted.key=value" in result.output


def test_validation_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text("model:\n  path: m\nlimits:\n  max_concurrent: 0\n")
    result = CliRunner().invoke(app, ["serve", "--config", str(path)])
    assert result.exit_code == 2
    assert f"{path}:4: limits.max_concurrent: must be at least 1" in result.output
