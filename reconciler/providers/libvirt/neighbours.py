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

_OTHER = {"qemu:///system": ("lxc:///system", "lxc"), "lxc:///system": ("qemu:///system", "qemu")}


def observe(host: Host) -> dict[str, Any] | None:
    """{"uri": ..., "guests": [{"resource", "managed", "memory", "guaranteed"}, ...]} for the
    other driver's running guests, {"uri": ..., "error": ...} when it cannot be read, or None
    where there is no other local driver to read."""
    other = _OTHER.get(host.uri)
    if other is None or not host.local:
        return None
    uri, driver = other
    try:
        conn = libvirt.openReadOnly(uri)
    except libvirt.libvirtError as exc:
        return {"uri": uri, "error": exc.get_error_message() or str(exc)}
    try:
        neighbour = Host(conn, uri, driver, dict(CAPABILITIES[driver]), True, None, host.home)
        objects: dict[ResourceRef, Observed] = {}
        guest_observe.observe(neighbour, objects, {}, None)
    except libvirt.libvirtError as exc:
        return {"uri": uri, "error": exc.get_error_message() or str(exc)}
    finally:
        conn.close()
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
