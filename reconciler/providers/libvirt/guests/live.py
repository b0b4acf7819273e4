"""Live changes to a running guest: memory (QEMU grows it by DIMM hotplug, shrinks it by
balloon; other drivers set it directly) and vCPUs, each read back before it is reported."""

from __future__ import annotations

import time
from contextlib import suppress

import libvirt

from reconciler.model.capabilities import family
from reconciler.model.kinds import Container, VirtualMachine
from reconciler.model.plan import Change, Disruption
from reconciler.model.quantity import format_quantity
from reconciler.providers.base import ProviderError
from reconciler.providers.libvirt import xml as lx
from reconciler.providers.libvirt.common import LIVE, Host

# DIMM sizes QEMU accepts on x86 without libvirt rounding them up: growing by anything else
# would leave the guest with more memory than the manifest says.
_DIMM_ALIGN = 2 * 1024 * 1024


# What QEMU (through libvirt) says when a guest cannot give up a vCPU, and what that means.
_VCPU_REFUSALS = (
    (
        "failed to find appropriate hotpluggable vcpus",
        "the vCPUs the guest booted with cannot be removed while it runs (only vCPUs added "
        "live can be)",
    ),
    (
        "device unplug request for not supported device type",
        "the guest did not accept the vCPU unplug: it runs no OS, or one without ACPI CPU "
        "hot-unplug",
    ),
)
# Said for every refused shrink: the definition is not changed, so this is how to get there.
_SHRINK_HINT = (
    "the saved definition was left as it was; to apply the change, stop the guest "
    "(state: Stopped), apply, and start it again, or run an OS in the guest that supports it"
)
# How long a balloon may take to give memory back before recon reads it as refused.
_BALLOON_WAIT = 2.0


def live_changes(
    host: Host, dom: libvirt.virDomain, change: Change, manifest: VirtualMachine | Container
) -> list[str]:
    """Each live field applied to the running guest, read back. A failure says what was
    done live before it (the caller restores the definition)."""
    notes: list[str] = []
    for f in change.fields:
        if f.disruption is not Disruption.LIVE:
            continue
        try:
            if f.path == "memory":
                notes.append(_memory(host, dom, manifest.spec.memory, f.before, f.after))
            elif f.path == "cpus":
                notes.append(_cpus(dom, manifest.spec.cpus, f.before, f.after))
        except ProviderError as exc:
            if not notes:
                raise
            done = f"{exc} (done live before it: {', '.join(notes)})"
            raise type(exc)(done, exc.hint) from None
    return notes


def _memory(host: Host, dom: libvirt.virDomain, want: int, before: object, after: object) -> str:
    have = lx.parse_domain(dom.XMLDesc(0)).memory_bytes
    if want > have and family(host.driver) == "qemu":
        _hotplug_memory(dom, want - have)
        how = "by DIMM hotplug"
    else:
        dom.setMemoryFlags(want // 1024, LIVE)
        how = "by balloon" if want < have else ""
    got = lx.parse_domain(dom.XMLDesc(0)).memory_bytes
    deadline = time.monotonic() + (_BALLOON_WAIT if how == "by balloon" else 0)
    while got != want and time.monotonic() < deadline:
        time.sleep(0.1)  # a balloon gives memory back at the guest's pace
        got = lx.parse_domain(dom.XMLDesc(0)).memory_bytes
    if got != want:
        if how == "by balloon":
            # Take the balloon's target back: a driver loaded later would still shrink it.
            with suppress(libvirt.libvirtError):
                dom.setMemoryFlags(have // 1024, LIVE)
            raise ProviderError(
                f"memory {before} -> {after}: the guest did not give the memory up (it keeps "
                f"{format_quantity(got)}): it has no balloon driver running (virtio_balloon: "
                f"no OS, or an OS without it); {_SHRINK_HINT}"
            )
        raise ProviderError(
            f"memory: the host reports {format_quantity(got)} "
            f"after asking for {format_quantity(want)}",
            "restart the guest to change its memory",
        )
    return f"memory {before} -> {after} live {how}".rstrip()


def _cpus(dom: libvirt.virDomain, want: int, before: object, after: object) -> str:
    try:
        dom.setVcpusFlags(want, LIVE)
    except libvirt.libvirtError as exc:
        raw = exc.get_error_message() or str(exc)
        lacks = next((why for text, why in _VCPU_REFUSALS if text in raw), None)
        if lacks is None or want >= dom.vcpusFlags(LIVE):
            raise
        raise ProviderError(
            f"cpus {before} -> {after}: {lacks}; {_SHRINK_HINT} (the host said: {raw})"
        ) from None
    got = dom.vcpusFlags(LIVE)
    if got != want:
        raise ProviderError(f"cpus: the host reports {got} after asking for {want}")
    return f"cpus {before} -> {after} live"


def _hotplug_memory(dom: libvirt.virDomain, nbytes: int) -> None:
    """Grow a running QEMU guest by one DIMM in NUMA cell 0. Live only: the persistent
    definition already carries the new size as boot memory (the define before this), so a
    DIMM there too would count the growth twice at the next start."""
    if nbytes % _DIMM_ALIGN:
        raise ProviderError(
            f"memory: QEMU adds memory in steps of {format_quantity(_DIMM_ALIGN)}; "
            f"{format_quantity(nbytes)} more is not one",
            "grow memory by a multiple of 2Mi, or restart the guest to resize it",
        )
    try:
        dom.attachDeviceFlags(lx.build_dimm(nbytes), LIVE)
    except libvirt.libvirtError as exc:
        raise ProviderError(
            f"memory: the host refused a {format_quantity(nbytes)} DIMM: {exc.get_error_message()}",
            "a restart applies the new memory (all 4 DIMM slots may be in use)",
        ) from None
