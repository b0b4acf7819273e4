"""StoragePools and their volumes: observed in bulk, a pool's XML defined and started here.

Guests make and delete their disks through the volume functions at the end (`pool_named`,
`find_volume`, `create_volume`, `delete_volume_at`); Templates record themselves in their pool's
stamp through `set_template_stamp`.
"""

from __future__ import annotations

from dataclasses import dataclass

import libvirt

from reconciler.model.kinds import StoragePool
from reconciler.model.plan import Action, Change
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.providers.base import (
    ApplyContext,
    NotOwnedError,
    Observed,
    ProviderError,
    Stamp,
)
from reconciler.providers.libvirt import xml as lx
from reconciler.providers.libvirt.common import (
    Host,
    check_owned,
    lookup,
    make_stamp,
    undefine_on_error,
    unless_vanished,
    via,
)
from reconciler.providers.libvirt.parse_cache import ParseCache

# pool name -> its volumes, as a loop last observed them (see LibvirtProvider).
VolumeCache = dict[str, list[lx.ParsedVolume]]


@dataclass(frozen=True, slots=True)
class StorageSeen:
    """What one observation read of the host's storage: each pool, and every volume by its
    path (how a guest's disk is matched to its pool and size)."""

    pools: list[lx.ParsedPool]
    by_path: dict[str, tuple[str, lx.ParsedVolume]]


# --- observe -------------------------------------------------------------------------------


def observe(
    host: Host,
    objects: dict[ResourceRef, Observed],
    kept: VolumeCache | None,
    parses: ParseCache | None = None,
) -> StorageSeen:
    """kept: a loop's volumes, kept between its passes; parses: the last command's, kept in
    the state directory (a one-shot observation)."""
    seen = StorageSeen([], {})
    for pool in host.conn.listAllStoragePools(0):
        with unless_vanished():
            seen.pools.append(_observe_pool(host, pool, objects, seen.by_path, kept, parses))
    return seen


def _observe_pool(
    host: Host,
    pool: libvirt.virStoragePool,
    objects: dict[ResourceRef, Observed],
    by_path: dict[str, tuple[str, lx.ParsedVolume]],
    kept: VolumeCache | None,
    parses: ParseCache | None,
) -> lx.ParsedPool:
    parsed = lx.parse_pool(pool_xml(host, pool))
    fields = dict(parsed.fields)
    fields["autostart"] = bool(pool.autostart())
    ref = ResourceRef("StoragePool", parsed.name)
    paths: list[str] = []
    volumes: dict[str, dict[str, object]] = {}
    active = bool(pool.isActive())
    if active:
        for pv in _pool_volumes(pool, parsed.name, kept, parses):
            by_path[pv.path] = (parsed.name, pv)
            paths.append(pv.path)
            volumes[pv.name] = {
                "path": pv.path,
                "capacity": pv.capacity,
                "backing": pv.backing_path,
            }
    objects[ref] = Observed(
        ref,
        fields,
        parsed.stamp,
        uuid=parsed.uuid,
        extra={
            "templates": parsed.templates,
            "active": active,
            # Its volumes (for `recon get volumes`), and what recon recorded of those it made.
            "volumes": volumes,
            "records": parsed.volumes,
        },
        in_use_by=tuple(sorted(paths)),
    )
    return parsed


def _pool_volumes(
    pool: libvirt.virStoragePool, name: str, kept: VolumeCache | None, parses: ParseCache | None
) -> list[lx.ParsedVolume]:
    known = kept.get(name) if kept is not None else None
    if known is not None:
        return known
    parse = parses.volume if parses is not None else lx.parse_volume
    found = []
    for vol in pool.listAllVolumes(0):
        with unless_vanished():
            found.append(parse(vol.XMLDesc(0)))
    if kept is not None:
        kept[name] = found
    return found


def pool_xml(host: Host, pool: libvirt.virStoragePool) -> str:
    """The persistent definition: what a redefinition changed, even while active."""
    if host.driver == "test":  # the test driver has one definition and no INACTIVE flag
        return str(pool.XMLDesc(0))
    return str(pool.XMLDesc(libvirt.VIR_STORAGE_XML_INACTIVE))


# --- apply ---------------------------------------------------------------------------------


