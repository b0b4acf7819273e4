"""Live changes to a running guest: memory (QEMU grows it by DIMM hotplug, shrinks it by
balloon; other drivers set it directly) and vCPUs, each read back before it is reported."""

from __future__ import annotations

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


def live_changes(
    host: Host, dom: libvirt.virDomain, change: Change, manifest: VirtualMachine | Container
) -> list[str]:
    notes = []
    for f in change.fields:
        if f.disruption is not Disruption.LIVE:
            continue
        if f.path == "memory":
            want = manifest.spec.memory
            have = lx.parse_domain(dom.XMLDesc(0)).memory_bytes
            if want > have and family(host.driver) == "qemu":
                _hotplug_memory(dom, want - have)
                how = "by DIMM hotplug"
            else:
                dom.setMemoryFlags(want // 1024, LIVE)
                how = "by balloon" if want < have else ""
            got = lx.parse_domain(dom.XMLDesc(0)).memory_bytes
            if got != want:
                raise ProviderError(
                    f"memory: the host reports {format_quantity(got)} "
                    f"after asking for {format_quantity(want)}",
                    "a balloon needs the guest's virtio_balloon driver; "
                    "or restart the guest to change its memory",
                )
            notes.append(f"memory {f.before} -> {f.after} live {how}".rstrip())
        elif f.path == "cpus":
            dom.setVcpusFlags(manifest.spec.cpus, LIVE)
            got_cpus = dom.vcpusFlags(LIVE)
            if got_cpus != manifest.spec.cpus:
                raise ProviderError(
                    f"cpus: the host reports {got_cpus} after asking for {manifest.spec.cpus}"
                )
            notes.append(f"cpus {f.before} -> {f.after} live")
    return notes


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
