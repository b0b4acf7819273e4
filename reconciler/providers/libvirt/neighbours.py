"""The guests of the other local driver: on one host QEMU guests and LXC containers share the
RAM, whichever driver recon is connected through. Memory-guarantee admission must count them
all, so an observation through qemu:///system reads lxc:///system too (and the other way
round), read-only: those guests are never diffed, changed or pruned through this connection.
Only on the host itself and for these two URIs; where the other driver cannot be reached,
that is said, not guessed."""

from __future__ import annotations

from typing import Any

import libvirt

from reconciler.model.capabilities import CAPABILITIES
from reconciler.model.refs import ResourceRef
from reconciler.providers.base import Observed
from reconciler.providers.libvirt.common import Host
from reconciler.providers.libvirt.guests import observe as guest_observe


def observe(host: Host, peer: tuple[str, libvirt.virConnect | str] | None) -> dict[str, Any] | None:
    """{"uri": ..., "guests": [{"resource", "managed", "memory", "guaranteed"}, ...]} for the
    other driver's running guests, {"uri": ..., "error": ...} when it cannot be read, or None
    where there is no other local driver to read. `peer`: the read-only connection to it
    (sharing.open_peer), left open."""
    if peer is None:
        return None
    uri, conn = peer
    if isinstance(conn, str):
        return {"uri": uri, "error": conn}
    driver = "lxc" if uri.startswith("lxc") else "qemu"
    try:
        neighbour = Host(conn, uri, driver, dict(CAPABILITIES[driver]), True, None, host.home)
        objects: dict[ResourceRef, Observed] = {}
        guest_observe.observe(neighbour, objects, {}, None)
    except libvirt.libvirtError as exc:
        return {"uri": uri, "error": exc.get_error_message() or str(exc)}
    guests = [
        {
            "resource": str(ref),
            "managed": obs.owned,
            "memory": obs.memory_bytes,
            "guaranteed": obs.guaranteed_bytes,
        }
        for ref, obs in sorted(objects.items())
        if obs.running
    ]
    return {"uri": uri, "guests": guests}
