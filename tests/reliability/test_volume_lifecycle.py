"""A guest's volumes over its life: a grow the host cannot make never blocks the guest's other
changes, a disk removed and added back converges in one apply, and kept volumes (a guest
deleted without --delete-volumes) can be listed and removed by recon itself."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Recon, edit, output
from tests.reliability.test_apply_cli import pool_volumes


def test_an_unmet_disk_grow_does_not_block_the_guests_other_changes(
    recon: Recon, applied: Path
) -> None:
    web_1 = applied / "vms" / "web-1.yaml"
    edit(web_1, "      size: 10Gi\n", "      size: 20Gi\n")
    recon.ok("apply", "-f", applied)  # the grow is unmet: warned, left as it is
    # Later changes to the same guest still apply, the grow still reported as unmet.
    edit(web_1, "  memory: 1Gi\n", "  memory: 2Gi\n")
    result = recon("apply", "-f", applied)
    assert result.returncode == 0, output(result)
    assert "cannot change it (volume-resize" in result.stderr
    shown = recon.objects()["VirtualMachine/web-1"]
    assert (shown["fields"]["memory"], shown["fields"]["disks[root].size"]) == ("2Gi", "10Gi")
    edit(web_1, "  state: Running\n", "  state: Stopped\n")
    result = recon("apply", "-f", applied)
    assert result.returncode == 0, output(result)
    assert recon.objects()["VirtualMachine/web-1"]["running"] is False
    # Still not in sync: the grow is a change this host cannot make.
    assert recon("diff", "-f", applied).returncode == 1
    assert "web-1_root.qcow2" in pool_volumes(recon)
