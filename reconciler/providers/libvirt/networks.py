"""Networks: observed in bulk, their XML defined and started here."""

from __future__ import annotations

import libvirt

from reconciler.model.kinds import Network
from reconciler.model.plan import Action, Change
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.providers.base import ApplyContext, Observed, ProviderError
from reconciler.providers.libvirt import sharing
from reconciler.providers.libvirt import xml as lx
from reconciler.providers.libvirt.common import (
    Host,
    check_owned,
    lookup,
    make_stamp,
    undefine_on_error,
    unless_vanished,
    via,
)


def observe(host: Host, objects: dict[ResourceRef, Observed]) -> None:
    for net in host.conn.listAllNetworks(0):
        with unless_vanished():
            parsed = lx.parse_network(net.XMLDesc(0))
            fields = dict(parsed.fields)
            fields["autostart"] = bool(net.autostart())
            ref = ResourceRef("Network", parsed.name)
            extra = {"active": bool(net.isActive()), "bridge": _bridge(net)}
            objects[ref] = Observed(ref, fields, parsed.stamp, uuid=parsed.uuid, extra=extra)


def _bridge(net: libvirt.virNetwork) -> str | None:
    """The bridge libvirt gave the network (named by it when the manifest names none)."""
    try:
        return str(net.bridgeName()) or None
    except libvirt.libvirtError:
        return None  # a network with no bridge (or one that is not running)


def apply_network(
    host: Host, change: Change, resource: Resource | None, context: ApplyContext
) -> str:
    net = lookup(host.conn.networkLookupByName, change.ref.name)
    if change.action is Action.DELETE or change.action is Action.REPLACE:
        if net is not None:
            parsed = lx.parse_network(net.XMLDesc(0))
            check_owned(change.ref, parsed.stamp, context)
            bridge = parsed.fields.get("bridge") or _bridge(net)
            users = sharing.domains_on_network(host, change.ref.name, bridge)
            if change.action is Action.DELETE and users:
                raise ProviderError(
                    f"{change.ref} is in use by {', '.join(users)}; not deleted",
                    "remove their interfaces on it (or delete those guests) first",
                )
            if net.isActive():
                net.destroy()
            net.undefine()
            net = None
        if change.action is Action.DELETE:
            return "deleted"
    assert resource is not None and isinstance(resource.manifest, Network)
    existing_uuid = None
    if net is not None:
        parsed = lx.parse_network(net.XMLDesc(0))
        check_owned(change.ref, parsed.stamp, context)
        existing_uuid = parsed.uuid
    xml_text = lx.build_network(
        resource.manifest, uuid=existing_uuid, stamp=make_stamp(resource, context, via=via(host))
    )
    new = net is None
    net = host.conn.networkDefineXML(xml_text)
    if not net.isActive():
        with undefine_on_error(net if new else None):
            net.create()
    net.setAutostart(1 if resource.manifest.spec.autostart else 0)
    return "defined and started" if change.action is not Action.UPDATE else "updated"
