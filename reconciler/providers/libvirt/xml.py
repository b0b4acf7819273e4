"""libvirt XML for recon's objects: built from manifests, parsed back from what a host reports.

Pure functions: no connection, no I/O. XML is built and read with ElementTree only, so every
user value is escaped by the library. XML read from a host is refused if it carries a DOCTYPE
or entity declarations: nothing recon needs uses them, and they are how entity-expansion and
external-entity attacks get in.

Parsers return the flat keys of reconciler.model.fields for what the XML shows, and nothing for
what it cannot show (disk sizes live in volumes, run state and autostart on the connection).
"""

from __future__ import annotations

import ipaddress
import json
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree as ET
from xml.etree.ElementTree import Element

from reconciler.model.fields import Fields
from reconciler.model.kinds import (
    NAME_PATTERN,
    Container,
    Network,
    StoragePool,
    Template,
    VirtualMachine,
)
from reconciler.model.quantity import format_quantity
from reconciler.providers.base import Stamp

NS = "http://recon.dev/xmlns/reconciler/v1"
# Without this ElementTree invents "ns0:" prefixes; libvirt keeps whatever prefix it is given,
# and "recon:" is what a person reading `virsh dumpxml` should see.
ET.register_namespace("recon", NS)

VENDOR = "recon"
DRIVERS = ("test", "qemu", "kvm", "lxc", "vz")
_VM_DRIVERS = frozenset({"test", "qemu", "kvm", "vz"})
_CONTAINER_DRIVERS = frozenset({"test", "lxc", "vz"})
# QEMU and vz refuse <min_guarantee>; on those the guarantee is enforced outside the XML.
_GUARANTEE_DRIVERS = frozenset({"test"})
_QEMU_DRIVERS = frozenset({"qemu", "kvm"})

DISK_FORMATS = frozenset({"qcow2", "raw"})
TEMPLATE_FORMATS = frozenset({"qcow2", "tar"})
# Memory hotplug needs DIMM slots; four covers growing to maxMemory in a few steps.
HOTPLUG_SLOTS = 4
GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"

_BOOT_DEV = {"disk": "hd", "network": "network", "cdrom": "cdrom"}
_BOOT_ORDER = {dev: name for name, dev in _BOOT_DEV.items()}
_BUS_PREFIX = {"virtio": "vd", "sata": "sd", "scsi": "sd", "ide": "hd"}

_NAME_RE = re.compile(NAME_PATTERN)
_UNSAFE_MARKUP = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
# Characters XML 1.0 cannot carry at all; ElementTree would write them and produce a document
# no parser accepts.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# --- names ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiskVolume:
    """Where a VM disk or a container root lives."""

    pool: str
    name: str
    path: str
    format: str


