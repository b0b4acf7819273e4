"""A guest's volumes over its life: a grow the host cannot make never blocks the guest's other
changes, a disk removed and added back converges in one apply, and kept volumes (a guest
deleted without --delete-volumes) can be listed and removed by recon itself."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import OtherTool, Recon, edit, leave_only_the_network_and_policy, output
from tests.reliability.test_apply_cli import pool_volumes
from tests.reliability.test_volume_safety import _vm, template_image


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


DATA_DISK = "    - name: data\n      pool: default\n      size: 50Gi\n"


def test_a_disk_removed_and_added_back_converges_in_one_apply(recon: Recon, applied: Path) -> None:
    db_1 = applied / "vms" / "db-1.yaml"
    edit(db_1, DATA_DISK, "")
    recon.ok("apply", "-f", applied)
    assert "db-1_data.qcow2" in pool_volumes(recon)  # detached, kept
    # Added back smaller: the kept volume cannot shrink; the plan says so up front, rather
    # than attaching it and asking for a replace on the next diff.
    edit(db_1, "  interfaces:", DATA_DISK.replace("50Gi", "20Gi") + "  interfaces:")
    said = "the kept volume default/db-1_data.qcow2 it gets back is 50Gi, larger than the 20Gi"
    planned = recon("diff", "-f", applied)
    assert planned.returncode == 2, output(planned)
    assert said in planned.stderr
    refused = recon("apply", "-f", applied)
    assert refused.returncode == 1, output(refused)
    assert said in output(refused)
    assert "disks[data].size" not in recon.objects()["VirtualMachine/db-1"]["fields"]
    # Added back larger on a host that cannot grow it: unmet up front, attached at its size,
    # the grow still unmet after (never a replace).
    edit(db_1, "      size: 20Gi\n  interfaces:", "      size: 60Gi\n  interfaces:")
    planned = recon("diff", "-f", applied)
    assert planned.returncode == 1, output(planned)
    assert "it gets back is 50Gi; this host cannot grow it to 60Gi" in planned.stderr
    recon.ok("apply", "-f", applied)
    pending = recon("diff", "-f", applied)
    assert pending.returncode == 1, output(pending)
    assert "replace" not in pending.stdout
    assert "disks[data].size: this host cannot change it (volume-resize" in pending.stderr
    # Added back at its size: in sync after one apply.
    edit(db_1, "      size: 60Gi\n", "      size: 50Gi\n")
    recon.ok("apply", "-f", applied)
    assert recon("diff", "-f", applied).returncode == 0


def test_kept_volumes_are_listed_and_deleted_by_recon(
    recon: Recon, applied: Path, other_tool: OtherTool
) -> None:
    deleted = recon.ok("delete", "vm", "web-1")
    assert "kept default/web-1_root.qcow2" in output(deleted)
    listed = json.loads(recon.ok("get", "volumes", "--orphaned", "-o", "json").stdout)
    orphans = {f"{v['pool']}/{v['name']}": v for v in listed["items"]}
    assert set(orphans) == {"default/web-1_root.qcow2"}
    assert orphans["default/web-1_root.qcow2"]["owner"] == "VirtualMachine/web-1"
    assert orphans["default/web-1_root.qcow2"]["usedBy"] == []
    table = recon.ok("get", "volumes").stdout
    assert "db-1_data.qcow2" in table and "VirtualMachine/db-1" in table
    # Refused: a volume a guest uses, a template image, a volume recon did not make.
    busy = recon("delete", "volume", "default/db-1_data.qcow2")
    assert busy.returncode == 1, output(busy)
    assert "in use by VirtualMachine/db-1" in output(busy)
    image = template_image(recon)
    assert recon("delete", "volume", f"default/{image}").returncode == 1
    with other_tool(recon.host_xml) as conn:
        conn.storagePoolLookupByName("default").createXML(
            "<volume><name>notes.qcow2</name><capacity>1048576</capacity>"
            "<target><format type='qcow2'/></target></volume>"
        )
    foreign = recon("delete", "volume", "default/notes.qcow2")
    assert foreign.returncode == 1, output(foreign)
    assert "was not made by recon" in output(foreign)
    assert {"db-1_data.qcow2", image, "notes.qcow2"} <= pool_volumes(recon)
    # The kept one goes; then the template it backed onto can be pruned too.
    recon.ok("delete", "volume", "default/web-1_root.qcow2")
    assert "web-1_root.qcow2" not in pool_volumes(recon)
    assert recon.ok("get", "volumes", "--orphaned", "-o", "json").stdout.count("name") == 0


def test_an_unowned_volume_with_a_wanted_name_is_not_taken_over_without_adopt(
    recon: Recon, applied: Path, other_tool: OtherTool
) -> None:
    with other_tool(recon.host_xml) as conn:
        conn.storagePoolLookupByName("default").createXML(
            "<volume><name>app-1_data.qcow2</name><capacity>1073741824</capacity>"
            "<target><format type='qcow2'/></target></volume>"
        )
    _vm(applied, "app-1", "data")
    refused = recon("apply", "-f", applied)
    assert refused.returncode == 1, output(refused)
    assert "default/app-1_data.qcow2 exists but recon did not make it" in output(refused)
    assert "VirtualMachine/app-1" not in recon.objects()
    # Deleting the guests recon owns with their volumes never touches it either.
    recon.ok("delete", "vm", "db-1", "--delete-volumes")
    assert "app-1_data.qcow2" in pool_volumes(recon)
    adopted = recon("apply", "-f", applied, "--adopt")
    assert adopted.returncode == 0, output(adopted)
    assert recon.objects()["VirtualMachine/app-1"]["fields"]["disks[data].size"] == "1Gi"


def test_a_network_a_guest_is_on_is_never_deleted(
    recon: Recon, applied: Path, other_tool: OtherTool
) -> None:
    refused = recon("delete", "network", "lan")
    assert refused.returncode == 1, output(refused)
    assert "Network/lan is in use by" in output(refused) and "web-1" in output(refused)
    # A guest recon does not manage keeps it from a prune too, whatever else goes.
    with other_tool(recon.host_xml) as conn:
        conn.defineXML(
            "<domain type='test'><name>visitor</name><memory>262144</memory>"
            "<os><type>hvm</type></os><devices><interface type='network'>"
            "<source network='lan'/></interface></devices></domain>"
        )
    leave_only_the_network_and_policy(applied)
    (applied / "network.yaml").unlink()
    result = recon("apply", "-f", applied, "--prune", "--delete-volumes")
    assert result.returncode == 0, output(result)
    assert "Network/lan is not pruned: it is in use by VirtualMachine/visitor" in output(result)
    assert "Network/lan" in recon.objects()
    assert "VirtualMachine/web-1" not in recon.objects()


def test_a_detached_disk_is_still_its_guests_and_goes_with_delete_volumes(
    recon: Recon, applied: Path
) -> None:
    edit(applied / "vms" / "db-1.yaml", DATA_DISK, "")
    recon.ok("apply", "-f", applied)
    listed = json.loads(recon.ok("get", "volumes", "default/db-1_data.qcow2", "-o", "json").stdout)
    assert listed["items"][0]["owner"] == "VirtualMachine/db-1"
    assert listed["items"][0]["orphaned"] is True  # no domain uses it
    recon.ok("delete", "vm", "db-1", "--delete-volumes")
    assert not {"db-1_data.qcow2", "db-1_root.qcow2"} & pool_volumes(recon)