def apply_pool(host: Host, change: Change, resource: Resource | None, context: ApplyContext) -> str:
    name = change.ref.name
    pool = lookup(host.conn.storagePoolLookupByName, name)
    if change.action is Action.DELETE:
        if pool is None:
            return "already gone"
        check_owned(change.ref, lx.parse_pool(pool_xml(host, pool)).stamp, context)
        if pool.isActive() and pool.listAllVolumes(0):
            raise ProviderError(
                f"{change.ref} still holds volumes; not deleted",
                "delete its guests' volumes first (--delete-volumes)",
            )
        if pool.isActive():
            pool.destroy()
        pool.undefine()
        host.pending_volumes.pop(name, None)
        return "deleted"
    assert resource is not None and isinstance(resource.manifest, StoragePool)
    templates: dict[str, Stamp] = {}
    kept: dict[str, dict[str, str]] = {}
    existing_uuid: str | None = None
    if pool is not None:
        parsed = lx.parse_pool(pool_xml(host, pool))
        if change.action is not Action.CREATE or parsed.stamp is None:
            check_owned(change.ref, parsed.stamp, context)
        templates, existing_uuid, kept = parsed.templates, parsed.uuid, parsed.volumes
        if change.action is Action.REPLACE:
            if pool.isActive() and pool.listAllVolumes(0):
                raise ProviderError(f"{change.ref} holds volumes; it cannot be replaced")
            if pool.isActive():
                pool.destroy()
            pool.undefine()
            pool, existing_uuid = None, None
    stamp = make_stamp(resource, context, via=via(host))
    xml_text = lx.build_pool(
        resource.manifest, uuid=existing_uuid, stamp=stamp, templates=templates, volumes=kept
    )
    new = pool is None
    pool = _define_pool(host, xml_text)
    if not pool.isActive():
        with undefine_on_error(pool if new else None):
            if host.driver != "test":
                # A dir pool: makes the directory, keeps one that exists with its files.
                # (NO_OVERWRITE is for pools that format a device; dir pools refuse it.)
                pool.build(0)
            pool.create(0)
    pool.setAutostart(1 if resource.manifest.spec.autostart else 0)
    return "defined and started" if change.action is Action.CREATE else "updated"


def apply_volume(
    host: Host, change: Change, resource: Resource | None, context: ApplyContext
) -> str:
    """`recon delete volume POOL/NAME`: a guest volume recon made (recorded in its pool's
    stamp or a guest's), which no domain uses and no volume backs onto. The way out for the
    volumes a guest deleted without --delete-volumes left behind."""
    if change.action is not Action.DELETE:
        raise ProviderError(f"{change.ref}: a volume is only ever deleted by name")
    pool_name, _, vol_name = change.ref.name.partition("/")
    pool = pool_named(host, pool_name)
    vol = find_volume(pool, vol_name) if pool is not None and pool.isActive() else None
    if vol is None:
        return "already gone"
    path = vol.path()
    parsed = lx.parse_pool(pool_xml(host, pool))
    images = {
        image
        for tstamp in parsed.templates.values()
        for image in (tstamp.record.get("image"), *(tstamp.record.get("images") or ()))
        if isinstance(image, str)
    }
    if vol_name in images or vol_name.startswith("template-"):
        raise NotOwnedError(
            f"{change.ref} is a template image; not deleted",
            "delete its Template (recon delete template NAME)",
        )
    if vol_name not in volume_records(host, pool_name) and not _in_guest_record(context, path):
        raise NotOwnedError(
            f"{change.ref} was not made by recon (no record of it); left untouched",
            f"remove it yourself if it is not needed (virsh vol-delete {vol_name} --pool "
            f"{pool_name})",
        )
    users = sorted({str(ref) for ref in context.observation.users_of(path)})
    users += context.observation.shared.get(f"file:{path}", [])
    if users:
        raise ProviderError(
            f"{change.ref} is in use by {', '.join(users)}; not deleted",
            "remove the disk from the guest (or delete the guest) first",
        )
    backed = volumes_backed_by(host, path)
    if backed:
        raise ProviderError(
            f"{change.ref} is the backing file of {', '.join(backed)}; not deleted",
            "delete those volumes first",
        )
    delete_volume_at(host, path)
    return "deleted"


def _in_guest_record(context: ApplyContext, path: str) -> bool:
    """Whether an owned guest's stamp records the volume as one recon made or attached."""
    for obs in context.observation.objects.values():
        if obs.owned and obs.stamp is not None and obs.ref.kind in ("VirtualMachine", "Container"):
            recorded = obs.stamp.record.get("volumes")
            if isinstance(recorded, list) and path in recorded:
                return True
    return False


def _define_pool(host: Host, xml_text: str) -> libvirt.virStoragePool:
    """Define or redefine a pool. The test driver parks a redefinition of an active pool
    where nothing reads it, so there the pool is cycled; its volumes (metadata only on
    that driver) are put back as they were."""
    pool = lookup(host.conn.storagePoolLookupByName, lx.parse_pool(xml_text).name)
    if host.driver != "test" or pool is None or not pool.isActive():
        return host.conn.storagePoolDefineXML(xml_text, 0)
    volumes = [vol.XMLDesc(0) for vol in pool.listAllVolumes(0)]
    autostart = pool.autostart()
    pool.destroy()
    pool = host.conn.storagePoolDefineXML(xml_text, 0)
    pool.create(0)
    pool.setAutostart(autostart)
    existing = set(pool.listVolumes())
    for vol_xml in volumes:
        if lx.parse_volume(vol_xml).name not in existing:
            pool.createXML(vol_xml, 0)
    return pool


