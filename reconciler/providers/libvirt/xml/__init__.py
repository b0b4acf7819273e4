"""libvirt XML for recon's objects: built from manifests, parsed back from what a host reports.

Pure functions: no connection, no I/O. XML is built and read with ElementTree only, so every
user value is escaped by the library. XML read from a host is refused if it carries a DOCTYPE
or entity declarations: nothing recon needs uses them, and they are how entity-expansion and
external-entity attacks get in.

Parsers return the flat keys of reconciler.model.fields for what the XML shows, and nothing for
what it cannot show (disk sizes live in volumes, run state and autostart on the connection).

The package holds one module per kind of host object: domain.py (VMs, containers, DIMMs),
storage.py (pools and volumes), network.py, capabilities.py (the host's domain capabilities),
and common.py (recon's namespace, names, element helpers and stamps they all use). Callers use
the names exported here: `from reconciler.providers.libvirt import xml as lx`.
"""

from __future__ import annotations

from reconciler.providers.libvirt.xml.capabilities import (
    DomainCapabilities,
    parse_domain_capabilities,
)
from reconciler.providers.libvirt.xml.common import (
    DISK_FORMATS,
    NS,
    TEMPLATE_FORMATS,
    DiskVolume,
    disk_name_from_path,
    stamp_from_element,
    stamp_from_json,
    stamp_metadata_xml,
    stamp_to_element,
    stamp_to_json,
    template_volume_name,
    volume_name,
)
from reconciler.providers.libvirt.xml.domain import (
    DRIVERS,
    GUEST_AGENT_CHANNEL,
    HOTPLUG_SLOTS,
    KernelBoot,
    ParsedDomain,
    build_dimm,
    build_domain,
    parse_domain,
)
from reconciler.providers.libvirt.xml.network import ParsedNetwork, build_network, parse_network
from reconciler.providers.libvirt.xml.storage import (
    VENDOR,
    ParsedPool,
    ParsedVolume,
    build_pool,
    build_pool_from_parsed,
    build_volume,
    parse_pool,
    parse_volume,
)

__all__ = [
    "DISK_FORMATS",
    "DRIVERS",
    "GUEST_AGENT_CHANNEL",
    "HOTPLUG_SLOTS",
    "NS",
    "TEMPLATE_FORMATS",
    "VENDOR",
    "DiskVolume",
    "DomainCapabilities",
    "KernelBoot",
    "ParsedDomain",
    "ParsedNetwork",
    "ParsedPool",
    "ParsedVolume",
    "build_dimm",
    "build_domain",
    "build_network",
    "build_pool",
    "build_pool_from_parsed",
    "build_volume",
    "disk_name_from_path",
    "parse_domain",
    "parse_domain_capabilities",
    "parse_network",
    "parse_pool",
    "parse_volume",
    "stamp_from_element",
    "stamp_from_json",
    "stamp_metadata_xml",
    "stamp_to_element",
    "stamp_to_json",
    "template_volume_name",
    "volume_name",
]
