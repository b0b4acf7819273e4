"""Networks built from manifests, and network XML parsed back."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from xml.etree.ElementTree import Element

from reconciler.model.fields import Fields
from reconciler.model.kinds import Network
from reconciler.providers.base import Stamp
from reconciler.providers.libvirt.xml.common import (
    add_metadata,
    metadata_stamp,
    parse,
    required,
    sub,
    text_of,
    to_string,
)

# --- networks ---------------------------------------------------------------------------------


@dataclass(slots=True)
class ParsedNetwork:
    name: str
    uuid: str | None
    fields: Fields
    stamp: Stamp | None


def build_network(manifest: Network, *, uuid: str | None, stamp: Stamp) -> str:
    s = manifest.spec
    if s.mode == "bridge" and (s.bridge is None or s.ipv4 is not None):
        raise ValueError("a bridge-mode network needs a bridge name and takes no ipv4")
    root = Element("network")
    sub(root, "name", manifest.name)
    if uuid is not None:
        sub(root, "uuid", uuid)
    add_metadata(root, stamp, manifest.KIND)
    if s.mode != "isolated":
        sub(root, "forward", mode=s.mode)
    if s.bridge is not None:
        sub(root, "bridge", name=s.bridge)
    if s.ipv4 is not None:
        net = ipaddress.ip_interface(s.ipv4.address)
        ip = sub(root, "ip", address=str(net.ip), prefix=net.network.prefixlen)
        if s.ipv4.dhcp is not None:
            sub(sub(ip, "dhcp"), "range", start=s.ipv4.dhcp.start, end=s.ipv4.dhcp.end)
    return to_string(root)


def parse_network(xml_text: str) -> ParsedNetwork:
    root = parse(xml_text, "network")
    fields: Fields = {}
    forward = root.find("forward")
    # A <forward> without a mode is NAT in libvirt.
    fields["mode"] = "isolated" if forward is None else forward.get("mode", "nat")
    bridge = root.find("bridge")
    if bridge is not None and bridge.get("name"):
        fields["bridge"] = bridge.get("name")
    for ip in root.iterfind("ip"):
        if ip.get("family", "ipv4") != "ipv4" or not ip.get("address"):
            continue
        mask = ip.get("prefix") or ip.get("netmask")
        if mask:
            fields["ipv4.address"] = str(ipaddress.ip_interface(f"{ip.get('address')}/{mask}"))
        dhcp_range = ip.find("dhcp/range")
        if dhcp_range is not None:
            fields["ipv4.dhcp.start"] = dhcp_range.get("start")
            fields["ipv4.dhcp.end"] = dhcp_range.get("end")
        break
    found = metadata_stamp(root)
    return ParsedNetwork(
        name=required(root, "name"),
        uuid=text_of(root, "uuid"),
        fields=fields,
        stamp=found[1] if found is not None else None,
    )
