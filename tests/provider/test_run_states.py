"""What state a guest, a pool and a network are in, as recon shows it: paused, crashed and
shut-off guests told apart (libvirt's virDomainGetState), `state: Running` healing a paused
guest by resuming it; pools and networks shown Active or Inactive as they are."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from reconciler.cli.objects import status
from reconciler.cli.render import render_inventory
from reconciler.model.refs import ResourceRef
from reconciler.providers.libvirt.provider import LibvirtProvider
from tests.conftest import OtherTool, Recon, edit, output

WEB = "VirtualMachine/web-1"


def state_of(recon: Recon, ref: str) -> tuple[str, str | None]:
    listed = {
        f"{o['kind']}/{o['metadata']['name']}": o["status"]
        for o in json.loads(recon.ok("get", "-o", "json").stdout)["items"]
    }
    return listed[ref]["state"], listed[ref].get("stateReason")


def test_a_paused_guest_shows_paused_and_state_running_resumes_it(
    recon: Recon, applied: Path, other_tool: OtherTool
) -> None:
    with other_tool(recon.host_xml) as conn:  # virsh suspend, behind recon's back
        conn.lookupByName("web-1").suspend()
    state, why = state_of(recon, WEB)
    assert state == "Paused"
    assert why and "paused" in why
    table = recon.ok("get").stdout
    assert any(
        line.startswith("VirtualMachine") and "web-1" in line and "Paused" in line
        for line in table.splitlines()
    ), table

    diff = recon("diff", "-f", applied)
    assert diff.returncode == 1, output(diff)
    assert "state: Paused -> Running" in diff.stdout + diff.stderr, output(diff)
    result = recon.ok("apply", "-f", applied)
    assert "resumed" in result.stderr, output(result)
    assert state_of(recon, WEB)[0] == "Running"
    assert recon("diff", "-f", applied).returncode == 0


def test_a_paused_guest_that_should_stop_is_stopped(
    recon: Recon, applied: Path, other_tool: OtherTool
) -> None:
    with other_tool(recon.host_xml) as conn:
        conn.lookupByName("web-1").suspend()
    edit(applied / "vms" / "web-1.yaml", "  state: Running\n", "  state: Stopped\n")
    result = recon.ok("apply", "-f", applied, "--shutdown-timeout", "5")
    assert "stopped" in result.stderr, output(result)
    assert state_of(recon, WEB)[0] == "Stopped"
    assert recon("diff", "-f", applied).returncode == 0


def test_a_crashed_guest_shows_crashed_and_state_running_starts_it_again(
    recon: Recon, applied: Path
) -> None:
    # The hypervisor kept web-1 after a crash (on_crash=preserve): the test driver loads that
    # run state (6, VIR_DOMAIN_CRASHED) from the node file.
    text = recon.host_xml.read_text()
    start = text.index("<name>web-1</name>")
    end = text.index("</domain>", start)
    block = text[start:end]
    assert block.count(">1</test:runstate>") == 1, block[-300:]
    recon.host_xml.write_text(
        text[:start] + block.replace(">1</test:runstate>", ">6</test:runstate>") + text[end:]
    )
    assert state_of(recon, WEB) == ("Crashed", "crashed (the hypervisor kept it)")
    result = recon.ok("apply", "-f", applied)
    assert "it had crashed: forced off" in result.stderr and "started" in result.stderr, output(
        result
    )
    assert state_of(recon, WEB)[0] == "Running"
    assert recon("diff", "-f", applied).returncode == 0


# --- in this process: libvirt's test driver as it ships (test:///default) ----------------------


@pytest.fixture
def default_host() -> Iterator[LibvirtProvider]:
    provider = LibvirtProvider(uri="test:///default")
    yield provider
    provider.close()


def observed(provider: LibvirtProvider, kind: str, name: str) -> dict[str, object]:
    return status(provider.observe().objects[ResourceRef(kind, name)])


def test_shut_off_guests_say_how_they_stopped(default_host: LibvirtProvider) -> None:
    dom = default_host.conn.lookupByName("test")
    assert observed(default_host, "VirtualMachine", "test")["state"] == "Running"
    dom.shutdown()
    seen = observed(default_host, "VirtualMachine", "test")
    assert (seen["state"], seen["stateReason"]) == (
        "Stopped",
        "shut down (by the guest or a shutdown request)",
    )
    dom.create()
    dom.destroy()
    seen = observed(default_host, "VirtualMachine", "test")
    assert (seen["state"], seen["stateReason"]) == ("Stopped", "forced off (destroyed)")
    dom.create()
    dom.suspend()
    seen = observed(default_host, "VirtualMachine", "test")
    assert (seen["state"], seen["stateReason"]) == ("Paused", "paused by an operator or a tool")
    dom.resume()


def test_inactive_networks_and_pools_are_shown_inactive(default_host: LibvirtProvider) -> None:
    conn: libvirt.virConnect = default_host.conn
    assert observed(default_host, "Network", "default")["state"] == "Active"
    assert observed(default_host, "StoragePool", "default-pool")["state"] == "Active"
    conn.networkLookupByName("default").destroy()
    conn.storagePoolLookupByName("default-pool").destroy()
    try:
        observation = default_host.observe()
        assert status(observation.objects[ResourceRef("Network", "default")])["state"] == (
            "Inactive"
        )
        pool = observation.objects[ResourceRef("StoragePool", "default-pool")]
        assert status(pool)["state"] == "Inactive"
        table = render_inventory(observation, list(observation.objects.values()), False)
        rows = {tuple(line.split()[:3]) for line in table.splitlines()}
        assert ("Network", "default", "Inactive") in rows, table
        assert ("StoragePool", "default-pool", "Inactive") in rows, table
    finally:
        conn.networkLookupByName("default").create()
        conn.storagePoolLookupByName("default-pool").create()
