"""A guest's disks as pool volumes: which volume is whose, made or found for each disk, grown
where the host can, and what becomes of them when the guest goes.

A volume has no metadata of its own, so recon keeps what it knows of one in two places:
- the guest's stamp record (`volumes`): every volume recon made for the guest or attached to
  it, detached disks included, while the guest exists;
- its pool's stamp (`volumes`): each volume recon made, with the guest it was made for, kept
  while the volume exists: a guest deleted without --delete-volumes (or behind recon's back)
  leaves volumes that can be listed and deleted later (`recon get volumes --orphaned`,
  `recon delete volume POOL/NAME`) or re-attached to a guest of the same name. Written when
  the provider flushes (storage.write_volume_records), once per pool.

A volume that is in neither and that no guest recon owns uses is not recon's: a guest never
takes it over without --adopt, and --delete-volumes never deletes it. Volumes made by earlier
versions are in neither record but are attached to their guest, which makes them its own.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable

import libvirt

from reconciler.model.kinds import Container, VirtualMachine
from reconciler.model.quantity import format_quantity
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.providers.base import (
    ApplyContext,
    NotOwnedError,
    Observed,
    ProviderError,
    Stamp,
)
from reconciler.providers.libvirt import storage, templates
from reconciler.providers.libvirt import xml as lx
from reconciler.providers.libvirt.common import Host, lookup
from reconciler.providers.libvirt.guests import lxc


def own_paths(stamp: Stamp | None, attached: Iterable[str]) -> set[str]:
    """The volumes a guest owns: those its stamp records and those attached to it."""
    recorded = stamp.record.get("volumes") if stamp is not None else None
    own = {p for p in recorded if isinstance(p, str)} if isinstance(recorded, list) else set()
    return own | set(attached)


def note_recorded(
    objects: dict[ResourceRef, Observed], by_path: dict[str, tuple[str, lx.ParsedVolume]]
) -> None:
    """Each owned guest's volumes include the detached ones its stamp records (still on the
    host): deleting the guest with --delete-volumes deletes them too, and a prune's plan
    counts them as freed."""
    for obs in objects.values():
        if obs.ref.kind not in ("VirtualMachine", "Container") or not obs.owned:
            continue
        extra = [p for p in own_paths(obs.stamp, ()) if p in by_path and p not in obs.volumes]
        if extra:
            obs.volumes = (*obs.volumes, *sorted(extra))


def guest_volumes(
    host: Host,
    resource: Resource,
    context: ApplyContext,
    attached: dict[str, str],
    own: set[str],
    notes: list[str],
) -> tuple[dict[str, lx.DiskVolume], dict[str, str]]:
    """Create what is missing: each disk's volume (with its template as backing file). A disk
    the guest already has keeps its volume (one named before the "_" separator too); a volume
    another guest uses is never attached, nor one recon did not make (without --adopt). Also
    returns the backing file of each disk made from a template (the image it was made from,
    which may be an older build). `own` gains the volumes the guest now has."""
    manifest = resource.manifest
    wanted: list[tuple[str, str, int, str | None, str]] = []
    if isinstance(manifest, VirtualMachine):
        for disk in manifest.spec.disks:
            wanted.append((disk.name, disk.pool, disk.size, disk.template, disk.format))
    elif isinstance(manifest, Container):
        wanted.append(("root", manifest.spec.disk.pool, manifest.spec.disk.size, None, "raw"))
    # Every disk's existing volume checked before anything is made: a refusal leaves the
    # host as it was.
    found: dict[str, libvirt.virStorageVol | None] = {}
    for disk_name, pool_name, size, _template, fmt in wanted:
        pool = host.conn.storagePoolLookupByName(pool_name)
        vol_name = lx.volume_name(resource.ref.name, disk_name, fmt)
        # The volume the guest has for this disk, if it is in this pool (one named before
        # the "_" separator too), else the one under the disk's name.
        have = attached.get(disk_name, "")
        vol = storage.find_volume(pool, posixpath.basename(have)) if have else None
        if vol is None or vol.path() != have:
            vol = storage.find_volume(pool, vol_name)
        if vol is not None:
            _refuse_shared(resource, disk_name, vol.path(), context)
            _claim(host, resource, disk_name, pool_name, vol, own, context)
            _refuse_larger(resource, disk_name, pool_name, vol, size, attached)
        found[disk_name] = vol
    out: dict[str, lx.DiskVolume] = {}
    backings: dict[str, str] = {}
    for disk_name, pool_name, size, template, fmt in wanted:
        vol = found[disk_name]
        if vol is None:
            pool = host.conn.storagePoolLookupByName(pool_name)
            vol_name = lx.volume_name(resource.ref.name, disk_name, fmt)
            backing = templates.image_volume(host, template, context) if template else None
            root_from = None
            if isinstance(manifest, Container) and host.driver == "lxc":
                root_from = lxc.root_archive(host, manifest, context)
            vol = storage.create_volume(
                pool, lx.build_volume(vol_name, capacity=size, fmt=fmt, backing=backing)
            )
            storage.record_volumes(
                host, pool_name, {vol_name: {"owner": str(resource.ref), "disk": disk_name}}
            )
            if root_from is not None:
                lxc.make_root(host, vol, root_from)
            if backing is not None:
                backings[disk_name] = backing.path
        else:
            _recorded(host, context, resource, disk_name, pool_name, vol.name())
            notes += grow(host, vol, disk_name, size)
            if template:
                backing_path = lx.parse_volume(vol.XMLDesc(0)).backing_path
                if backing_path:
                    backings[disk_name] = backing_path
        own.add(vol.path())
        out[disk_name] = lx.DiskVolume(pool_name, vol.name(), vol.path(), fmt)
    return out, backings


def _claim(
    host: Host,
    resource: Resource,
    disk: str,
    pool_name: str,
    vol: libvirt.virStorageVol,
    own: set[str],
    context: ApplyContext,
) -> None:
    """A volume with the disk's name is the guest's when the guest has it already, when recon
    kept it from a guest of this name, or when --adopt takes it over; never otherwise."""
    if vol.path() in own:
        return
    record = storage.volume_records(host, pool_name).get(vol.name())
    if record is not None and record.get("owner") == str(resource.ref):
        return
    if context.adopt:
        return
    whose = f" (kept from {record['owner']})" if record and record.get("owner") else ""
    raise NotOwnedError(
        f"{resource.ref}: disk {disk}: the volume {pool_name}/{vol.name()} exists but recon "
        f"did not make it for this guest{whose}; nothing was changed for the guest",
        "take it over with --adopt, or remove or rename the volume yourself",
    )


def _recorded(
    host: Host, context: ApplyContext, resource: Resource, disk: str, pool: str, name: str
) -> None:
    """A volume of the guest that its pool's stamp does not record yet (made by an earlier
    version): recorded now, from what the observation read (no extra read of the host)."""
    obs = context.observation.objects.get(ResourceRef("StoragePool", pool))
    records = obs.extra.get("records", {}) if obs is not None else {}
    if records.get(name, {}).get("owner") != str(resource.ref):
        storage.record_volumes(host, pool, {name: {"owner": str(resource.ref), "disk": disk}})


def _refuse_larger(
    resource: Resource,
    disk: str,
    pool_name: str,
    vol: libvirt.virStorageVol,
    size: int,
    attached: dict[str, str],
) -> None:
    """A volume the guest does not have attached yet (a disk removed and added back, a kept
    volume) that is larger than asked: a disk never shrinks in place, and attaching it would
    leave a plan that asks to replace it. Refused, saying what to do."""
    if vol.path() in attached.values():
        return
    capacity = int(vol.info()[1])
    if capacity > size:
        raise ProviderError(
            f"{resource.ref}: disk {disk}: the kept volume {pool_name}/{vol.name()} is "
            f"{format_quantity(capacity)}, larger than the {format_quantity(size)} asked; a "
            "disk never shrinks; nothing was changed for the guest",
            f"set the disk's size to {format_quantity(capacity)}, or delete the volume first "
            f"(recon delete volume {pool_name}/{vol.name()})",
        )


def grow(host: Host, vol: libvirt.virStorageVol, disk: str, size: int) -> list[str]:
    """Grow a disk's volume to its size where the host can; where it cannot, the disk is left
    as it is (the plan reported the grow as unmet) and the guest's other changes go on: a grow
    the host cannot make must not wedge every later change to the guest."""
    capacity = int(vol.info()[1])
    if size <= capacity:
        return []
    left = f"disk {disk} left at {format_quantity(capacity)}"
    if not host.capabilities.get("volume-resize", False):
        return [f"{left} (this host cannot resize volumes)"]
    try:
        vol.resize(size, 0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in (
            libvirt.VIR_ERR_NO_SUPPORT,
            libvirt.VIR_ERR_OPERATION_INVALID,
            libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
        ):
            raise
        return [f"{left} (the host refused the resize: {exc.get_error_message()})"]
    return []


def _refuse_shared(resource: Resource, disk: str, path: str, context: ApplyContext) -> None:
    others = other_users(context, path, resource.ref.name)
    if others:
        raise ProviderError(
            f"{resource.ref}: the volume {path} for disk {disk} is in use by "
            + ", ".join(others)
            + "; two guests on one disk would corrupt it",
            "rename the disk, or remove the volume from the other guest first",
        )


def other_users(context: ApplyContext, path: str, guest: str) -> list[str]:
    """The other guests, managed or not, whose disks or filesystems are the file at path
    (those of the other driver of the same libvirtd too)."""
    mine = [str(ref) for ref in context.observation.users_of(path) if ref.name != guest]
    return mine + context.observation.shared.get(f"file:{path}", [])


def keep(host: Host, owner: str, paths: Iterable[str]) -> list[str]:
    """The volumes of a guest deleted without them: recorded in their pools' stamps with
    their owner (already, when recon made them); says where they are and how to remove them."""
    by_pool: dict[str, dict[str, dict[str, str] | None]] = {}
    for path in sorted(set(paths)):
        vol = lookup(host.conn.storageVolLookupByPath, path)
        if vol is None:
            continue
        pool = vol.storagePoolLookupByVolume().name()
        disk = lx.disk_name_from_path(owner.split("/", 1)[-1], path) or ""
        by_pool.setdefault(pool, {})[vol.name()] = {"owner": owner, "disk": disk}
    notes = []
    for pool, records in sorted(by_pool.items()):
        storage.record_volumes(host, pool, records)
        names = ", ".join(f"{pool}/{n}" for n in sorted(records))
        notes.append(f"kept {names} (list: recon get volumes --orphaned)")
    return notes
