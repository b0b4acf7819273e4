"""Smaller things a user trips over (#12 §9): what delete says, and RECON_HOME's privacy."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.conftest import Recon, output


def test_delete_reports_a_delete_not_an_apply(recon: Recon, applied: Path) -> None:
    result = recon("delete", "vm", "db-1")
    assert result.returncode == 0, output(result)
    assert "Apply" not in output(result)
    assert "Delete complete: 1 deleted." in result.stdout


def test_directories_recon_makes_in_its_home_are_private(
    recon: Recon, applied: Path, tmp_path: Path
) -> None:
    home = tmp_path / "deeper" / "home"
    recon.ok("apply", "-f", applied, home=home)
    made = [home.parent, home, *(p for p in home.rglob("*") if p.is_dir())]
    assert home / "locks" in made
    for directory in made:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    for path in home.rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
