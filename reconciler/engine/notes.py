"""What the plan says beside a field's change: what a change depends on that recon cannot see
from the host (a shrink needs the guest's help), where it applies (a running guest's saved
definition), and how far it reaches (KSM is host-wide). Pure."""

from __future__ import annotations

from typing import Any

from reconciler.model.plan import Action, Change, Disruption, FieldChange
from reconciler.model.quantity import parse_quantity
from reconciler.model.refs import ResourceRef
from reconciler.providers.base import Observation

# The host itself, whatever its policy's manifest is called.
HOST = ResourceRef("HostPolicy", "")


def _quantity(value: Any) -> int | None:
    try:
        return parse_quantity(value) if isinstance(value, str) else None
    except ValueError:
        return None


SAVED_DEFINITION_NOTE = (
    "in the guest's saved definition (what its next boot gets); the running guest has it already"
)
# What a live shrink of a VM needs from inside the guest: recon cannot see it from the host,
# so the plan says it, and the apply reports the guest's refusal (leaving the definition).
SHRINK_NEEDS = {
    "memory": "needs the guest's balloon driver (virtio_balloon) to give the memory up",
    "cpus": "needs vCPU hot-unplug in the guest (an OS that takes the ACPI unplug; the vCPUs "
    "it booted with cannot be removed live)",
}


def shrink_note(kind: str, path: str, before: Any, after: Any, disruption: Disruption) -> str:
    if kind != "VirtualMachine" or disruption is not Disruption.LIVE or path not in SHRINK_NEEDS:
        return ""
    if path == "memory":
        old, new = _quantity(before), _quantity(after)
    else:
        old, new = (v if isinstance(v, int) else None for v in (before, after))
    if old is None or new is None or new >= old:
        return ""
    return SHRINK_NEEDS[path]


def host_policy_restore(ref: ResourceRef, observation: Observation) -> Change | None:
    """Deleting recon's HostPolicy: KSM put back as the host had it before recon first changed
    it (recorded on the host then), or None when nothing is recorded."""
    observed = observation.objects.get(HOST)
    recorded = observed.extra.get("recorded") if observed is not None else None
    if observed is None or not isinstance(recorded, dict):
        return None
    fields = tuple(
        FieldChange(k, observed.fields[k], v, Disruption.LIVE, "host-wide: as before recon")
        for k, v in sorted(recorded.items())
        if k in observed.fields and observed.fields[k] != v
    )
    return Change(
        ref,
        Action.DELETE,
        Disruption.LIVE,
        fields,
        "KSM put back as the host had it before recon's policy",
    )


def host_wide_note(path: str, after: Any) -> str:
    """KSM is one switch for the whole host: said with every change of it."""
    what = (
        f"/sys/kernel/mm/ksm/run {int(not after)} -> {int(bool(after))}"
        if path == "ksm.enabled"
        else "KSM's scanner"
    )
    return (
        f"host-wide: {what}, for every guest on this host, recon's or not; what the host had "
        "is recorded, and `recon delete` of this policy puts it back"
    )


# Objects of the whole host (one libvirtd serves both drivers): pools, networks, template
# images. recon records in their stamps the connection it applied them through ("via").
HOST_WIDE = ("StoragePool", "Network", "Template")
LOCAL_DRIVERS = ("qemu:///system", "lxc:///system")


def other_connection_warnings(
    names: set[ResourceRef], deletes: list[Change], observation: Observation, set_name: str
) -> list[str]:
    """A host-wide object this set last applied through the other local driver's connection
    is the set's on both: said, so that one set claiming it from two connections is never
    silent (each connection's prune spares it while the other's guests use it; sharing.py)."""
    here = observation.host.uri
    out = []
    pruned = {c.ref for c in deletes}
    for ref in sorted(names | pruned, key=str):
        obs = observation.objects.get(ref)
        if ref.kind not in HOST_WIDE or obs is None or obs.stamp is None:
            continue
        via = obs.stamp.record.get("via")
        if via == here or via not in LOCAL_DRIVERS or here not in LOCAL_DRIVERS:
            continue
        if obs.stamp.set_name != set_name:
            continue  # another set's: refused as such (engine/diff.py)
        doing = "this plan prunes it" if ref in pruned else "these manifests name it too"
        out.append(
            f"{ref} belongs to set {set_name} through {via} as well: recon last applied it "
            f"there, and {doing} through {here}; a prune through either connection leaves it "
            "while the other driver's guests use it"
        )
    return out
