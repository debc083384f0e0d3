"""``secreason eval --list --data ROOT`` reads as a table: row counts in one column."""

from __future__ import annotations

from pathlib import Path

from cli_fixtures import FIXTURES, secreason


def test_row_counts_and_problems_start_in_one_column(tmp_path: Path) -> None:
    result = secreason("eval", "--list", "--data", str(FIXTURES), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [x for x in result.stdout.splitlines() if " rows=" in x or " unavailable:" in x]
    assert len(lines) > 5, result.stdout
    starts = {
        line.index("rows=") if " rows=" in line else line.index("unavailable:") for line in lines
    }
    assert len(starts) == 1, "\n".join(lines)