def set_template_stamp(host: Host, pool_name: str, template: str, stamp: Stamp | None) -> None:
    """Record (or, with None, forget) a Template in the stamp of the pool holding its image."""
    pool = host.conn.storagePoolLookupByName(pool_name)
    parsed = lx.parse_pool(pool_xml(host, pool))
    if parsed.stamp is None:
        raise NotOwnedError(
            f"StoragePool/{pool_name} is not managed by recon; templates live in recon's pools"
        )
    templates = dict(parsed.templates)
    if stamp is None:
        templates.pop(template, None)
    else:
        templates[template] = stamp
    _define_pool(host, lx.build_pool_from_parsed(parsed, templates=templates))


def volume_records(host: Host, pool_name: str) -> dict[str, dict[str, str]]:
    """What recon recorded of the volumes of a pool it owns (name -> owner and disk), with
    what is still waiting to be written; none for a pool it does not own."""
    pool = pool_named(host, pool_name)
    records = {} if pool is None else dict(lx.parse_pool(pool_xml(host, pool)).volumes)
    for name, record in host.pending_volumes.get(pool_name, {}).items():
        if record is None:
            records.pop(name, None)
        else:
            records[name] = record
    return records


def record_volumes(host: Host, pool_name: str, changes: dict[str, dict[str, str] | None]) -> None:
    """Record (or, with None, forget) volumes in their pool's stamp at the next flush."""
    host.pending_volumes.setdefault(pool_name, {}).update(changes)


def write_volume_records(host: Host) -> list[str]:
    """Write the pending volume records into the pools' stamps, one definition per pool; the
    pools recon does not own (no stamp to carry them) come back by name."""
    unrecorded = []
    for pool_name, changes in sorted(host.pending_volumes.items()):
        pool = pool_named(host, pool_name)
        parsed = lx.parse_pool(pool_xml(host, pool)) if pool is not None else None
        if parsed is None or parsed.stamp is None:
            if pool is not None and any(v is not None for v in changes.values()):
                unrecorded.append(pool_name)
            continue
        volumes = dict(parsed.volumes)
        for name, record in changes.items():
            if record is None:
                volumes.pop(name, None)
            else:
                volumes[name] = record
        if volumes != parsed.volumes:
            _define_pool(
                host, lx.build_pool_from_parsed(parsed, templates=parsed.templates, volumes=volumes)
            )
    host.pending_volumes.clear()
    return unrecorded


def template_stamp(host: Host, pool_name: str, template: str) -> Stamp | None:
    """The record of a Template in its pool's stamp, as the host has it now."""
    pool = pool_named(host, pool_name)
    if pool is None:
        return None
    return lx.parse_pool(pool_xml(host, pool)).templates.get(template)


# --- volumes, for the kinds that keep their data in a pool ----------------------------------


def pool_named(host: Host, name: str) -> libvirt.virStoragePool | None:
    return lookup(host.conn.storagePoolLookupByName, name)


def find_volume(pool: libvirt.virStoragePool, vol_name: str) -> libvirt.virStorageVol | None:
    """The volume, or None when it does not exist."""
    return lookup(pool.storageVolLookupByName, vol_name)


def create_volume(pool: libvirt.virStoragePool, xml_text: str) -> libvirt.virStorageVol:
    return pool.createXML(xml_text, 0)


def volume_exists_at(host: Host, path: str) -> bool:
    return lookup(host.conn.storageVolLookupByPath, path) is not None


def volumes_backed_by(host: Host, path: str) -> list[str]:
    """The volumes of any active pool whose backing file is `path` (one listing per pool:
    for deletes, not for the observation)."""
    found = []
    for pool in host.conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
        with unless_vanished():
            for vol in pool.listAllVolumes(0):
                with unless_vanished():
                    if lx.parse_volume(vol.XMLDesc(0)).backing_path == path:
                        found.append(vol.path())
    return found


def backing_file_of(host: Host, path: str) -> str | None:
    vol = lookup(host.conn.storageVolLookupByPath, path)
    return lx.parse_volume(vol.XMLDesc(0)).backing_path if vol is not None else None


def delete_volume_at(host: Host, path: str) -> None:
    """Delete the volume at a path (and forget its record); one that is already gone is not
    an error."""
    try:
        vol = host.conn.storageVolLookupByPath(path)
        record_volumes(host, vol.storagePoolLookupByVolume().name(), {vol.name(): None})
        vol.delete(0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
            raise
