"""`recon diff` opens and observes the host in a thread while it loads the manifests
(cli/host.EarlyObservation). What a user sees must not change with it: the manifests' errors
come first and alone, a host that cannot be opened still exits 2 with the hint, a fresh home is
not created by a diff of broken manifests, and the plan is the one a sequential read gives."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import Recon, output

ROOT = Path(__file__).resolve().parents[2]


def network_set(tmp_path: Path) -> Path:
    directory = tmp_path / "set"
    directory.mkdir()
    shutil.copy(ROOT / "manifests" / "network.yaml", directory / "network.yaml")
    return directory


def test_a_manifest_error_comes_alone_when_the_host_cannot_be_opened(
    recon: Recon, tmp_path: Path
) -> None:
    directory = network_set(tmp_path)
    broken = directory / "network.yaml"
    broken.write_text(broken.read_text().replace("mode: nat", "mode: natt"))
    run = recon("--connect", f"test://{tmp_path}/no-such-node.xml", "diff", "-f", directory)
    assert run.returncode == 2, output(run)
    assert "network.yaml" in run.stderr and "spec.mode" in run.stderr
    assert "cannot connect" not in run.stderr


def test_a_host_that_cannot_be_opened_exits_2_with_the_hint(recon: Recon, tmp_path: Path) -> None:
    run = recon(
        "--connect", f"test://{tmp_path}/no-such-node.xml", "diff", "-f", network_set(tmp_path)
    )
    assert run.returncode == 2, output(run)
    assert "cannot connect to test://" in run.stderr
    assert "hint: check --connect" in run.stderr


def test_a_diff_of_broken_manifests_creates_no_embedded_host(recon: Recon, tmp_path: Path) -> None:
    directory = network_set(tmp_path)
    (directory / "network.yaml").write_text("kind: Network\nmetadata: {name: x}\n")
    run = recon("diff", "-f", directory)
    assert run.returncode == 2, output(run)
    assert not recon.host_xml.exists()


def test_the_early_read_plans_what_is_on_the_host(recon: Recon, tmp_path: Path) -> None:
    directory = network_set(tmp_path)
    first = recon("diff", "-f", directory)  # a fresh home: opened after the manifests
    assert first.returncode == 1 and "create" in first.stdout.lower(), output(first)
    recon.ok("apply", "-f", directory)
    assert recon.host_xml.exists()
    same = recon("diff", "-f", directory)  # opened early, while the manifests load
    assert same.returncode == 0, output(same)
    edit = directory / "network.yaml"
    edit.write_text(edit.read_text().replace("autostart: true", "autostart: false"))
    changed = recon("diff", "-f", directory)
    assert changed.returncode == 1, output(changed)
    assert "autostart" in changed.stdout + changed.stderr
