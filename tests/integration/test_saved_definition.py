"""A running guest's saved definition, changed behind recon's back on a real libvirtd + QEMU
(`virsh define` while it runs): recon diffs it and rewrites it, without restarting the guest."""

from __future__ import annotations

import re

import libvirt

from tests.conftest import output
from tests.integration.conftest import Host, Scene

INACTIVE = libvirt.VIR_DOMAIN_XML_INACTIVE


def test_a_saved_definition_changed_while_the_guest_runs_is_diffed_and_fixed(
    host: Host, scene: Scene
) -> None:
    name = scene.vm(memory="256Mi")
    scene.apply()
    dom = host.domain(name)
    running = dom.ID()
    text = re.sub(
        r"<(memory|currentMemory) unit='KiB'>\d+<",
        lambda m: f"<{m.group(1)} unit='KiB'>{160 * 1024}<",
        dom.XMLDesc(INACTIVE),
    )
    host.conn.defineXML(text)  # virsh define: the next boot would get 160Mi
    assert dom.info()[2] == 256 * 1024  # the running guest still has 256Mi

    pending = scene.diff()
    assert pending.returncode == 1, output(pending)
    assert "memory: 160Mi -> 256Mi  (none)" in pending.stdout
    assert "saved definition" in pending.stdout
    result = scene.apply()
    assert "restarted" not in result.stderr
    dom = host.domain(name)
    assert dom.ID() == running, "the guest was restarted"
    assert f"<memory unit='KiB'>{256 * 1024}</memory>" in dom.XMLDesc(INACTIVE)
    scene.converged()
