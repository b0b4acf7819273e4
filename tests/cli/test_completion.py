"""Shell completion: `recon completion bash|zsh|fish` prints click's script, and TAB completes
verbs, kinds, names of objects on the host and explain's field paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli.main import cli
from tests.conftest import Recon


def complete(words: str, home: Path, shell: str = "bash") -> list[str]:
    """What TAB offers after `words` (the last word is being typed)."""
    parts = words.split(" ")
    result = CliRunner().invoke(
        cli,
        [],
        prog_name="recon",
        env={
            "_RECON_COMPLETE": f"{shell}_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(parts) - 1),
            "RECON_HOME": str(home),
        },
    )
    assert result.exit_code == 0, result.output
    return [line.split(",", 1)[1] for line in result.output.splitlines() if "," in line]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_the_script_for_each_shell(shell: str) -> None:
    result = CliRunner().invoke(cli, ["completion", shell], prog_name="recon")
    assert result.exit_code == 0
    assert f"_RECON_COMPLETE={shell}_complete" in result.output
    help_text = CliRunner().invoke(cli, ["--help"]).output
    assert "completion" in help_text and "explain" in help_text


def test_tab_completes_verbs_and_kinds(tmp_path: Path) -> None:
    assert {"explain", "completion"} <= set(complete("recon ", tmp_path))
    assert complete("recon get Virt", tmp_path) == ["VirtualMachine"]
    assert set(complete("recon delete po", tmp_path)) == {"pool", "pools"}


def test_tab_completes_names_from_the_host(recon: Recon, applied: Path) -> None:
    assert complete("recon get vm ", recon.home) == ["db-1", "web-1"]
    assert complete("recon delete ct c", recon.home) == ["cache-1"]
    assert complete("recon get net ", recon.home) == ["lan"]
    # exec, enter and console take a guest: VMs and containers, nothing else.
    assert complete("recon exec ", recon.home) == ["cache-1", "db-1", "web-1"]
    assert complete("recon console w", recon.home) == ["web-1"]


def test_tab_without_a_host_offers_no_names_and_creates_none(tmp_path: Path) -> None:
    assert complete("recon get vm ", tmp_path / "home") == []
    assert not (tmp_path / "home").exists()


def test_tab_completes_explain_field_paths(tmp_path: Path) -> None:
    assert complete("recon explain vm.spec.d", tmp_path) == ["vm.spec.disks"]
    assert "vm.spec.disks.size" in complete("recon explain vm.spec.disks.", tmp_path)
    assert complete("recon explain vm.spec.guest.users.pass", tmp_path) == [
        "vm.spec.guest.users.password"
    ]
