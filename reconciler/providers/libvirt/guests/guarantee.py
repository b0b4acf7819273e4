"""A guest's memory guarantee: read back from and written to the running guest's memory
cgroup (QEMU and the vz driver refuse <min_guarantee>); <min_guarantee> in the XML holds it
on the test driver; elsewhere only admission at plan time holds it, and recon says so."""

from __future__ import annotations

from typing import Any

import libvirt

from reconciler.model.capabilities import family
from reconciler.model.kinds import Container, VirtualMachine
from reconciler.model.quantity import format_quantity
from reconciler.providers.base import ProviderError
from reconciler.providers.libvirt import host as lh
from reconciler.providers.libvirt import xml as lx
from reconciler.providers.libvirt.common import Host


def observe(
    host: Host, parsed: lx.ParsedDomain, running: bool, memory: int, fields: dict[str, Any]
) -> tuple[int, str]:
    """Bytes the host promises the guest, and how that promise is held. What recon
    promised (its stamp) counts for admission even where nothing enforces it; where a
    cgroup holds it, the cgroup is read back and reported as the guest's memoryGuarantee,
    so a guest restarted behind recon's back (a new cgroup, no limit) shows as drift."""
    promised = parsed.guarantee_bytes
    if parsed.stamp is not None:
        pct = str(parsed.stamp.applied.get("memoryGuarantee", "0%")).rstrip("%")
        promised = memory * int(pct) // 100 if pct.isdigit() else promised
    if host.driver == "test":
        return promised, lh.MIN_GUARANTEE
    if not running:
        how = _mechanism(host)
        return promised, how if how == lh.ADMISSION_ONLY else f"{how} when running"
    cgroup = _memory_cgroup(host, parsed.name)
    if cgroup is None:
        return promised, lh.ADMISSION_ONLY
    escaped = _escaped(host, parsed.name)
    if escaped:
        return promised, escaped
    try:
        held = cgroup.read()
    except OSError:
        return promised, lh.ADMISSION_ONLY
    if memory:
        fields["memoryGuarantee"] = _percent(held, memory)
    return max(held, promised), cgroup.how


def _percent(held: int, memory: int) -> str:
    return f"{round(100 * min(held, memory) / memory)}%"


def held_now(host: Host, name: str, memory: int) -> str | None:
    """The guarantee the running guest's cgroup holds now, as observe reports it; files only
    (the pid file, /proc, the cgroup), no libvirt call. None where no cgroup can be read."""
    cgroup = _memory_cgroup(host, name)
    if cgroup is None or not memory:
        return None
    try:
        return _percent(cgroup.read(), memory)
    except OSError:
        return None


def hold(host: Host, dom: libvirt.virDomain, manifest: VirtualMachine | Container) -> list[str]:
    """Write the guarantee into the running guest's memory cgroup; where recon cannot, say
    that only admission holds it."""
    if host.driver == "test":
        return []  # <min_guarantee> in the XML holds it there
    pct = manifest.spec.memory_guarantee or 0
    if not _can_hold(host):
        return [f"memoryGuarantee {pct}%: {lh.ADMISSION_ONLY} on this host"] if pct else []
    memory = lx.parse_domain(dom.XMLDesc(0)).memory_bytes
    want = memory * pct // 100
    cgroup = _memory_cgroup(host, dom.name())
    if cgroup is None:
        if not pct:
            return []
        return [f"memoryGuarantee {pct}%: {lh.ADMISSION_ONLY} (no memory cgroup found)"]
    try:
        if cgroup.read() == want:
            return []
        cgroup.write(want)
        held = cgroup.read()
    except PermissionError:
        return [f"memoryGuarantee {pct}%: {lh.ADMISSION_ONLY} (no write access to {cgroup.path})"]
    except OSError as exc:
        raise ProviderError(
            f"memoryGuarantee: cannot write {cgroup.path}: {exc.strerror}"
        ) from None
    # The kernel keeps soft limits in whole pages.
    if abs(held - want) >= 4096:
        raise ProviderError(
            f"memoryGuarantee: {cgroup.path} holds {held} bytes after writing {want}"
        )
    if not pct:
        return [f"memory guarantee removed ({cgroup.how})"]
    escaped = _escaped(host, dom.name())
    if escaped:
        return [f"memoryGuarantee {pct}%: {escaped}"]
    return [f"{format_quantity(want)} guaranteed ({cgroup.how})"]


def _escaped(host: Host, name: str) -> str:
    """Why a running container's guarantee is not held, or "": its processes left the cgroup
    that carries the limit and the guarantee (no cgroup namespace: its systemd moved itself
    into the host's groups). Then only admission holds it, and recon says so."""
    if family(host.driver) != "lxc":
        return ""
    pid = lh.domain_pid("lxc", name)
    outside = lh.processes_outside_cgroup(pid) if pid is not None else []
    if not outside:
        return ""
    return (
        f"{lh.ADMISSION_ONLY}: not held, {len(outside)} of the container's processes are "
        "outside its memory cgroup (no cgroup namespace on this host)"
    )


def _can_hold(host: Host) -> bool:
    """Whether this host can hold guarantees in cgroups: a local QEMU or LXC host."""
    return host.local and family(host.driver) in ("qemu", "lxc")


def _mechanism(host: Host) -> str:
    """How a stopped guest's guarantee will be held once it runs."""
    if not _can_hold(host):
        return lh.ADMISSION_ONLY
    found = lh.memory_cgroup_version()
    return {1: lh.CGROUP_V1, 2: lh.CGROUP_V2}.get(found or 0, lh.ADMISSION_ONLY)


def _memory_cgroup(host: Host, name: str) -> lh.MemoryCgroup | None:
    if not _can_hold(host):
        return None
    pid = lh.domain_pid(family(host.driver), name)
    return lh.memory_cgroup(pid) if pid is not None else None
