"""Volumes that hold data: one owner each, never attached to a second guest, never deleted
from under a guest or a disk that backs onto them, and a prune that cannot delete a pool or
template the host still needs refuses it plainly and lets the rest go on."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import OtherTool, Recon, edit, leave_only_the_network_and_policy, output
from tests.reliability.test_apply_cli import pool_volumes

VM = """apiVersion: reconciler/v1
kind: VirtualMachine
metadata:
  name: {name}
spec:
  cpus: 1
  memory: 256Mi
  disks:
    - name: {disk}
      pool: default
      size: 1Gi{extra}
  state: Stopped
"""


def _vm(manifests: Path, name: str, disk: str, extra: str = "") -> Path:
    path = manifests / "vms" / f"{name}.yaml"
    path.write_text(VM.format(name=name, disk=disk, extra=extra))
    return path


def template_image(recon: Recon, name: str = "debian-12-base") -> str:
    """The pool volume of the template's current build (named by its artifact)."""
    shown = json.loads(recon.ok("get", "template", name, "-o", "json").stdout)
    image: str = shown["status"]["artifact"]["image"]
    return image


def _disks(recon: Recon, name: str) -> set[str]:
    fields = recon.objects()[f"VirtualMachine/{name}"]["fields"]
    return {k for k in fields if k.startswith("disks[")}


def test_guests_whose_names_used_to_collide_get_a_volume_each(
    recon: Recon, manifests: Path
) -> None:
    _vm(manifests, "db", "x-data")
    other = _vm(manifests, "db-x", "data")
    _vm(manifests, "template", "debian-12-base")
    recon.ok("apply", "-f", manifests)
    image = template_image(recon)
    volumes = pool_volumes(recon)
    assert {"db_x-data.qcow2", "db-x_data.qcow2", "template_debian-12-base.qcow2"} <= volumes
    assert image in volumes  # the template's image, untouched
    # Pruning db-x with its volumes leaves db's disk, and the template image, alone.
    other.unlink()
    recon.ok("apply", "-f", manifests, "--prune", "--delete-volumes")
    volumes = pool_volumes(recon)
    assert "db-x_data.qcow2" not in volumes
    assert {"db_x-data.qcow2", image} <= volumes
    assert recon("diff", "-f", manifests).returncode == 0


def test_a_volume_another_guest_uses_is_not_attached(
    recon: Recon, applied: Path, other_tool: OtherTool
) -> None:
    # An unmanaged guest already runs on the volume a new VM's disk would be named.
    with other_tool(recon.host_xml) as conn:
        pool = conn.storagePoolLookupByName("default")
        vol = pool.createXML(
            "<volume><name>app-1_data.qcow2</name><capacity>1073741824</capacity>"
            "<target><format type='qcow2'/></target></volume>"
        )
        dom = conn.defineXML(
            "<domain type='test'><name>squatter</name><memory>262144</memory>"
            "<os><type>hvm</type></os><devices><disk type='file' device='disk'>"
            f"<source file='{vol.path()}'/><target dev='vda' bus='virtio'/></disk>"
            "</devices></domain>"
        )
        dom.create()
    _vm(manifests=applied, name="app-1", disk="data")
    result = recon("apply", "-f", applied)
    assert result.returncode == 1, output(result)
    assert "in use by VirtualMachine/squatter" in result.stderr + result.stdout
    assert "VirtualMachine/app-1" not in recon.objects()
    # --delete-volumes of a guest never deletes a disk another guest runs on.
    with other_tool(recon.host_xml) as conn:
        path = (
            conn.storagePoolLookupByName("default")
            .storageVolLookupByName("web-1_root.qcow2")
            .path()
        )
        conn.defineXML(
            "<domain type='test'><name>peer</name><memory>262144</memory>"
            "<os><type>hvm</type></os><devices><disk type='file' device='disk'>"
            f"<source file='{path}'/><target dev='vda' bus='virtio'/></disk>"
            "</devices></domain>"
        )
    deleted = recon("delete", "vm", "web-1", "--delete-volumes")
    assert deleted.returncode == 0, output(deleted)
    assert "kept: in use by VirtualMachine/peer" in output(deleted)
    assert "web-1_root.qcow2" in pool_volumes(recon)


