"""Kept volumes a plan would give back to a guest, pure: a disk removed and added again, or a
guest created again under the name of one deleted without --delete-volumes, gets the volume
recon kept for it (its pool's stamp records each volume recon made, with the guest and disk).
That volume cannot shrink: a plan that asks for less is refused up front, naming the size to
set or the volume to delete, rather than attaching it and asking for a replace on the next
diff. One smaller than asked is grown at apply, or is unmet on a host without volume resize.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reconciler.model.kinds import Container, VirtualMachine
from reconciler.model.quantity import format_quantity
from reconciler.model.resource import Resource
from reconciler.providers.base import Observation


def _wanted(res: Resource) -> list[tuple[str, str, int, str]]:
    """(disk, pool, size, where in the manifest) of each of a guest's disks."""
    manifest = res.manifest
    if isinstance(manifest, VirtualMachine):
        return [(d.name, d.pool, d.size, f"spec.disks[{d.name}].size") for d in manifest.spec.disks]
    if isinstance(manifest, Container):
        return [("root", manifest.spec.disk.pool, manifest.spec.disk.size, "spec.disk.size")]
    return []


def kept_volume_problems(
    resources: Sequence[Resource], observation: Observation
) -> tuple[list[str], list[str]]:
    """What the kept volumes of the guests to apply mean for the plan: refusals (a kept
    volume larger than its disk asks) and unmet grows (smaller, on a host that cannot grow
    it)."""
    refused: list[str] = []
    unmet: list[str] = []
    can_grow = observation.host.capabilities.get("volume-resize", False)
    # One pass over the pools' records, not one per guest disk (that was quadratic).
    records = _records_by_owner(observation)
    for res in resources:
        wanted = _wanted(res)
        if not wanted:
            continue
        guest = observation.objects.get(res.ref)
        # What the guest has attached now (its volumes also list its detached ones).
        attached = set(guest.extra.get("sources", ())) if guest is not None else set()
        owner = str(res.ref)
        for disk, pool_name, size, where in wanted:
            for name, info in records.get((pool_name, owner, disk), ()):
                if info.get("path") in attached:
                    continue
                capacity = int(info.get("capacity", 0))
                have, asked = format_quantity(capacity), format_quantity(size)
                if capacity > size:
                    refused.append(
                        f"{res.file}:{res.line}: {res.ref}: {where}: the kept volume "
                        f"{pool_name}/{name} it gets back is {have}, larger than the {asked} "
                        f"asked (a disk never shrinks): set {have}, or delete the volume "
                        f"first (recon delete volume {pool_name}/{name})"
                    )
                elif capacity < size and not can_grow:
                    unmet.append(
                        f"{res.ref}: {where}: the kept volume {pool_name}/{name} it gets back "
                        f"is {have}; this host cannot grow it to {asked} (volume-resize is "
                        "not supported); attached as it is"
                    )
    return refused, unmet


def _records_by_owner(
    observation: Observation,
) -> dict[tuple[str, str, str], list[tuple[str, dict[str, Any]]]]:
    """The pools' volume records that name a volume the pool has, by (pool, owner, disk)."""
    index: dict[tuple[str, str, str], list[tuple[str, dict[str, Any]]]] = {}
    for ref, pool in observation.objects.items():
        if ref.kind != "StoragePool":
            continue
        volumes = pool.extra.get("volumes", {})
        for name, record in pool.extra.get("records", {}).items():
            info = volumes.get(name)
            if info is not None:
                key = (ref.name, str(record.get("owner")), str(record.get("disk")))
                index.setdefault(key, []).append((name, info))
    return index
