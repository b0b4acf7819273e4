"""recon against a real libvirtd + QEMU: networks, pools, template images, VM disks, live vCPU
and memory changes, restarts of a guest that ignores ACPI, delete with volumes.

Guests have no OS: a 128Mi domain idles in its firmware, which is all these tests need (and
which ignores an ACPI shutdown, the case --shutdown-timeout exists for). Everything is checked
from the host side (libvirt, qemu-img, the files), not from what recon says about itself.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path
from xml.etree import ElementTree as ET

import libvirt
import pytest

from tests.conftest import SECRET, output
from tests.integration.conftest import Host, Scene, free_subnet

LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE
MiB = 1024 * 1024


def kib(xml_text: str, tag: str) -> int:
    found = ET.fromstring(xml_text).find(tag)
    assert found is not None and found.text is not None, f"no <{tag}>"
    assert found.get("unit", "KiB") == "KiB"
    return int(found.text)


def qemu_img_info(path: Path) -> dict[str, object]:
    # -U: the image may be open by a running guest.
    out = subprocess.run(
        ["qemu-img", "info", "-U", "--output", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    info: dict[str, object] = json.loads(out)
    return info


def test_network_is_created_and_active(host: Host, scene: Scene) -> None:
    subnet = free_subnet()
    name = scene.put(
        "Network",
        "net",
        {
            "mode": "isolated",
            "ipv4": {
                "address": f"{subnet}.1/24",
                "dhcp": {"start": f"{subnet}.10", "end": f"{subnet}.20"},
            },
        },
    )
    scene.apply()
    net = host.conn.networkLookupByName(name)
    assert net.isActive() and net.autostart()
    assert f"address='{subnet}.1'" in net.XMLDesc(0)
    scene.converged()


def test_pool_is_created_and_its_directory_exists(host: Host, scene: Scene) -> None:
    name = scene.pool()
    assert not scene.pool_dir.exists()
    scene.apply()
    pool = host.conn.storagePoolLookupByName(name)
    assert pool.isActive()
    assert scene.pool_dir.is_dir()
    assert f"<path>{scene.pool_dir}</path>" in pool.XMLDesc(0)
    scene.converged()


def test_template_is_uploaded_into_the_pool_as_the_same_file(host: Host, scene: Scene) -> None:
    scene.pool()
    name, image = scene.template()
    result = scene.apply()
    assert f"Template/{name}: image created" in result.stderr
    uploaded = scene.pool_dir / f"template-{name}.qcow2"
    assert uploaded.is_file()
    assert (
        hashlib.sha256(uploaded.read_bytes()).hexdigest()
        == hashlib.sha256(image.read_bytes()).hexdigest()
    )
    assert qemu_img_info(uploaded)["format"] == "qcow2"
    scene.converged()


def test_vm_runs_with_a_qcow2_disk_backed_by_the_template(host: Host, scene: Scene) -> None:
    pool = scene.pool()
    template, _ = scene.template()
    name = scene.vm(disks=[{"name": "root", "pool": pool, "size": "64Mi", "template": template}])
    scene.apply()
    dom = host.domain(name)
    assert dom.isActive()
    disk = scene.pool_dir / f"{name}_root.qcow2"
    info = qemu_img_info(disk)
    assert info["format"] == "qcow2"
    assert info["virtual-size"] == 64 * MiB
    assert info["full-backing-filename"] == str(scene.pool_dir / f"template-{template}.qcow2")
    assert info["backing-filename-format"] == "qcow2"
    assert f"<source file='{disk}'" in dom.XMLDesc(0)
    scene.converged()


def test_vm_runs_under_kvm_exactly_when_libvirt_offers_it(host: Host, scene: Scene) -> None:
    """/dev/kvm existing is not enough (QEMU may not be allowed to open it): recon asks
    libvirt's domain capabilities, and so does this test."""
    name = scene.vm()
    scene.apply()
    assert ET.fromstring(host.live_xml(name)).get("type") == host.virttype
    footer = scene.recon.ok("get", "-o", "wide").stdout
    assert f"({host.virttype}):" in footer


