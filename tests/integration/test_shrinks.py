"""Lowering a running guest's vCPUs or memory on a real libvirtd + QEMU.

A shrink needs the guest's help: vCPU hot-unplug in its OS, a balloon driver for memory.
These guests have no OS (they idle in their firmware), so every shrink is refused; recon must
say at plan time what the shrink depends on, fail with what the guest lacks and what to do
(QEMU's own text kept as detail), and leave the saved definition as it was, so the next boot
is not changed by a change that failed.
"""

from __future__ import annotations

import libvirt

from tests.conftest import output
from tests.integration.conftest import Host, Scene

LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE
CONFIG = libvirt.VIR_DOMAIN_AFFECT_CONFIG
INACTIVE = libvirt.VIR_DOMAIN_XML_INACTIVE


def shrink(scene: Scene, name: str, **spec: object) -> tuple[str, str]:
    """Edit the VM's spec, diff and apply; returns (the plan, apply's stdout + stderr)."""
    scene.spec("VirtualMachine", name).update(spec)
    scene.write()
    plan = scene.diff()
    assert plan.returncode == 1, output(plan)
    result = scene.recon("apply", *scene.files)
    assert result.returncode == 1, output(result)
    assert "Traceback" not in output(result)
    return plan.stdout, output(result)


def test_removing_a_boot_vcpu_fails_saying_why_and_leaves_the_definition(
    host: Host, scene: Scene
) -> None:
    name = scene.vm(cpus=2, maxCpus=4)
    scene.apply()
    before = host.domain(name).ID()
    plan, result = shrink(scene, name, cpus=1)
    assert "cpus: 2 -> 1  (live)" in plan
    assert "needs vCPU hot-unplug in the guest" in plan
    assert f"failed: VirtualMachine/{name} (update)" in result
    assert "vCPUs the guest booted with cannot be removed while it runs" in result
    # QEMU's (libvirt's) own words, as detail.
    assert "failed to find appropriate hotpluggable vcpus" in result
    dom = host.domain(name)
    assert dom.ID() == before
    assert dom.vcpusFlags(LIVE) == 2
    assert dom.vcpusFlags(CONFIG) == 2, "the failed change was saved for the next boot"
    assert "cpus: 2 -> 1  (live)" in scene.diff().stdout  # still pending, never "in sync"


def test_removing_a_hot_added_vcpu_from_a_guest_without_an_os_says_what_it_lacks(
    host: Host, scene: Scene
) -> None:
    name = scene.vm(cpus=1, maxCpus=2)
    scene.apply()
    scene.spec("VirtualMachine", name)["cpus"] = 2
    scene.write()
    scene.apply()  # hot-added: QEMU could unplug this one, if the guest agreed
    _, result = shrink(scene, name, cpus=1)
    assert "the guest did not accept the vCPU unplug" in result
    assert "acpi: device unplug request for not supported device type" in result
    dom = host.domain(name)
    assert dom.vcpusFlags(LIVE) == 2
    assert dom.vcpusFlags(CONFIG) == 2


def test_a_memory_shrink_without_a_balloon_driver_leaves_the_guest_and_definition(
    host: Host, scene: Scene
) -> None:
    name = scene.vm(memory="256Mi", maxMemory="512Mi")
    scene.apply()
    plan, result = shrink(scene, name, memory="128Mi")
    assert "memory: 256Mi -> 128Mi  (live)" in plan
    assert "needs the guest's balloon driver" in plan
    assert "the guest did not give the memory up" in result
    assert "virtio_balloon" in result
    dom = host.domain(name)
    assert dom.info()[2] == 256 * 1024  # memory the guest has, in KiB
    inactive = libvirt_memory_kib(dom)
    assert inactive == 256 * 1024, "the failed change was saved for the next boot"
    assert "memory: 256Mi -> 128Mi  (live)" in scene.diff().stdout


def libvirt_memory_kib(dom: libvirt.virDomain) -> int:
    from xml.etree import ElementTree as ET

    found = ET.fromstring(dom.XMLDesc(INACTIVE)).find("currentMemory")
    assert found is not None and found.text is not None
    return int(found.text)
