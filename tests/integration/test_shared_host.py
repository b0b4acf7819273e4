"""One libvirtd, two drivers: a QEMU VM and an LXC container on one network. Networks, pools and
template images belong to the host, but each connection lists only its own driver's guests:
recon must never prune or delete a shared object that a guest of the other driver uses. And a
running guest whose interface lost its bridge (the network was recreated under it) is drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.conftest import output
from tests.integration.conftest import API, Host, HostRecon, Scene, free_subnet
from tests.integration.test_lxc import apply_or_skip, container_scene


def _write(directory: Path, documents: list[dict[str, Any]]) -> None:
    directory.mkdir(exist_ok=True)
    for old in directory.iterdir():
        old.unlink()
    for doc in documents:
        name = f"{doc['kind']}-{doc['metadata']['name']}.yaml"
        (directory / name).write_text(yaml.safe_dump(doc, sort_keys=False))


def _network(name: str) -> dict[str, Any]:
    subnet = free_subnet()
    return {
        "apiVersion": API,
        "kind": "Network",
        "metadata": {"name": name},
        "spec": {"mode": "isolated", "ipv4": {"address": f"{subnet}.1/24"}},
    }


def _vm(name: str, network: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "VirtualMachine",
        "metadata": {"name": name},
        "spec": {
            "cpus": 1,
            "memory": "128Mi",
            "bootOrder": ["disk"],
            "interfaces": [{"network": network}],
            "state": "Running",
        },
    }


def test_a_network_the_other_drivers_guest_uses_is_not_pruned(
    host: Host, scene: Scene, lxc: Any
) -> None:
    # The VM's set, through qemu:///system, with its own home.
    qemu = HostRecon(scene.work / "home-qemu", scene.work, host.uri)
    vm_dir, vm_set = scene.work / "vmset", f"{scene.prefix}q"
    net, vm = scene.name("net"), scene.name("vm")
    network = _network(net)
    _write(vm_dir, [network, _vm(vm, net)])
    qemu.ok("apply", "-f", vm_dir, "--set", vm_set)
    # The container's set, through lxc:///system (the scene's recon), on the same network.
    ct = container_scene(scene, interfaces=[{"network": net}])
    apply_or_skip(scene)
    assert lxc.lookupByName(ct).isActive()
    # The VM's set drops its VM and the network: the VM goes, the network stays.
    _write(vm_dir, [])
    result = qemu("apply", "-f", vm_dir, "--set", vm_set, "--prune", "--allow-empty")
    assert result.returncode == 0, output(result)
    said = output(result)
    assert f"Network/{net} is not pruned: it is in use by Container/{ct} on lxc:///system" in said
    assert vm not in [d.name() for d in host.conn.listAllDomains(0)]
    assert host.conn.networkLookupByName(net).isActive()
    refused = qemu("delete", "network", net)
    assert refused.returncode == 1, output(refused)
    assert f"Container/{ct} on lxc:///system" in output(refused)
    assert host.conn.networkLookupByName(net).isActive()


def test_a_guest_whose_interface_lost_its_bridge_is_drift(host: Host, scene: Scene) -> None:
    net, vm = scene.name("net"), scene.name("vm")
    scene.put("Network", "net", _network(net)["spec"])
    scene.vm("vm", interfaces=[{"network": net}], state="Running")
    scene.apply()
    scene.converged()
    # Someone restarts the network: its bridge is made again, without the VM's tap device.
    network = host.conn.networkLookupByName(net)
    network.destroy()
    network.create()
    pending = scene.diff()
    assert pending.returncode == 1, output(pending)
    assert f"interfaces[0].network: {net} (off its bridge" in pending.stdout
    scene.apply("--shutdown-timeout", "2")
    assert host.domain(vm).isActive()
    scene.converged()


def test_one_set_on_two_drivers_prunes_nothing_the_other_drivers_guests_use(
    host: Host, scene: Scene, lxc: Any
) -> None:
    """As a new user does it: both connections apply the same set (the scene's), each with
    its own home; a prune through qemu:///system sees the container's pool, template and
    network as the set's, unnamed by its files."""
    qemu = HostRecon(scene.work / "home-qemu", scene.work, host.uri)
    vm_dir = scene.work / "vmset"
    net, vm = scene.name("net"), scene.name("vm")
    network = _network(net)
    _write(vm_dir, [network, _vm(vm, net)])
    qemu.ok("apply", "-f", vm_dir, "--set", scene.prefix)
    ct = container_scene(scene, interfaces=[{"network": net}])
    apply_or_skip(scene)
    template, pool = scene.name("root"), scene.name("pool")
    # The VM's files keep only the network; the prune removes the VM and nothing else.
    _write(vm_dir, [network])
    result = qemu("apply", "-f", vm_dir, "--set", scene.prefix, "--prune")
    assert result.returncode == 0, output(result)
    said = output(result)
    assert f"Template/{template} is not pruned: it is in use by Container/{ct}" in said
    assert f"StoragePool/{pool} is not pruned" in said
    assert vm not in [d.name() for d in host.conn.listAllDomains(0)]
    assert qemu("get", "template", template).returncode == 0  # still on the host
    refused = qemu("delete", "template", template)
    assert refused.returncode == 1, output(refused)
    assert f"in use by Container/{ct} on lxc:///system" in output(refused)
    assert lxc.lookupByName(ct).isActive()
    assert host.conn.storagePoolLookupByName(pool).isActive()
    # Named through qemu:///system too, the pool the set applied through lxc:///system is
    # said to be the set's on both connections (never silently).
    _write(vm_dir, [network, scene.documents[f"StoragePool/{pool}"]])
    planned = qemu("diff", "-f", vm_dir, "--set", scene.prefix)
    assert (
        f"StoragePool/{pool} belongs to set {scene.prefix} through lxc:///system as well"
    ) in output(planned), output(planned)