def _check_name(value: str, what: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a valid name")
    return value


def volume_name(owner: str, disk: str, fmt: str) -> str:
    # Volume names become file names on the host, and libvirt's test driver accepts
    # "../../etc/evil": so every part is checked here, not trusted.
    _check_name(owner, "owner")
    _check_name(disk, "disk")
    if fmt not in DISK_FORMATS:
        raise ValueError(f"disk format {fmt!r} is not one of {sorted(DISK_FORMATS)}")
    return f"{owner}-{disk}.{fmt}"


def template_volume_name(template: str, fmt: str) -> str:
    _check_name(template, "template")
    if fmt not in TEMPLATE_FORMATS:
        raise ValueError(f"template format {fmt!r} is not one of {sorted(TEMPLATE_FORMATS)}")
    return f"template-{template}.{fmt}"


def disk_name_from_path(owner: str, path: str) -> str | None:
    """The disk name in a volume path made by volume_name, or None if it is not one of owner's."""
    base = posixpath.basename(path)
    prefix = f"{owner}-"
    if not base.startswith(prefix):
        return None
    stem, dot, ext = base[len(prefix) :].rpartition(".")
    if not dot or ext not in DISK_FORMATS or not _NAME_RE.fullmatch(stem):
        return None
    return stem


# --- element helpers --------------------------------------------------------------------------


def _check_text(value: str, what: str) -> str:
    if _NOT_XML.search(value):
        raise ValueError(f"{what} contains a character XML cannot carry")
    return value


def _sub(parent: Element, tag: str, text: str | int | None = None, **attrs: str | int) -> Element:
    """A child element; every value passes the XML character check first."""
    elem = ET.SubElement(parent, tag)
    for key, value in attrs.items():
        elem.set(key, _check_text(str(value), f"attribute {key} of <{tag}>"))
    if text is not None:
        text = str(text)
        # Parsers turn a literal CR in text into LF, so it would not come back as written.
        if "\r" in text:
            raise ValueError(f"text of <{tag}> contains a carriage return")
        elem.text = _check_text(text, f"text of <{tag}>")
    return elem


def _to_string(root: Element) -> str:
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"


def _parse(xml_text: str, tag: str) -> Element:
    if _UNSAFE_MARKUP.search(xml_text):
        raise ValueError(f"refusing {tag} XML with a DOCTYPE or entity declaration")
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise ValueError(f"malformed {tag} XML: {exc}") from exc
    if root.tag != tag:
        raise ValueError(f"expected a <{tag}> document, got <{root.tag}>")
    return root


def _kib(nbytes: int, what: str) -> int:
    # libvirt counts memory in KiB; rounding would make the host differ from the manifest
    # forever, so a value it cannot hold exactly is an error.
    if nbytes % 1024:
        raise ValueError(f"{what} ({nbytes} bytes) is not a whole number of KiB")
    return nbytes // 1024


def _scale(unit: str | None, default: int) -> int:
    """Bytes per unit, the way libvirt reads unit attributes (case-insensitive, KB=1000)."""
    if not unit:
        return default
    lowered = unit.lower()
    if lowered in ("b", "byte", "bytes"):
        return 1
    powers = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}
    if lowered[0] not in powers:
        raise ValueError(f"unknown unit {unit!r}")
    rest = lowered[1:]
    if rest in ("", "ib"):
        base = 1024
    elif rest == "b":
        base = 1000
    else:
        raise ValueError(f"unknown unit {unit!r}")
    return int(base ** powers[lowered[0]])


def _amount(elem: Element | None, default_scale: int) -> int | None:
    if elem is None or elem.text is None or not elem.text.strip():
        return None
    try:
        value = int(elem.text.strip())
    except ValueError as exc:
        raise ValueError(f"<{elem.tag}> holds {elem.text!r}, not an integer") from exc
    return value * _scale(elem.get("unit"), default_scale)


def _text_of(root: Element, path: str) -> str | None:
    found = root.findtext(path)
    return found.strip() if found is not None else None


def _required(root: Element, path: str) -> str:
    found = _text_of(root, path)
    if not found:
        raise ValueError(f"<{root.tag}> has no <{path}>")
    return found


# --- stamps -----------------------------------------------------------------------------------

# One vocabulary for both forms: the element names of <recon:resource> are the JSON keys.
_STAMP_KEYS = ("managed-by", "kind", "file", "spec-hash", "revision", "set", "applied")


def _json(value: Any) -> str:
    # ASCII-only: lone surrogates and control characters become \u escapes, which any XML
    # carries unchanged.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _stamp_dict(stamp: Stamp, kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "managed-by": stamp.managed_by,
        "kind": kind,
        "file": stamp.file,
        "spec-hash": stamp.spec_hash,
        "set": stamp.set_name,
        "applied": stamp.applied,
    }
    if stamp.revision is not None:
        out["revision"] = stamp.revision
    return out


def _stamp_from_dict(data: Any) -> tuple[str, Stamp] | None:
    if not isinstance(data, dict):
        return None
    managed_by, kind, file, spec_hash, set_name, revision, applied = (
        data.get(key)
        for key in ("managed-by", "kind", "file", "spec-hash", "set", "revision", "applied")
    )
    if not (
        isinstance(managed_by, str)
        and isinstance(kind, str)
        and isinstance(file, str)
        and isinstance(spec_hash, str)
        and isinstance(set_name, str)
        and (revision is None or isinstance(revision, str))
        and isinstance(applied, dict)
    ):
        return None
    return kind, Stamp(
        file=file,
        spec_hash=spec_hash,
        applied=applied,
        revision=revision,
        set_name=set_name,
        managed_by=managed_by,
    )


def stamp_to_element(stamp: Stamp, kind: str) -> Element:
    root = Element(f"{{{NS}}}resource")
    data = _stamp_dict(stamp, kind)
    for key in _STAMP_KEYS:
        if key in data:
            value = data[key]
            _sub(root, f"{{{NS}}}{key}", _json(value) if key == "applied" else value)
    return root


