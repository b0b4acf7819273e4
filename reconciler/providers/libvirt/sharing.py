"""What one libvirtd shares between its drivers: pools, networks and template images belong to
the host, but a connection lists only its own driver's domains. So that recon never prunes or
deletes what a guest of the other driver uses, a local qemu:///system or lxc:///system
connection also reads (read-only, when it can) the other driver's domains: the files they run
on (disks, filesystems) and the networks and bridges their interfaces sit on.

Also here: a running guest whose interface is no longer on its network's bridge (the network
was destroyed and defined again under it) is drift, so that the plan restarts it back on.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from xml.etree import ElementTree as ET

import libvirt

from reconciler.model.refs import ResourceRef
from reconciler.providers.base import Observed
from reconciler.providers.libvirt import xml as lx
from reconciler.providers.libvirt.common import Host, unless_vanished

_PEERS = {"qemu:///system": "lxc:///system", "lxc:///system": "qemu:///system"}
_SYS_NET = Path("/sys/class/net")


def peer_uri(host: Host) -> str | None:
    """The other local driver of the same libvirtd, or None (a remote host, the embedded
    host, a session daemon, another driver)."""
    if not host.local or host.embedded is not None:
        return None
    return _PEERS.get(host.uri)


def open_peer(host: Host) -> tuple[str, libvirt.virConnect | str] | None:
    """A read-only connection to the other local driver (its URI and the connection, or the
    reason it cannot be reached), or None where there is none. One per observation: what its
    guests use (`other_driver_users`) and what RAM they hold (`neighbours.observe`) are read
    through it; the caller closes it."""
    uri = peer_uri(host)
    if uri is None:
        return None
    try:
        return uri, libvirt.openReadOnly(uri)
    except libvirt.libvirtError as exc:
        return uri, exc.get_error_message() or str(exc)


def other_driver_users(
    host: Host, peer: tuple[str, libvirt.virConnect | str] | None = None
) -> dict[str, list[str]]:
    """What the other driver's domains use: `file:PATH`, `network:NAME`, `bridge:NAME` ->
    the domains ("Container/ct-1 on lxc:///system"). Empty when there is no other driver or it
    cannot be reached (its daemon part not installed): then nothing of it can use anything.
    Through `peer` when given (left open), else a connection of its own."""
    own = peer is None
    if own:
        peer = open_peer(host)
    if peer is None:
        return {}
    uri, conn = peer
    if isinstance(conn, str):
        return {}
    try:
        found: dict[str, list[str]] = {}
        for dom in conn.listAllDomains(0):
            with unless_vanished():
                text = dom.XMLDesc(0)
                kind = "Container" if "lxc" in uri else "VirtualMachine"
                who = f"{kind}/{dom.name()} on {uri}"
                for key in _uses(text, stamped=True):
                    found.setdefault(key, []).append(who)
        return found
    except libvirt.libvirtError:
        return {}
    finally:
        if own:
            conn.close()


def _uses(xml_text: str, stamped: bool = False) -> Iterable[str]:
    """What a domain uses: its files, networks and bridges; with `stamped`, also the
    Templates recon's stamp says it was made from (a container needs its template to be
    made again, though nothing backs onto a container template's image)."""
    root = ET.fromstring(xml_text)
    if stamped:
        stamp = lx.parse_domain(xml_text).stamp
        for key, value in stamp.applied.items() if stamp is not None else ():
            if (key == "template" or key.endswith("].template")) and isinstance(value, str):
                yield f"template:{value}"
    for source in [
        *root.iterfind("devices/disk/source"),
        *root.iterfind("devices/filesystem/source"),
    ]:
        if source.get("file"):
            yield f"file:{source.get('file')}"
    for source in root.iterfind("devices/interface/source"):
        if source.get("network"):
            yield f"network:{source.get('network')}"
        if source.get("bridge"):
            yield f"bridge:{source.get('bridge')}"


def network_users(objects: dict[ResourceRef, Observed], elsewhere: dict[str, list[str]]) -> None:
    """Each Network's in_use_by: the guests on this connection (managed or not) and on the
    other driver whose interfaces are on it, by name or by its bridge."""
    by_network: dict[str, set[str]] = {}
    for obs in objects.values():
        if obs.ref.kind not in ("VirtualMachine", "Container"):
            continue
        for key, value in obs.fields.items():
            if key.startswith("interfaces[") and key.endswith("].network") and value:
                by_network.setdefault(str(value).split(" (")[0], set()).add(str(obs.ref))
    for obs in objects.values():
        if obs.ref.kind != "Network":
            continue
        users = set(by_network.get(obs.ref.name, ()))
        users.update(elsewhere.get(f"network:{obs.ref.name}", ()))
        bridge = obs.fields.get("bridge") or obs.extra.get("bridge")
        if bridge:
            users.update(elsewhere.get(f"bridge:{bridge}", ()))
        obs.in_use_by = tuple(sorted(users))


def template_users(objects: dict[ResourceRef, Observed], elsewhere: dict[str, list[str]]) -> None:
    """A Template whose image a guest of the other driver runs on, or that such a guest
    was made from, is in use: a prune from this connection leaves it."""
    for obs in objects.values():
        if obs.ref.kind != "Template":
            continue
        users = set(obs.in_use_by)
        users.update(elsewhere.get(f"template:{obs.ref.name}", ()))
        for path in obs.volumes:
            users.update(elsewhere.get(f"file:{path}", ()))
        obs.in_use_by = tuple(sorted(users))


def domains_on_network(host: Host, network: str, bridge: str | None) -> list[str]:
    """The domains of this connection and the other driver whose interfaces are on the
    network now (read at the time of a delete, not from the observation)."""
    users = []
    for dom in host.conn.listAllDomains(0):
        with unless_vanished():
            keys = set(_uses(dom.XMLDesc(0)))
            if f"network:{network}" in keys or (bridge and f"bridge:{bridge}" in keys):
                users.append(dom.name())
    elsewhere = other_driver_users(host)
    users += elsewhere.get(f"network:{network}", [])
    if bridge:
        users += elsewhere.get(f"bridge:{bridge}", [])
    return sorted(set(users))


def mark_off_bridge(host: Host, objects: dict[ResourceRef, Observed]) -> None:
    """A running guest's interface on a network whose bridge its tap device is no longer
    attached to: its `interfaces[i].network` reads `NAME (off its bridge)`, a difference the
    plan restarts the guest for. From the taps the bulk observation read in each running
    guest's live XML (no call to libvirt here); only on the local host (the tap devices are
    in /sys)."""
    if not host.local or host.embedded is not None or not _SYS_NET.is_dir():
        return
    for obs in objects.values():
        for index, bridge, tap in obs.extra.get("taps", ()):
            key = f"interfaces[{index}].network"
            if key in obs.fields and _master(tap) != bridge:
                obs.fields[key] = f"{obs.fields[key]} (off its bridge {bridge})"


def _master(dev: str) -> str | None:
    """The bridge a network device is attached to, or None."""
    if "/" in dev or dev.startswith("."):
        return None
    link = _SYS_NET / dev / "master"
    try:
        return link.resolve(strict=True).name if link.is_symlink() else None
    except OSError:
        return None
