"""Run states on the real daemon (issue 11, item 5): a guest paused behind recon's back
(`virsh suspend`) shows Paused with why, diff says it differs from `state: Running`, and apply
resumes it; a network stopped behind recon's back shows Inactive."""

from __future__ import annotations

import json

import libvirt

from tests.conftest import output
from tests.integration.conftest import Host, Scene, free_subnet


def status_of(scene: Scene, ref: str) -> dict[str, object]:
    listed = json.loads(scene.recon.ok("get", "-o", "json").stdout)["items"]
    found = {f"{o['kind']}/{o['metadata']['name']}": o["status"] for o in listed}
    entry: dict[str, object] = found[ref]
    return entry


def test_a_paused_guest_shows_paused_and_apply_resumes_it(host: Host, scene: Scene) -> None:
    vm = scene.vm("a", state="Running")
    scene.apply()
    host.domain(vm).suspend()
    seen = status_of(scene, f"VirtualMachine/{vm}")
    assert seen["state"] == "Paused"
    assert seen["stateReason"] == "paused by an operator or a tool"
    diff = scene.diff()
    assert diff.returncode == 1 and "state: Paused -> Running" in diff.stdout + diff.stderr, output(
        diff
    )
    result = scene.apply()
    assert "resumed" in result.stderr, output(result)
    assert host.domain(vm).state()[0] == libvirt.VIR_DOMAIN_RUNNING
    scene.converged()


def test_a_stopped_network_shows_inactive(host: Host, scene: Scene) -> None:
    subnet = free_subnet()
    net = scene.put("Network", "net", {"mode": "isolated", "ipv4": {"address": f"{subnet}.1/24"}})
    scene.apply()
    assert status_of(scene, f"Network/{net}")["state"] == "Active"
    host.conn.networkLookupByName(net).destroy()
    assert status_of(scene, f"Network/{net}")["state"] == "Inactive"
    table = scene.recon.ok("get").stdout
    assert any(net in line and "Inactive" in line for line in table.splitlines()), table