def stamp_from_element(elem: Element) -> tuple[str, Stamp] | None:
    """(kind, stamp) from a <recon:resource>, or None if it is not one or is damaged."""
    # virDomain.metadata() hands back our element stripped of its namespace (the call is
    # already scoped to NS), so the bare form is accepted too.
    if elem.tag == f"{{{NS}}}resource":
        prefix = f"{{{NS}}}"
    elif elem.tag == "resource":
        prefix = ""
    else:
        return None
    data: dict[str, Any] = {}
    for key in _STAMP_KEYS:
        child = elem.find(prefix + key)
        if child is not None:
            data[key] = child.text or ""
    try:
        data["applied"] = json.loads(data["applied"])
    except (KeyError, ValueError):
        return None
    return _stamp_from_dict(data)


def stamp_metadata_xml(stamp: Stamp, kind: str) -> str:
    """The stamp as virDomainSetMetadata takes it: bare element names, which libvirt puts in
    the namespace it is given (a prefixed element makes it fail)."""
    root = Element("resource")
    data = _stamp_dict(stamp, kind)
    for key in _STAMP_KEYS:
        if key in data:
            _sub(root, key, _json(data[key]) if key == "applied" else data[key])
    return ET.tostring(root, encoding="unicode")


def stamp_to_json(stamp: Stamp, kind: str) -> str:
    return _json(_stamp_dict(stamp, kind))


def stamp_from_json(text: str) -> tuple[str, Stamp] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return _stamp_from_dict(data)


def _metadata_stamp(root: Element) -> tuple[str, Stamp] | None:
    resource = root.find(f"metadata/{{{NS}}}resource")
    return stamp_from_element(resource) if resource is not None else None


def _add_metadata(root: Element, stamp: Stamp, kind: str) -> None:
    _sub(root, "metadata").append(stamp_to_element(stamp, kind))


# --- domains ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedDomain:
    name: str
    uuid: str
    kind: str | None
    stamp: Stamp | None
    fields: Fields
    disk_paths: dict[str, str]
    memory_bytes: int
    guarantee_bytes: int


def _disk_dev(prefix: str, index: int) -> str:
    # libvirt's own scheme: a..z, then aa, ab, ...
    letters = ""
    while True:
        letters = chr(ord("a") + index % 26) + letters
        index = index // 26 - 1
        if index < 0:
            return prefix + letters


def _volume(volumes: dict[str, DiskVolume], name: str, owner: str) -> DiskVolume:
    try:
        return volumes[name]
    except KeyError:
        raise ValueError(f"no volume given for disk {name!r} of {owner!r}") from None


def _memory(root: Element, memory: int) -> int:
    kib = _kib(memory, "memory")
    _sub(root, "memory", kib, unit="KiB")
    _sub(root, "currentMemory", kib, unit="KiB")
    return kib


