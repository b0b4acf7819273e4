"""What each libvirt driver can do with recon's manifests: one table per driver, pure.

Three users, one source of truth:
- the provider starts from CAPABILITIES for the driver it connected to, and corrects the entries
  that depend on the host (EFI firmware installed, KSM reachable) from what the host says;
- `recon validate --driver D` flags offline, at the manifest's line and field, what D can
  never do (`capability_checks.check_manifest` with no host facts);
- planning refuses, before any action, manifests the observed host cannot run
  (`capability_checks.check_manifest` with the host's capabilities), instead of failing half
  way through an apply.

docs/real-hosts.md shows FEATURES as a table (`capability_checks.features_markdown`); a test keeps
them equal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from reconciler.model.diagnostics import FieldPath
from reconciler.model.kinds import Container, HostPolicy, Manifest, Template, VirtualMachine

DRIVERS = ("test", "qemu", "lxc", "vz")
# Names a host or a user may give a driver, and the table that answers for it: a QEMU host
# that can use KVM is still the qemu driver.
ALIASES = {"kvm": "qemu", "tcg": "qemu", "parallels": "vz", "openvz": "vz"}


def family(driver: str) -> str:
    """The table name for a driver name (`kvm` -> `qemu`); unknown names come back as given."""
    lowered = driver.lower()
    return ALIASES.get(lowered, lowered)


# What each driver can change on a running guest or on storage, by capability name; the diff
# classifies changes with these (see docs/plan.md). Entries a host can lack although its driver
# supports them (efi-firmware, ksm) are corrected by the provider from the host it opened.
CAPABILITIES: dict[str, dict[str, bool]] = {
    "test": {
        "live-memory": True,
        "memory-hotplug": False,
        "live-vcpus": True,
        "volume-resize": False,
        "volume-upload": False,
        "ksm": False,
        "guest-password": True,
        # Nothing executes inside a test domain: no agent to run, set or read anything.
        "guest-agent": False,
        "efi-firmware": True,
        "virt-type": False,
    },
    "qemu": {
        # Balloon down: the guest's virtio_balloon driver must cooperate; recon reads the
        # result back and reports when the guest did not give the memory up.
        "live-memory": True,
        # DIMM hotplug within maxMemory (ACPI, one NUMA cell, four slots): proven by
        # tests/integration/test_qemu.py::test_memory_grows_live_by_dimm_hotplug.
        "memory-hotplug": True,
        "live-vcpus": True,
        "volume-resize": True,
        "volume-upload": True,
        "ksm": True,
        "guest-password": True,
        # The QEMU guest agent (every VM gets its channel): hostname, users, keys set and
        # read back, commands run inside (recon exec).
        "guest-agent": True,
        # Needs OVMF installed; the provider asks libvirt's domain capabilities.
        "efi-firmware": False,
        # The domain's type chosen per VM (kvm, or qemu for TCG).
        "virt-type": True,
    },
    "lxc": {
        "live-memory": True,
        # A container's <memory> is its ceiling, and libvirt's LXC driver cannot raise it on
        # a running container: growing is a restart.
        "memory-hotplug": False,
        "live-vcpus": False,
        "volume-resize": True,
        "volume-upload": True,
        "ksm": True,
        # Inside a container through its namespaces (nsenter on the host: local hosts only,
        # which the provider corrects); containers have no QEMU guest agent.
        "guest-password": True,
        "guest-agent": False,
        "efi-firmware": False,
        "virt-type": False,
    },
    "vz": {
        "live-memory": True,
        "memory-hotplug": True,
        "live-vcpus": True,
        "volume-resize": True,
        "volume-upload": True,
        "ksm": False,
        "guest-password": True,
        # Virtuozzo's guest tools are not reached through libvirt's QEMU agent calls.
        "guest-agent": False,
        "efi-firmware": True,
        "virt-type": False,
    },
}


class Level(StrEnum):
    """How a driver takes a feature."""

    YES = "yes"  # done as the table says
    NO = "no"  # never: validate --driver fails, a plan against such a host is refused
    HOST = "host"  # only where the host has the capability named in Support.needs
    WARN = "warn"  # accepted, but left alone with a warning in the plan (never pretended)
    NA = "n/a"  # the driver's kinds cannot carry the feature at all


@dataclass(frozen=True, slots=True)
class Support:
    level: Level
    how: str
    needs: str | None = None


def _yes(how: str) -> Support:
    return Support(Level.YES, how)


def _no(how: str) -> Support:
    return Support(Level.NO, how)


def _warn(how: str) -> Support:
    return Support(Level.WARN, how)


def _host(needs: str, how: str) -> Support:
    return Support(Level.HOST, how, needs)


def _na(how: str) -> Support:
    return Support(Level.NA, how)


Where = Callable[[Manifest], list[FieldPath]]


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    # The places in a manifest that use the feature (none: it does not use it). None for rows
    # a manifest alone cannot decide (a disk growing is a change, not a manifest): docs only.
    where: Where | None
    drivers: dict[str, Support]


def _kind(cls: type[Manifest]) -> Where:
    return lambda m: [("kind",)] if isinstance(m, cls) else []


def _spec_set(cls: type[Manifest], *path: str) -> Where:
    """The field, when the manifest is of that kind and sets it to something other than null."""

    def where(m: Manifest) -> list[FieldPath]:
        if not isinstance(m, cls):
            return []
        value: object = m.spec  # type: ignore[attr-defined]
        for part in path:
            value = getattr(value, part, None)
        return [("spec", *_camel(path))] if value not in (None, 0, [], False) else []

    return where


def _camel(path: Iterable[str]) -> tuple[str, ...]:
    out = []
    for part in path:
        head, *rest = part.split("_")
        out.append(head + "".join(p.title() for p in rest))
    return tuple(out)


def _efi(m: Manifest) -> list[FieldPath]:
    return (
        [("spec", "firmware")] if isinstance(m, VirtualMachine) and m.spec.firmware == "efi" else []
    )


def _passwords(m: Manifest) -> list[FieldPath]:
    if not isinstance(m, VirtualMachine) or m.spec.guest is None:
        return []
    return [
        ("spec", "guest", "users", i, "password")
        for i, user in enumerate(m.spec.guest.users)
        if user.password is not None
    ]


def _ssh_keys(m: Manifest) -> list[FieldPath]:
    if not isinstance(m, VirtualMachine) or m.spec.guest is None:
        return []
    return [
        ("spec", "guest", "users", i, "sshAuthorizedKeys")
        for i, user in enumerate(m.spec.guest.users)
        if user.ssh_authorized_keys
    ]


def _guest_hostname(m: Manifest) -> list[FieldPath]:
    if isinstance(m, VirtualMachine) and m.spec.guest and m.spec.guest.hostname:
        return [("spec", "guest", "hostname")]
    return []


def _container_guest(m: Manifest) -> list[FieldPath]:
    """A Container's settings inside it: hostname (in either place), resolver, users and their
    keys and passwords."""
    if not isinstance(m, Container):
        return []
    out: list[FieldPath] = [("spec", "hostname")] if m.spec.hostname else []
    out += [("spec", "dns")] if m.spec.dns is not None else []
    guest = m.spec.guest
    if guest is not None:
        out += [("spec", "guest", "hostname")] if guest.hostname else []
        out += [("spec", "guest", "users", i) for i in range(len(guest.users))]
    return out


def _guarantee(m: Manifest) -> list[FieldPath]:
    if isinstance(m, VirtualMachine | Container) and m.spec.memory_guarantee:
        return [("spec", "memoryGuarantee")]
    return []


def _template_format(fmt: str) -> Where:
    def where(m: Manifest) -> list[FieldPath]:
        return [("spec", "format")] if isinstance(m, Template) and m.spec.format == fmt else []

    return where


def _ksm(m: Manifest) -> list[FieldPath]:
    return [("spec", "ksm")] if isinstance(m, HostPolicy) and m.spec.ksm is not None else []


_KSM = (
    "node memory parameters shm_* through libvirt; enabled: /sys/kernel/mm/ksm/run on the "
    "local host only"
)
_CGROUP = (
    "the running guest's memory cgroup: cgroup v1 memory.soft_limit_in_bytes, cgroup v2 "
    "memory.min (local host only; over a remote URI: admission only)"
)

FEATURES: tuple[Feature, ...] = (
    Feature(
        "VirtualMachine",
        _kind(VirtualMachine),
        {
            "test": _yes("a test domain (nothing executes)"),
            "qemu": _yes(
                "a QEMU domain: type kvm where libvirt's domain capabilities offer KVM, else TCG"
            ),
            "lxc": _no("the lxc driver runs containers only; use qemu:///system or vz:///system"),
            "vz": _yes("a Virtuozzo VM"),
        },
    ),
    Feature(
        "Container",
        _kind(Container),
        {
            "test": _yes("an exe domain (nothing executes)"),
            "qemu": _no("QEMU/KVM runs virtual machines only; use lxc:///system or vz:///system"),
            "lxc": _yes(
                "a libvirt LXC domain; its root: an ext4 filesystem made from the template's tar "
                "in a raw volume (local host only)"
            ),
            "vz": _yes("a Virtuozzo container"),
        },
    ),
    Feature(
        "Template (qcow2)",
        _template_format("qcow2"),
        {
            "test": _warn("metadata only: the test driver keeps no volume contents"),
            "qemu": _yes(
                "image uploaded into the pool (sha256 checked first); VM disks use it as "
                "backing file"
            ),
            "lxc": _yes("image uploaded into the pool"),
            "vz": _yes("image uploaded into the pool"),
        },
    ),
    Feature(
        "Template (tar)",
        _template_format("tar"),
        {
            "test": _warn("metadata only: the test driver keeps no volume contents"),
            "qemu": _yes("archive uploaded into the pool (no container can use it here)"),
            "lxc": _yes("archive uploaded into the pool; unpacked into each new container's root"),
            "vz": _yes("archive uploaded into the pool"),
        },
    ),
    Feature(
        "virtualization, cpuModel",
        lambda m: (
            _spec_set(VirtualMachine, "virtualization")(m)
            + _spec_set(VirtualMachine, "cpu_model")(m)
        ),
        {
            "test": _warn("cpuModel recorded; virtualization not: the test driver has one type"),
            "qemu": _yes(
                "the domain's type (kvm, or qemu for TCG) and <cpu><model>; kvm where the "
                "host cannot is refused by libvirt at define"
            ),
            "lxc": _na("containers run the host's kernel and CPU"),
            "vz": _warn("cpuModel recorded; virtualization not: Virtuozzo picks its own"),
        },
    ),
    Feature(
        "firmware: efi",
        _efi,
        {
            "test": _yes("recorded in the domain XML"),
            "qemu": _host(
                "efi-firmware",
                "needs OVMF on the host (package ovmf); read from libvirt's domain capabilities",
            ),
            "lxc": _na("containers have no firmware"),
            "vz": _yes("Virtuozzo's EFI firmware"),
        },
    ),
    Feature(
        "memoryGuarantee",
        _guarantee,
        {
            "test": _yes("<min_guarantee> in the domain XML"),
            "qemu": _yes(_CGROUP + "; QEMU refuses <min_guarantee>"),
            "lxc": _yes(_CGROUP),
            "vz": _yes("admission only (prlctl --memguarantee is not driven yet)"),
        },
    ),
    Feature(
        "memory grown live (maxMemory)",
        _spec_set(VirtualMachine, "max_memory"),
        {
            "test": _yes("no hotplug on the test driver: growing memory is a restart"),
            "qemu": _yes(
                "DIMM hotplug up to maxMemory (4 slots, ACPI, one NUMA cell); shrinking by "
                "balloon needs a guest driver"
            ),
            "lxc": _na("containers have no maxMemory: a container's memory change is a restart"),
            "vz": _yes("live memory change"),
        },
    ),
    Feature(
        "cpus changed live (maxCpus)",
        _spec_set(VirtualMachine, "max_cpus"),
        {
            "test": _yes("setVcpusFlags live"),
            "qemu": _yes("vCPU hotplug (setVcpusFlags live) up to maxCpus"),
            "lxc": _na("containers have no maxCpus"),
            "vz": _yes("live vCPU change"),
        },
    ),
    Feature(
        "guest user passwords",
        _passwords,
        {
            "test": _yes("setUserPassword (the test driver records it)"),
            "qemu": _yes(
                "the QEMU guest agent (setUserPassword): every VM gets its channel; the guest "
                "must run qemu-guest-agent, or the apply fails and the password stays planned"
            ),
            "lxc": _na("VMs only (a Container's: the row below)"),
            "vz": _yes("setUserPassword through Virtuozzo guest tools"),
        },
    ),
    Feature(
        "hostname, sshAuthorizedKeys",
        lambda m: _guest_hostname(m) + _ssh_keys(m),
        {
            "test": _warn("recorded in recon's stamp only; not applied to the guest yet"),
            "qemu": _yes(
                "through the QEMU guest agent: hostname by guest-exec (/etc/hostname and the "
                "running kernel's), users created if missing (useradd -m), keys by "
                "authorizedSSHKeysSet; read back while the guest runs (agent hostname, "
                "authorizedSSHKeysGet), so a change inside the guest is drift"
            ),
            "lxc": _na("VMs only (a Container's: the row below)"),
            "vz": _warn("recorded in recon's stamp only; not applied to the guest yet"),
        },
    ),
    Feature(
        "Container hostname, dns, users, passwords, sshAuthorizedKeys",
        _container_guest,
        {
            "test": _warn(
                "the test driver runs nothing inside a container: recorded in recon's stamp only"
            ),
            "qemu": _na("QEMU runs no containers"),
            "lxc": _yes(
                "set inside the running container through its namespaces (nsenter on its init, "
                "local host only); hostname, resolv.conf and keys are read back, so a change "
                "inside is drift"
            ),
            "vz": _warn("recorded in recon's stamp only; not applied inside the container yet"),
        },
    ),
    Feature(
        "disk size grown",
        None,
        {
            "test": _warn("no volume resize on the test driver: a plan warning, left as it is"),
            "qemu": _yes("volume resize; the guest sees the new size at its next boot or rescan"),
            "lxc": _yes("volume resize"),
            "vz": _yes("volume resize"),
        },
    ),
    Feature(
        "HostPolicy ksm",
        _ksm,
        {
            "test": _warn("no KSM on the test driver: a plan warning, left as it is"),
            "qemu": _yes(_KSM),
            "lxc": _yes(_KSM),
            "vz": _warn("not exposed by the vz driver: a plan warning, left as it is"),
        },
    ),
)
