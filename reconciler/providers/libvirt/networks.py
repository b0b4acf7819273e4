"""Networks: observed in bulk, their XML defined and started here."""

from __future__ import annotations

from reconciler.model.kinds import Network
from reconciler.model.plan import Action, Change
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.providers.base import ApplyContext, Observed
from reconciler.providers.libvirt import xml as lx
from reconciler.providers.libvirt.common import (
    Host,
    check_owned,
    lookup,
    make_stamp,
    undefine_on_error,
    unless_vanished,
)


def observe(host: Host, objects: dict[ResourceRef, Observed]) -> None:
    for net in host.conn.listAllNetworks(0):
        with unless_vanished():
            parsed = lx.parse_network(net.XMLDesc(0))
            fields = dict(parsed.fields)
            fields["autostart"] = bool(net.autostart())
            ref = ResourceRef("Network", parsed.name)
            objects[ref] = Observed(
                ref, fields, parsed.stamp, uuid=parsed.uuid, extra={"active": bool(net.isActive())}
            )


def apply_network(
    host: Host, change: Change, resource: Resource | None, context: ApplyContext
) -> str:
    net = lookup(host.conn.networkLookupByName, change.ref.name)
    if change.action is Action.DELETE or change.action is Action.REPLACE:
        if net is not None:
            check_owned(change.ref, lx.parse_network(net.XMLDesc(0)).stamp, context)
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
        resource.manifest, uuid=existing_uuid, stamp=make_stamp(resource, context)
    )
    new = net is None
    net = host.conn.networkDefineXML(xml_text)
    if not net.isActive():
        with undefine_on_error(net if new else None):
            net.create()
    net.setAutostart(1 if resource.manifest.spec.autostart else 0)
    return "defined and started" if change.action is not Action.UPDATE else "updated"
