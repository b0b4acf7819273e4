"""Lines removed from a manifest, and objects removed behind recon's back, are changes too."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import OtherTool, Recon, edit, output


def _plan(recon: Recon, manifests: Path) -> dict[str, dict[str, object]]:
    result = recon("diff", "-f", manifests, "-o", "json")
    assert result.returncode in (0, 1), output(result)
    plan = json.loads(result.stdout)
    return {c["resource"]: c for c in plan["changes"]}


def test_removing_max_memory_is_a_restart_back_to_no_ceiling(recon: Recon, applied: Path) -> None:
    edit(applied / "vms" / "web-1.yaml", "  maxMemory: 4Gi          # memory hotplug ceiling\n", "")
    change = _plan(recon, applied)["VirtualMachine/web-1"]
    fields = {f["path"]: f for f in change["fields"]}  # type: ignore[union-attr]
    assert fields["maxMemory"]["before"] == "4Gi"
    assert fields["maxMemory"]["after"] is None
    assert change["disruption"] == "restart"
    recon.ok("apply", "-f", applied)
    assert "maxMemory" not in recon.objects()["VirtualMachine/web-1"]["fields"]
    assert recon("diff", "-f", applied).returncode == 0


def test_removing_a_disk_detaches_it_and_keeps_its_volume(
    recon: Recon, applied: Path, other_tool: OtherTool
) -> None:
    edit(
        applied / "vms" / "db-1.yaml",
        "    - name: data\n      pool: default\n      size: 50Gi\n",
        "",
    )
    change = _plan(recon, applied)["VirtualMachine/db-1"]
    assert change["action"] == "update" and change["disruption"] == "restart"
    recon.ok("apply", "-f", applied)
    fields = recon.objects()["VirtualMachine/db-1"]["fields"]
    assert "disks[data].size" not in fields and fields["disks[root].size"] == "20Gi"
    with other_tool(recon.host_xml) as conn:
        assert "db-1_data.qcow2" in conn.storagePoolLookupByName("default").listVolumes()
    assert recon("diff", "-f", applied).returncode == 0


def test_a_disk_volume_deleted_behind_recons_back_is_drift(
    recon: Recon, applied: Path, other_tool: OtherTool
) -> None:
    with other_tool(recon.host_xml) as conn:
        conn.storagePoolLookupByName("default").storageVolLookupByName("db-1_data.qcow2").delete()
    change = _plan(recon, applied)["VirtualMachine/db-1"]
    fields = {f["path"]: f for f in change["fields"]}  # type: ignore[union-attr]
    assert fields["disks[data].size"]["before"] is None
    assert fields["disks[data].size"]["after"] == "50Gi"
    recon.ok("apply", "-f", applied)
    assert recon("diff", "-f", applied).returncode == 0


def test_unpinning_a_uuid_keeps_the_guest(recon: Recon, applied: Path) -> None:
    uuid = recon.objects()["VirtualMachine/web-1"]["uuid"]
    vm = applied / "vms" / "web-1.yaml"
    edit(vm, "spec:\n", f"spec:\n  uuid: {uuid}\n")
    recon.ok("apply", "-f", applied)
    edit(vm, f"spec:\n  uuid: {uuid}\n", "spec:\n")
    change = _plan(recon, applied)["VirtualMachine/web-1"]
    assert (change["action"], change["fields"]) == ("update", [])  # recon's record only
    recon.ok("apply", "-f", applied)
    assert recon("diff", "-f", applied).returncode == 0
    assert recon.objects()["VirtualMachine/web-1"]["uuid"] == uuid


def test_deleting_what_is_not_there_exits_1_unless_ignored(recon: Recon, applied: Path) -> None:
    missing = recon("delete", "vm", "nosuch")
    assert missing.returncode == 1
    assert "VirtualMachine/nosuch: not on the host" in missing.stderr
    assert recon("delete", "vm", "nosuch", "--ignore-not-found").returncode == 0


def test_a_saved_plan_is_refused_on_another_host(
    recon: Recon, manifests: Path, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.json"
    assert recon("diff", "-f", manifests, "--out", plan).returncode == 1
    other = recon("apply", "-f", plan, home=tmp_path / "other-home")
    assert other.returncode == 1
    assert "this plan was made for" in other.stderr