def test_vcpus_change_live_within_max_cpus(host: Host, scene: Scene) -> None:
    name = scene.vm(cpus=1, maxCpus=2)
    scene.apply()
    before = host.domain(name).ID()
    scene.spec("VirtualMachine", name)["cpus"] = 2
    scene.write()
    plan = scene.diff()
    assert "cpus: 1 -> 2  (live)" in plan.stdout, output(plan)
    result = scene.apply()
    assert "cpus 1 -> 2 live" in result.stderr
    dom = host.domain(name)
    assert dom.ID() == before, "the guest was restarted"
    assert dom.vcpusFlags(LIVE) == 2
    assert "current='2'" in host.live_xml(name) or "current=" not in host.live_xml(name)
    scene.converged()


def test_memory_grows_live_by_dimm_hotplug(host: Host, scene: Scene) -> None:
    name = scene.vm(memory="128Mi", maxMemory="512Mi")
    scene.apply()
    before = host.domain(name).ID()
    scene.spec("VirtualMachine", name)["memory"] = "256Mi"
    scene.write()
    plan = scene.diff()
    assert "memory: 128Mi -> 256Mi  (live)" in plan.stdout, output(plan)
    result = scene.apply()
    assert "memory 128Mi -> 256Mi live by DIMM hotplug" in result.stderr
    dom = host.domain(name)
    assert dom.ID() == before, "the guest was restarted"
    live = host.live_xml(name)
    assert kib(live, "currentMemory") == 256 * 1024
    assert kib(live, "memory") == 256 * 1024
    dimms = ET.fromstring(live).findall("devices/memory[@model='dimm']")
    assert len(dimms) == 1
    assert dom.info()[2] == 256 * 1024  # memory the guest has, in KiB
    # The next boot gets the same memory from the definition, in one piece.
    inactive = str(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    assert kib(inactive, "memory") == 256 * 1024
    assert not ET.fromstring(inactive).findall("devices/memory")
    scene.converged()


def test_memory_beyond_max_memory_is_a_restart(host: Host, scene: Scene) -> None:
    name = scene.vm(memory="128Mi", maxMemory="256Mi")
    scene.apply()
    scene.spec("VirtualMachine", name).update(memory="384Mi", maxMemory="512Mi")
    scene.write()
    plan = scene.diff()
    assert "memory: 128Mi -> 384Mi  (restart)" in plan.stdout, output(plan)


def test_restart_forces_off_a_guest_that_ignores_shutdown_and_says_so(
    host: Host, scene: Scene
) -> None:
    name = scene.vm(bootOrder=["disk"])
    scene.apply()
    before = host.domain(name).ID()
    scene.spec("VirtualMachine", name)["bootOrder"] = ["network", "disk"]
    scene.write()
    result = scene.apply("--shutdown-timeout", "2")
    assert f"{name}: no clean shutdown after 2s; forced off" in result.stderr
    assert "forced off, restarted" in result.stderr
    assert "1 restarted" in result.stdout
    dom = host.domain(name)
    assert dom.isActive() and dom.ID() != before
    boots = [b.get("dev") for b in ET.fromstring(host.live_xml(name)).iterfind("os/boot")]
    assert boots == ["network", "hd"]
    scene.converged()


def test_stopping_a_guest_that_ignores_shutdown_forces_it_off(host: Host, scene: Scene) -> None:
    name = scene.vm()
    scene.apply()
    scene.spec("VirtualMachine", name)["state"] = "Stopped"
    scene.write()
    result = scene.apply("--shutdown-timeout", "1")
    assert "no clean shutdown after 1s; forced off, stopped" in result.stderr
    assert not host.domain(name).isActive()
    scene.converged()


def test_delete_with_delete_volumes_removes_the_files(host: Host, scene: Scene) -> None:
    pool = scene.pool()
    template, _ = scene.template()
    name = scene.vm(disks=[{"name": "root", "pool": pool, "size": "64Mi", "template": template}])
    scene.apply()
    disk = scene.pool_dir / f"{name}_root.qcow2"
    assert disk.is_file()
    result = scene.recon.ok("delete", "vm", name, "--delete-volumes")
    assert "1 deleted" in result.stdout
    assert not disk.exists()
    with pytest.raises(libvirt.libvirtError):
        host.domain(name)
    # The template image stays: it belongs to the Template, not to the guest.
    assert (scene.pool_dir / f"template-{template}.qcow2").is_file()


def test_a_container_is_refused_at_plan_time_on_qemu(host: Host, scene: Scene) -> None:
    pool = scene.pool()
    tar = scene.work / "root.tar"
    tar.write_bytes(b"\0" * 10240)
    template = scene.put(
        "Template",
        "ct",
        {
            "osName": "debian",
            "version": "12",
            "format": "tar",
            "pool": pool,
            "source": {
                "file": {"path": str(tar), "sha256": hashlib.sha256(tar.read_bytes()).hexdigest()}
            },
        },
    )
    name = scene.put(
        "Container",
        "ct",
        {
            "template": template,
            "cpus": 1,
            "memory": "128Mi",
            "disk": {"pool": pool, "size": "64Mi"},
        },
    )
    for verb, code in (("diff", 2), ("apply", 1)):
        result = scene.recon(verb, *scene.files)
        assert result.returncode == code, output(result)
        assert f"Container/{name}: kind: Container is not supported by the" in result.stderr
        assert "QEMU/KVM runs virtual machines only" in result.stderr
        assert "Traceback" not in output(result)
    # Refused before any action: not even the pool was made.
    assert not any(p.name().startswith(scene.prefix) for p in host.conn.listAllStoragePools(0))


def test_efi_without_firmware_is_refused_at_plan_time(host: Host, scene: Scene) -> None:
    caps = host.conn.getDomainCapabilities(None, None, None, host.virttype, 0)
    if re.search(r"<value>efi</value>|<loader[^>]*>\s*<value>/", caps):
        pytest.skip("this host has EFI firmware (OVMF) installed: nothing to refuse")
    name = scene.vm(firmware="efi")
    result = scene.recon("apply", *scene.files)
    assert result.returncode == 1, output(result)
    assert f"VirtualMachine/{name}: spec.firmware: firmware: efi is not available" in result.stderr
    assert "OVMF" in result.stderr


def test_a_password_the_guest_agent_did_not_take_is_not_recorded_as_applied(
    host: Host, scene: Scene
) -> None:
    """No OS, so no guest agent: the apply fails with libvirt's reason, and the change stays
    in the plan for the next run instead of being recorded as done."""
    name = scene.vm()
    scene.apply()
    scene.spec("VirtualMachine", name)["guest"] = {
        "users": [{"name": "admin", "password": {"valueFrom": {"env": "WEB_ADMIN_PASSWORD"}}}]
    }
    scene.write()
    result = scene.recon("apply", *scene.files)
    assert result.returncode == 1, output(result)
    assert "cannot set user admin: the guest agent does not answer" in result.stdout
    assert SECRET not in output(result)
    again = scene.diff()
    assert again.returncode == 1, output(again)
    assert "guest.users[admin].password.valueFrom.env" in again.stdout


def test_a_template_image_under_a_kept_disk_is_not_deleted(host: Host, scene: Scene) -> None:
    """The disk of a deleted guest (volumes kept) still backs onto the template's image: a
    delete of the Template is refused, naming the disk, and the disk still opens."""
    pool = scene.pool()
    template, _ = scene.template()
    name = scene.vm(disks=[{"name": "root", "pool": pool, "size": "64Mi", "template": template}])
    scene.apply()
    disk = scene.pool_dir / f"{name}_root.qcow2"
    image = scene.pool_dir / f"template-{template}.qcow2"
    scene.recon.ok("delete", "vm", name)  # volumes kept
    refused = scene.recon("delete", "template", template)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert disk.name in refused.stdout + refused.stderr
    assert image.is_file()
    assert qemu_img_info(disk)["backing-filename"] == str(image)
