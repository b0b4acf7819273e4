"""Domains: VMs and containers built from manifests, and domain XML parsed back."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from xml.etree.ElementTree import Element

from reconciler.model.fields import Fields
from reconciler.model.kinds import Container, VirtualMachine
from reconciler.model.quantity import format_quantity
from reconciler.providers.base import Stamp
from reconciler.providers.libvirt.xml.common import (
    DiskVolume,
    add_metadata,
    amount,
    child,
    children,
    disk_name_from_path,
    metadata_stamp,
    parse,
    required,
    sub,
    text_of,
    to_string,
)

DRIVERS = ("test", "qemu", "kvm", "lxc", "vz")
_VM_DRIVERS = frozenset({"test", "qemu", "kvm", "vz"})
_CONTAINER_DRIVERS = frozenset({"test", "lxc", "vz"})
# QEMU and vz refuse <min_guarantee>; on those the guarantee is enforced outside the XML.
_GUARANTEE_DRIVERS = frozenset({"test"})
_QEMU_DRIVERS = frozenset({"qemu", "kvm"})

# Memory hotplug needs DIMM slots; four covers growing to maxMemory in a few steps.
HOTPLUG_SLOTS = 4
GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"

_BOOT_DEV = {"disk": "hd", "network": "network", "cdrom": "cdrom"}
_BOOT_ORDER = {dev: name for name, dev in _BOOT_DEV.items()}
_BUS_PREFIX = {"virtio": "vd", "sata": "sd", "scsi": "sd", "ide": "hd"}


def _kib(nbytes: int, what: str) -> int:
    # libvirt counts memory in KiB; rounding would make the host differ from the manifest
    # forever, so a value it cannot hold exactly is an error.
    if nbytes % 1024:
        raise ValueError(f"{what} ({nbytes} bytes) is not a whole number of KiB")
    return nbytes // 1024


# --- domains ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KernelBoot:
    """Direct kernel boot: the kernel and initrd of the template a VM's root disk is made
    from, and its command line (no bootloader runs)."""

    kernel: str
    initrd: str
    cmdline: str


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
    # Every file the domain uses as a disk or a filesystem, recon's or not: what another
    # guest must not be given, and what a delete of volumes must leave alone.
    sources: tuple[str, ...] = ()
    # (interface index, the bridge libvirt put it on, its tap device), where the XML says
    # (a running guest's live XML): whether the tap is still on that bridge is the host's.
    taps: tuple[tuple[int, str, str], ...] = ()


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
    sub(root, "memory", kib, unit="KiB")
    sub(root, "currentMemory", kib, unit="KiB")
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
        sub(tune, "min_guarantee", memory_kib * guarantee_pct // 100, unit="KiB")
    if swap_hard_limit_kib is not None:
        sub(tune, "swap_hard_limit", swap_hard_limit_kib, unit="KiB")
    if len(tune):
        root.append(tune)


def _lifecycle(root: Element) -> None:
    sub(root, "on_poweroff", "destroy")
    sub(root, "on_reboot", "restart")
    sub(root, "on_crash", "destroy")


def _build_vm(
    vm: VirtualMachine,
    root: Element,
    volumes: dict[str, DiskVolume],
    driver: str,
    arch: str,
    macs: Sequence[str | None],
    boot: KernelBoot | None,
) -> None:
    s = vm.spec
    if s.max_memory is not None:
        sub(root, "maxMemory", _kib(s.max_memory, "maxMemory"), slots=HOTPLUG_SLOTS, unit="KiB")
    memory_kib = _memory(root, s.memory)
    _memtune(root, driver, memory_kib, s.memory_guarantee, None)
    if s.max_cpus is not None:
        sub(root, "vcpu", s.max_cpus, placement="static", current=s.cpus)
    else:
        sub(root, "vcpu", s.cpus, placement="static")

    os_elem = sub(root, "os")
    if s.firmware == "efi":
        os_elem.set("firmware", "efi")
    type_attrs: dict[str, str] = {"arch": arch}
    if driver in _QEMU_DRIVERS:
        type_attrs["machine"] = "pc"
    sub(os_elem, "type", "hvm", **type_attrs)
    if boot is not None:
        sub(os_elem, "kernel", boot.kernel)
        sub(os_elem, "initrd", boot.initrd)
        sub(os_elem, "cmdline", boot.cmdline)
    for entry in s.boot_order:
        sub(os_elem, "boot", dev=_BOOT_DEV[entry])

    sub(sub(root, "features"), "acpi")
    cpu = None
    if s.cpu_model is not None:
        cpu = sub(root, "cpu", mode="custom", match="exact", check="none")
        sub(cpu, "model", s.cpu_model, fallback="allow")
    if s.max_memory is not None:
        # DIMM hotplug needs a guest NUMA topology holding the boot memory and every vCPU.
        vcpus = s.max_cpus if s.max_cpus is not None else s.cpus
        numa = sub(cpu if cpu is not None else sub(root, "cpu"), "numa")
        sub(numa, "cell", id=0, cpus=f"0-{vcpus - 1}", memory=memory_kib, unit="KiB")
    _lifecycle(root)

    devices = sub(root, "devices")
    per_prefix: dict[str, int] = {}
    for disk in s.disks:
        vol = _volume(volumes, disk.name, vm.name)
        prefix = _BUS_PREFIX[disk.bus]
        index = per_prefix.get(prefix, 0)
        per_prefix[prefix] = index + 1
        elem = sub(devices, "disk", type="file", device="disk")
        sub(elem, "driver", name="qemu", type=vol.format)
        sub(elem, "source", file=vol.path)
        sub(elem, "target", dev=_disk_dev(prefix, index), bus=disk.bus)
    for index, iface in enumerate(s.interfaces):
        elem = sub(devices, "interface", type="network")
        mac = iface.mac or _nth(macs, index)
        if mac is not None:
            sub(elem, "mac", address=mac)
        sub(elem, "source", network=iface.network)
        sub(elem, "model", type=iface.model)
    if driver in _QEMU_DRIVERS:
        # Passwords reach the guest through the QEMU guest agent, which talks over this
        # channel (libvirt picks the socket path). Always there, so that a password added to
        # a running guest later needs no restart to get it.
        channel = sub(devices, "channel", type="unix")
        sub(channel, "target", type="virtio", name=GUEST_AGENT_CHANNEL)
        # A serial port on a pty, and the console on it: what `recon console` (virsh
        # console) attaches to. A built template's kernel logs and runs a getty there
        # (console=ttyS0 in VM_CMDLINE).
        serial = sub(devices, "serial", type="pty")
        sub(serial, "target", port=0)
        console = sub(devices, "console", type="pty")
        sub(console, "target", type="serial", port=0)


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
    sub(root, "vcpu", s.cpus, placement="static")
    os_elem = sub(root, "os")
    sub(os_elem, "type", "exe", arch="x86_64")
    sub(os_elem, "init", "/sbin/init")
    _lifecycle(root)

    devices = sub(root, "devices")
    vol = _volume(volumes, "root", ct.name)
    if vol.format != "raw":
        raise ValueError(f"a container root must be a raw volume, not {vol.format!r}")
    fs = sub(devices, "filesystem", type="file", accessmode="passthrough")
    sub(fs, "driver", type="loop", format="raw")
    sub(fs, "source", file=vol.path)
    sub(fs, "target", dir="/")
    if driver == "lxc":
        # libvirt's LXC driver refuses to start a container without one.
        sub(devices, "console", type="pty")
    for index, iface in enumerate(s.interfaces):
        elem = sub(devices, "interface", type="network")
        mac = iface.mac or _nth(macs, index)
        if mac is not None:
            sub(elem, "mac", address=mac)
        sub(elem, "source", network=iface.network)
        for address in iface.ip_addresses:
            net = ipaddress.ip_interface(address)
            sub(
                elem,
                "ip",
                address=str(net.ip),
                family=f"ipv{net.version}",
                prefix=net.network.prefixlen,
            )
        if iface.gateway is not None:
            gateway = ipaddress.ip_address(iface.gateway)
            default = "0.0.0.0" if gateway.version == 4 else "::"
            sub(
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
    boot: KernelBoot | None = None,
) -> str:
    """Domain XML for a manifest. arch is the VM's template architecture (ignored for
    containers, which run the host's). `macs`, by interface position: the addresses the
    guest has now, kept where the manifest pins none (libvirt would make up new ones, and
    the guest's network identity would change with every redefinition). `boot`: a VM's
    direct kernel boot, from the template of its root disk."""
    if driver not in DRIVERS:
        raise ValueError(f"unknown libvirt driver {driver!r}")
    domain_type = driver
    if isinstance(manifest, VirtualMachine) and driver in _QEMU_DRIVERS:
        # kvm or TCG, as the manifest asks; unset, the best the host offers.
        domain_type = manifest.spec.virtualization or driver
    root = Element("domain", type=domain_type)
    sub(root, "name", manifest.name)
    sub(root, "uuid", uuid)
    add_metadata(root, stamp, manifest.KIND)
    if isinstance(manifest, Container):
        if driver not in _CONTAINER_DRIVERS:
            raise ValueError(f"the {driver} driver cannot run containers")
        _build_container(manifest, root, volumes, driver, macs)
    else:
        if driver not in _VM_DRIVERS:
            raise ValueError(f"the {driver} driver cannot run virtual machines")
        _build_vm(manifest, root, volumes, driver, arch, macs, boot)
    return to_string(root)


def _percent(part: int, whole: int) -> str:
    return f"{round(100 * part / whole)}%"


def _parse_vm_devices(root: Element, name: str, fields: Fields, disk_paths: dict[str, str]) -> None:
    for disk in children(root, "devices", "disk"):
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
    for index, iface in enumerate(children(root, "devices", "interface")):
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
    for fs in children(root, "devices", "filesystem"):
        target, source = fs.find("target"), fs.find("source")
        if target is not None and target.get("dir") == "/" and source is not None:
            path = source.get("file")
            if path:
                disk_paths["root"] = path
    for index, iface in enumerate(children(root, "devices", "interface")):
        key = f"interfaces[{index}]"
        _parse_interface(iface, key, fields)
        addresses = []
        for ip in iface.findall("ip"):
            address, prefix = ip.get("address"), ip.get("prefix")
            if address and prefix:
                addresses.append(str(ipaddress.ip_interface(f"{address}/{prefix}")))
        fields[f"{key}.ipAddresses"] = addresses
        gateways = [r.get("gateway", "") for r in iface.findall("route") if r.get("gateway")]
        # A container without a route has no gateway: that is observed, not unknown.
        fields[f"{key}.gateway"] = str(ipaddress.ip_address(gateways[0])) if gateways else None


def parse_domain(xml_text: str) -> ParsedDomain:
    root = parse(xml_text, "domain")
    name = required(root, "name")
    found = metadata_stamp(root)
    os_type = text_of(root, "os/type")
    if found is not None:
        kind: str | None = found[0]
    else:
        kind = {"hvm": "VirtualMachine", "exe": "Container"}.get(os_type or "")

    fields: Fields = {}
    disk_paths: dict[str, str] = {}
    max_kib = amount(root.find("memory"), 1024) or 0
    memory = amount(root.find("currentMemory"), 1024) or max_kib
    guarantee = amount(child(root, "memtune", "min_guarantee"), 1024)

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
        swap_limit = amount(child(root, "memtune", "swap_hard_limit"), 1024)
        if swap_limit is not None and memory:
            fields["swap"] = format_quantity(max(swap_limit - memory, 0))
        _parse_container_devices(root, fields, disk_paths)
    else:
        max_memory = amount(root.find("maxMemory"), 1024)
        if max_memory is not None:
            fields["maxMemory"] = format_quantity(max_memory)
        os_elem = root.find("os")
        efi = os_elem is not None and (
            os_elem.get("firmware") == "efi" or os_elem.find("loader") is not None
        )
        fields["firmware"] = "efi" if efi else "bios"
        if root.get("type") in _QEMU_DRIVERS:
            fields["virtualization"] = root.get("type")
        model = text_of(root, "cpu/model")
        if model:
            fields["cpuModel"] = model
        boots = [b.get("dev", "") for b in children(root, "os", "boot")]
        if boots:
            fields["bootOrder"] = [_BOOT_ORDER.get(dev, dev) for dev in boots]
        _parse_vm_devices(root, name, fields, disk_paths)

    return ParsedDomain(
        name=name,
        uuid=text_of(root, "uuid") or "",
        kind=kind,
        stamp=found[1] if found is not None else None,
        fields=fields,
        disk_paths=disk_paths,
        memory_bytes=memory,
        guarantee_bytes=guarantee or 0,
        sources=_sources(root),
        taps=_taps(root),
    )


def _taps(root: Element) -> tuple[tuple[int, str, str], ...]:
    found = []
    for index, iface in enumerate(children(root, "devices", "interface")):
        source, target = iface.find("source"), iface.find("target")
        if iface.get("type") != "network" or source is None or target is None:
            continue
        bridge, tap = source.get("bridge"), target.get("dev")
        if bridge and tap:
            found.append((index, bridge, tap))
    return tuple(found)


def _sources(root: Element) -> tuple[str, ...]:
    found = []
    for tag in ("disk", "filesystem"):
        for device in children(root, "devices", tag):
            source = device.find("source")
            if source is not None and source.get("file"):
                found.append(source.get("file", ""))
    return tuple(found)


# --- hotplug ----------------------------------------------------------------------------------


def build_dimm(nbytes: int, node: int = 0) -> str:
    """A DIMM for memory hotplug: nbytes more RAM in guest NUMA cell `node`."""
    root = Element("memory", model="dimm")
    target = sub(root, "target")
    sub(target, "size", _kib(nbytes, "DIMM size"), unit="KiB")
    sub(target, "node", node)
    return to_string(root)