def _memtune(
    root: Element,
    driver: str,
    memory_kib: int,
    guarantee_pct: int | None,
    swap_hard_limit_kib: int | None,
) -> None:
    tune = Element("memtune")
    if driver in _GUARANTEE_DRIVERS and guarantee_pct:
        _sub(tune, "min_guarantee", memory_kib * guarantee_pct // 100, unit="KiB")
    if swap_hard_limit_kib is not None:
        _sub(tune, "swap_hard_limit", swap_hard_limit_kib, unit="KiB")
    if len(tune):
        root.append(tune)


def _lifecycle(root: Element) -> None:
    _sub(root, "on_poweroff", "destroy")
    _sub(root, "on_reboot", "restart")
    _sub(root, "on_crash", "destroy")


def _build_vm(
    vm: VirtualMachine,
    root: Element,
    volumes: dict[str, DiskVolume],
    driver: str,
    arch: str,
    macs: Sequence[str | None],
) -> None:
    s = vm.spec
    if s.max_memory is not None:
        _sub(root, "maxMemory", _kib(s.max_memory, "maxMemory"), slots=HOTPLUG_SLOTS, unit="KiB")
    memory_kib = _memory(root, s.memory)
    _memtune(root, driver, memory_kib, s.memory_guarantee, None)
    if s.max_cpus is not None:
        _sub(root, "vcpu", s.max_cpus, placement="static", current=s.cpus)
    else:
        _sub(root, "vcpu", s.cpus, placement="static")

    os_elem = _sub(root, "os")
    if s.firmware == "efi":
        os_elem.set("firmware", "efi")
    type_attrs: dict[str, str] = {"arch": arch}
    if driver in _QEMU_DRIVERS:
        type_attrs["machine"] = "pc"
    _sub(os_elem, "type", "hvm", **type_attrs)
    for entry in s.boot_order:
        _sub(os_elem, "boot", dev=_BOOT_DEV[entry])

    _sub(_sub(root, "features"), "acpi")
    if s.max_memory is not None:
        # DIMM hotplug needs a guest NUMA topology holding the boot memory and every vCPU.
        vcpus = s.max_cpus if s.max_cpus is not None else s.cpus
        numa = _sub(_sub(root, "cpu"), "numa")
        _sub(numa, "cell", id=0, cpus=f"0-{vcpus - 1}", memory=memory_kib, unit="KiB")
    _lifecycle(root)

    devices = _sub(root, "devices")
    per_prefix: dict[str, int] = {}
    for disk in s.disks:
        vol = _volume(volumes, disk.name, vm.name)
        prefix = _BUS_PREFIX[disk.bus]
        index = per_prefix.get(prefix, 0)
        per_prefix[prefix] = index + 1
        elem = _sub(devices, "disk", type="file", device="disk")
        _sub(elem, "driver", name="qemu", type=vol.format)
        _sub(elem, "source", file=vol.path)
        _sub(elem, "target", dev=_disk_dev(prefix, index), bus=disk.bus)
    for index, iface in enumerate(s.interfaces):
        elem = _sub(devices, "interface", type="network")
        mac = iface.mac or _nth(macs, index)
        if mac is not None:
            _sub(elem, "mac", address=mac)
        _sub(elem, "source", network=iface.network)
        _sub(elem, "model", type=iface.model)
    if driver in _QEMU_DRIVERS:
        # Passwords reach the guest through the QEMU guest agent, which talks over this
        # channel (libvirt picks the socket path). Always there, so that a password added to
        # a running guest later needs no restart to get it.
        channel = _sub(devices, "channel", type="unix")
        _sub(channel, "target", type="virtio", name=GUEST_AGENT_CHANNEL)


def _nth(items: Sequence[str | None], index: int) -> str | None:
    return items[index] if index < len(items) else None


def _build_container(
    ct: Container,
    root: Element,
    volumes: dict[str, DiskVolume],
    driver: str,
    macs: Sequence[str | None],
) -> None:
    s = ct.spec
    memory_kib = _memory(root, s.memory)
    # Always written, also for swap 0: with no swap_hard_limit the container could swap
    # without bound, and the XML would not say how much swap it has. libvirt's limit counts
    # memory plus swap.
    _memtune(root, driver, memory_kib, s.memory_guarantee, memory_kib + _kib(s.swap, "swap"))
    _sub(root, "vcpu", s.cpus, placement="static")
    os_elem = _sub(root, "os")
    _sub(os_elem, "type", "exe", arch="x86_64")
    _sub(os_elem, "init", "/sbin/init")
    _lifecycle(root)

    devices = _sub(root, "devices")
    vol = _volume(volumes, "root", ct.name)
    if vol.format != "raw":
        raise ValueError(f"a container root must be a raw volume, not {vol.format!r}")
    fs = _sub(devices, "filesystem", type="file", accessmode="passthrough")
    _sub(fs, "driver", type="loop", format="raw")
    _sub(fs, "source", file=vol.path)
    _sub(fs, "target", dir="/")
    if driver == "lxc":
        # libvirt's LXC driver refuses to start a container without one.
        _sub(devices, "console", type="pty")
    for index, iface in enumerate(s.interfaces):
        elem = _sub(devices, "interface", type="network")
        mac = iface.mac or _nth(macs, index)
        if mac is not None:
            _sub(elem, "mac", address=mac)
        _sub(elem, "source", network=iface.network)
        for address in iface.ip_addresses:
            net = ipaddress.ip_interface(address)
            _sub(
                elem,
                "ip",
                address=str(net.ip),
                family=f"ipv{net.version}",
                prefix=net.network.prefixlen,
            )
        if iface.gateway is not None:
            gateway = ipaddress.ip_address(iface.gateway)
            default = "0.0.0.0" if gateway.version == 4 else "::"
            _sub(
                elem,
                "route",
                family=f"ipv{gateway.version}",
                address=default,
                prefix=0,
                gateway=str(gateway),
            )


def build_domain(
    manifest: VirtualMachine | Container,
    *,
    uuid: str,
    stamp: Stamp,
    volumes: dict[str, DiskVolume],
    driver: str,
    arch: str = "x86_64",
    macs: Sequence[str | None] = (),
) -> str:
    """Domain XML for a manifest. arch is the VM's template architecture (ignored for
    containers, which run the host's). `macs`, by interface position: the addresses the
    guest has now, kept where the manifest pins none (libvirt would make up new ones, and
    the guest's network identity would change with every redefinition)."""
    if driver not in DRIVERS:
        raise ValueError(f"unknown libvirt driver {driver!r}")
    root = Element("domain", type=driver)
    _sub(root, "name", manifest.name)
    _sub(root, "uuid", uuid)
    _add_metadata(root, stamp, manifest.KIND)
    if isinstance(manifest, Container):
        if driver not in _CONTAINER_DRIVERS:
            raise ValueError(f"the {driver} driver cannot run containers")
        _build_container(manifest, root, volumes, driver, macs)
    else:
        if driver not in _VM_DRIVERS:
            raise ValueError(f"the {driver} driver cannot run virtual machines")
        _build_vm(manifest, root, volumes, driver, arch, macs)
    return _to_string(root)


def _percent(part: int, whole: int) -> str:
    return f"{round(100 * part / whole)}%"


def _parse_vm_devices(root: Element, name: str, fields: Fields, disk_paths: dict[str, str]) -> None:
    for disk in root.iterfind("devices/disk"):
        source = disk.find("source")
        path = source.get("file") if source is not None else None
        if disk.get("device", "disk") != "disk" or not path:
            continue
        disk_name = disk_name_from_path(name, path)
        # Disks recon did not name (a foreign domain's) have no key to report under.
        if disk_name is None:
            continue
        disk_paths[disk_name] = path
        driver = disk.find("driver")
        if driver is not None and driver.get("type"):
            fields[f"disks[{disk_name}].format"] = driver.get("type")
        target = disk.find("target")
        if target is not None and target.get("bus"):
            fields[f"disks[{disk_name}].bus"] = target.get("bus")
    for index, iface in enumerate(root.iterfind("devices/interface")):
        _parse_interface(iface, f"interfaces[{index}]", fields)
        model = iface.find("model")
        if model is not None and model.get("type"):
            fields[f"interfaces[{index}].model"] = model.get("type")


def _parse_interface(iface: Element, key: str, fields: Fields) -> None:
    source = iface.find("source")
    if source is not None and source.get("network"):
        fields[f"{key}.network"] = source.get("network")
    mac = iface.find("mac")
    if mac is not None and mac.get("address"):
        fields[f"{key}.mac"] = mac.get("address", "").lower()


def _parse_container_devices(root: Element, fields: Fields, disk_paths: dict[str, str]) -> None:
    for fs in root.iterfind("devices/filesystem"):
        target, source = fs.find("target"), fs.find("source")
        if target is not None and target.get("dir") == "/" and source is not None:
            path = source.get("file")
            if path:
                disk_paths["root"] = path
    for index, iface in enumerate(root.iterfind("devices/interface")):
        key = f"interfaces[{index}]"
        _parse_interface(iface, key, fields)
        addresses = []
        for ip in iface.iterfind("ip"):
            address, prefix = ip.get("address"), ip.get("prefix")
            if address and prefix:
                addresses.append(str(ipaddress.ip_interface(f"{address}/{prefix}")))
        fields[f"{key}.ipAddresses"] = addresses
        gateways = [r.get("gateway", "") for r in iface.iterfind("route") if r.get("gateway")]
        # A container without a route has no gateway: that is observed, not unknown.
        fields[f"{key}.gateway"] = str(ipaddress.ip_address(gateways[0])) if gateways else None


def parse_domain(xml_text: str) -> ParsedDomain:
    root = _parse(xml_text, "domain")
    name = _required(root, "name")
    found = _metadata_stamp(root)
    os_type = _text_of(root, "os/type")
    if found is not None:
        kind: str | None = found[0]
    else:
        kind = {"hvm": "VirtualMachine", "exe": "Container"}.get(os_type or "")

    fields: Fields = {}
    disk_paths: dict[str, str] = {}
    max_kib = _amount(root.find("memory"), 1024) or 0
    memory = _amount(root.find("currentMemory"), 1024) or max_kib
    guarantee = _amount(root.find("memtune/min_guarantee"), 1024)

    vcpu = root.find("vcpu")
    if vcpu is not None and vcpu.text and vcpu.text.strip():
        count = int(vcpu.text.strip())
        current = vcpu.get("current")
        fields["cpus"] = int(current) if current else count
        if os_type != "exe":
            # libvirt drops current= when it equals the count, so the count is always the
            # maximum: maxCpus 4 with cpus 4 must still read back as maxCpus 4.
            fields["maxCpus"] = count
    if memory:
        fields["memory"] = format_quantity(memory)
    if guarantee is not None and memory:
        fields["memoryGuarantee"] = _percent(guarantee, memory)
    elif root.get("type") in _GUARANTEE_DRIVERS and memory:
        # On the test driver the XML is where the guarantee lives, and libvirt drops a zero
        # <min_guarantee>: absence there means no guarantee. Elsewhere it is enforced outside
        # the XML, so absence says nothing.
        fields["memoryGuarantee"] = "0%"

    if os_type == "exe":
        swap_limit = _amount(root.find("memtune/swap_hard_limit"), 1024)
        if swap_limit is not None and memory:
            fields["swap"] = format_quantity(max(swap_limit - memory, 0))
        _parse_container_devices(root, fields, disk_paths)
    else:
        max_memory = _amount(root.find("maxMemory"), 1024)
        if max_memory is not None:
            fields["maxMemory"] = format_quantity(max_memory)
        os_elem = root.find("os")
        efi = os_elem is not None and (
            os_elem.get("firmware") == "efi" or os_elem.find("loader") is not None
        )
        fields["firmware"] = "efi" if efi else "bios"
        boots = [b.get("dev", "") for b in root.iterfind("os/boot")]
        if boots:
            fields["bootOrder"] = [_BOOT_ORDER.get(dev, dev) for dev in boots]
        _parse_vm_devices(root, name, fields, disk_paths)

    return ParsedDomain(
        name=name,
        uuid=_text_of(root, "uuid") or "",
        kind=kind,
        stamp=found[1] if found is not None else None,
        fields=fields,
        disk_paths=disk_paths,
        memory_bytes=memory,
        guarantee_bytes=guarantee or 0,
    )


# --- storage pools ----------------------------------------------------------------------------


@dataclass(slots=True)
class ParsedPool:
    name: str
    uuid: str | None
    fields: Fields
    stamp: Stamp | None
    templates: dict[str, Stamp] = field(default_factory=dict)


def _pool_xml(
    name: str,
    uuid: str | None,
    pool_type: str,
    path: str,
    stamp: Stamp,
    templates: dict[str, Stamp],
) -> str:
    data = _stamp_dict(stamp, StoragePool.KIND)
    data["templates"] = {
        tname: _stamp_dict(tstamp, Template.KIND) for tname, tstamp in sorted(templates.items())
    }
    root = Element("pool", type=pool_type)
    _sub(root, "name", name)
    if uuid is not None:
        _sub(root, "uuid", uuid)
    source = _sub(root, "source")
    _sub(source, "vendor", name=VENDOR)
    _sub(source, "product", name=_json(data))
    _sub(_sub(root, "target"), "path", path)
    return _to_string(root)


def build_pool(
    manifest: StoragePool, *, uuid: str | None, stamp: Stamp, templates: dict[str, Stamp]
) -> str:
    """Pool XML. Pools have no <metadata>, but <source><vendor>/<product> names survive a
    round trip, so the stamp (and those of Templates whose images live in the pool) ride in the
    product name as JSON."""
    s = manifest.spec
    return _pool_xml(manifest.name, uuid, s.type, s.path, stamp, templates)


def build_pool_from_parsed(parsed: ParsedPool, *, templates: dict[str, Stamp]) -> str:
    """The XML of a pool recon already owns, with new Template stamps: recording a Template
    must not need the pool's manifest."""
    if parsed.stamp is None:
        raise ValueError(f"pool {parsed.name!r} carries no recon stamp")
    path = parsed.fields.get("path")
    if not isinstance(path, str) or not path:
        raise ValueError(f"pool {parsed.name!r} has no target path")
    pool_type = str(parsed.fields.get("type") or "dir")
    return _pool_xml(parsed.name, parsed.uuid, pool_type, path, parsed.stamp, templates)


def parse_pool(xml_text: str) -> ParsedPool:
    root = _parse(xml_text, "pool")
    fields: Fields = {"type": root.get("type", "")}
    path = _text_of(root, "target/path")
    if path:
        fields["path"] = path
    stamp: Stamp | None = None
    templates: dict[str, Stamp] = {}
    vendor = root.find("source/vendor")
    product = root.find("source/product")
    if vendor is not None and vendor.get("name") == VENDOR and product is not None:
        text = product.get("name", "")
        found = stamp_from_json(text)
        if found is not None:
            stamp = found[1]
            raw = json.loads(text).get("templates")
            if isinstance(raw, dict):
                for name, value in raw.items():
                    tfound = _stamp_from_dict(value)
                    if tfound is not None:
                        templates[name] = tfound[1]
    return ParsedPool(
        name=_required(root, "name"),
        uuid=_text_of(root, "uuid"),
        fields=fields,
        stamp=stamp,
        templates=templates,
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
    _sub(root, "name", manifest.name)
    if uuid is not None:
        _sub(root, "uuid", uuid)
    _add_metadata(root, stamp, manifest.KIND)
    if s.mode != "isolated":
        _sub(root, "forward", mode=s.mode)
    if s.bridge is not None:
        _sub(root, "bridge", name=s.bridge)
    if s.ipv4 is not None:
        net = ipaddress.ip_interface(s.ipv4.address)
        ip = _sub(root, "ip", address=str(net.ip), prefix=net.network.prefixlen)
        if s.ipv4.dhcp is not None:
            _sub(_sub(ip, "dhcp"), "range", start=s.ipv4.dhcp.start, end=s.ipv4.dhcp.end)
    return _to_string(root)


def parse_network(xml_text: str) -> ParsedNetwork:
    root = _parse(xml_text, "network")
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
    found = _metadata_stamp(root)
    return ParsedNetwork(
        name=_required(root, "name"),
        uuid=_text_of(root, "uuid"),
        fields=fields,
        stamp=found[1] if found is not None else None,
    )


# --- volumes ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedVolume:
    name: str
    path: str
    capacity: int
    format: str | None
    backing_path: str | None


def build_volume(name: str, *, capacity: int, fmt: str, backing: DiskVolume | None = None) -> str:
    if "/" in name or name.startswith("."):
        raise ValueError(f"volume name {name!r} must be a plain file name")
    if fmt not in DISK_FORMATS:
        raise ValueError(f"volume format {fmt!r} is not one of {sorted(DISK_FORMATS)}")
    root = Element("volume")
    _sub(root, "name", name)
    _sub(root, "capacity", capacity, unit="bytes")
    # Without <allocation> libvirt allocates the whole capacity up front; recon wants sparse
    # files, as `qemu-img create` makes.
    _sub(root, "allocation", 0, unit="bytes")
    _sub(_sub(root, "target"), "format", type=fmt)
    if backing is not None:
        store = _sub(root, "backingStore")
        _sub(store, "path", backing.path)
        _sub(store, "format", type=backing.format)
    return _to_string(root)


def parse_volume(xml_text: str) -> ParsedVolume:
    root = _parse(xml_text, "volume")
    target_format = root.find("target/format")
    return ParsedVolume(
        name=_required(root, "name"),
        path=_text_of(root, "target/path") or "",
        capacity=_amount(root.find("capacity"), 1) or 0,
        format=target_format.get("type") if target_format is not None else None,
        backing_path=_text_of(root, "backingStore/path") or None,
    )


# --- hotplug and host capabilities ------------------------------------------------------------


def build_dimm(nbytes: int, node: int = 0) -> str:
    """A DIMM for memory hotplug: nbytes more RAM in guest NUMA cell `node`."""
    root = Element("memory", model="dimm")
    target = _sub(root, "target")
    _sub(target, "size", _kib(nbytes, "DIMM size"), unit="KiB")
    _sub(target, "node", node)
    return _to_string(root)


@dataclass(frozen=True, slots=True)
class DomainCapabilities:
    """What libvirt's domain capabilities say for one virttype on this host."""

    virttype: str
    # Some EFI firmware is installed: a firmware descriptor, or a loader image path.
    efi: bool


def parse_domain_capabilities(xml_text: str) -> DomainCapabilities:
    root = _parse(xml_text, "domainCapabilities")
    firmware = {v.text for v in root.iterfind("os/enum[@name='firmware']/value")}
    loaders = [v.text for v in root.iterfind("os/loader/value") if v.text]
    return DomainCapabilities(
        virttype=_text_of(root, "domain") or "",
        efi="efi" in firmware or bool(loaders),
    )