def test_a_template_under_kept_disks_is_not_pruned_and_the_rest_goes_on(
    recon: Recon, applied: Path
) -> None:
    # Remove every guest and the Template; prune keeps the disks (no --delete-volumes).
    image = template_image(recon)
    leave_only_the_network_and_policy(applied)
    plan = recon("diff", "-f", applied, "--prune", "-o", "json")
    assert plan.returncode == 1, output(plan)
    changes = {c["resource"] for c in json.loads(plan.stdout)["changes"]}
    assert "VirtualMachine/web-1" in changes
    assert "Template/debian-12-base" not in changes  # web-1's kept root backs onto it
    result = recon("apply", "-f", applied, "--prune")
    assert result.returncode == 0, output(result)
    said = output(result)
    assert "Template/debian-12-base is not pruned: its image is the backing file of" in said
    assert "web-1_root.qcow2" in said
    volumes = pool_volumes(recon)
    assert {image, "web-1_root.qcow2"} <= volumes
    # A pool that still holds the kept disks is refused the same way, and no run fails on it.
    assert "StoragePool/default is not pruned: it still holds" in said
    again = recon("apply", "-f", applied, "--prune")
    assert again.returncode == 0, output(again)
    # Deleting the template by name is refused too, naming the volume.
    refused = recon("delete", "template", "debian-12-base")
    assert refused.returncode == 1, output(refused)
    assert "web-1_root.qcow2" in output(refused)
    assert image in pool_volumes(recon)


def test_prune_with_delete_volumes_frees_the_template_and_pool_in_one_run(
    recon: Recon, applied: Path
) -> None:
    leave_only_the_network_and_policy(applied)
    result = recon("apply", "-f", applied, "--prune", "--delete-volumes")
    assert result.returncode == 0, output(result)
    assert "not pruned" not in output(result)
    objects = recon.objects()
    gone = ("Template/", "StoragePool/", "VirtualMachine/")
    assert not any(ref.startswith(gone) for ref in objects)


def test_dropping_a_disks_template_is_a_replace(recon: Recon, applied: Path) -> None:
    edit(applied / "vms" / "web-1.yaml", "      template: debian-12-base\n", "")
    result = recon("diff", "-f", applied, "-o", "json")
    assert result.returncode == 1, output(result)
    changes = json.loads(result.stdout)["changes"]
    change = next(c for c in changes if c["resource"] == "VirtualMachine/web-1")
    fields = {f["path"]: f["disruption"] for f in change["fields"]}
    assert fields["disks[root].template"] == "replace"
    assert change["action"] == "replace"


def test_a_guest_keeps_a_disk_named_before_the_separator(
    recon: Recon, applied: Path, other_tool: OtherTool
) -> None:
    """Hosts applied by an earlier recon have `<guest>-<disk>` volumes: the guest keeps its
    disk through a redefinition (no new, empty volume under the new name)."""
    with other_tool(recon.host_xml) as conn:
        pool = conn.storagePoolLookupByName("default")
        dom = conn.lookupByName("db-1")
        old = pool.storageVolLookupByName("db-1_data.qcow2")
        legacy = pool.createXML(
            "<volume><name>db-1-data.qcow2</name><capacity>53687091200</capacity>"
            "<target><format type='qcow2'/></target></volume>"
        )
        legacy_path = legacy.path()
        conn.defineXML(dom.XMLDesc(0).replace(old.path(), legacy_path))
        old.delete()
    assert recon("diff", "-f", applied).returncode == 0
    edit(applied / "vms" / "db-1.yaml", "  cpus: 2\n", "  cpus: 1\n")
    recon.ok("apply", "-f", applied)
    assert "db-1_data.qcow2" not in pool_volumes(recon)
    with other_tool(recon.host_xml) as conn:
        assert legacy_path in conn.lookupByName("db-1").XMLDesc(0)
    assert _disks(recon, "db-1") >= {"disks[data].size", "disks[root].size"}
    assert recon("diff", "-f", applied).returncode == 0


def test_guests_behind_a_symlinked_directory_are_not_pruned(recon: Recon, applied: Path) -> None:
    real = applied.parent / "real-vms"
    (applied / "vms").rename(real)
    (applied / "vms").symlink_to(real, target_is_directory=True)
    result = recon("diff", "-f", applied, "--prune", "-o", "json")
    assert result.returncode == 0, output(result)  # web-1 and db-1 are read, nothing to do
    assert json.loads(result.stdout)["changes"] == []
