"""Templates: an image verified against its sha256 and uploaded into a pool volume, and
recorded in that pool's stamp (a volume has no metadata of its own to carry one).

Guests find a template's image through `image_volume`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import libvirt

from reconciler.model.kinds import Template
from reconciler.model.plan import Action, Change
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.providers.base import ApplyContext, Observed, ProviderError
from reconciler.providers.libvirt import storage
from reconciler.providers.libvirt import xml as lx
from reconciler.providers.libvirt.common import Host, lookup, make_stamp


def observe(seen: storage.StorageSeen, objects: dict[ResourceRef, Observed]) -> None:
    """The Templates recorded in pool stamps whose image is still in the pool, each with the
    volumes whose backing file is its image (they break if the image goes)."""
    backed: dict[str, list[str]] = {}
    for path, (_pool, vol) in seen.by_path.items():
        if vol.backing_path:
            backed.setdefault(vol.backing_path, []).append(path)
    images = {(pool, vol.name): path for path, (pool, vol) in seen.by_path.items()}
    for pool in seen.pools:
        pool_name = pool.name
        for tname, tstamp in pool.templates.items():
            fmt = tstamp.applied.get("format", "qcow2")
            image = images.get((pool_name, lx.template_volume_name(tname, fmt)))
            if image is None:
                continue  # its image is gone: the Template must be created again
            tref = ResourceRef("Template", tname)
            objects[tref] = Observed(
                tref,
                {"pool": pool_name, "format": fmt},
                tstamp,
                in_use_by=tuple(sorted(backed.get(image, ()))),
                volumes=(image,),
            )


def apply_template(
    host: Host, change: Change, resource: Resource | None, context: ApplyContext
) -> str:
    if change.action in (Action.DELETE, Action.REPLACE):
        obs = context.observation.objects.get(change.ref)
        if obs is not None and obs.stamp is not None:
            _refuse_backing(host, change.ref, obs.in_use_by)
            pool_name = str(obs.fields["pool"])
            pool = storage.pool_named(host, pool_name)
            if pool is not None:
                vol_name = lx.template_volume_name(change.ref.name, str(obs.fields["format"]))
                vol = storage.find_volume(pool, vol_name)
                if vol is not None:
                    vol.delete(0)
                storage.set_template_stamp(host, pool_name, change.ref.name, None)
        if change.action is Action.DELETE:
            return "image deleted"
    assert resource is not None and isinstance(resource.manifest, Template)
    spec = resource.manifest.spec
    source = Path(spec.source.file.path)
    if not source.is_absolute():
        source = Path(resource.file).parent / source
    size = _verify_sha256(source, spec.source.file.sha256)
    vol_name = lx.template_volume_name(resource.ref.name, spec.format)
    pool = host.conn.storagePoolLookupByName(spec.pool)
    vol = storage.find_volume(pool, vol_name)
    note = ""
    if vol is None:
        fmt = "qcow2" if spec.format == "qcow2" else "raw"
        vol = storage.create_volume(pool, lx.build_volume(vol_name, capacity=size, fmt=fmt))
        if host.capabilities.get("volume-upload"):
            _upload(host.conn, vol, source, size)
        else:
            note = " (this host keeps no volume contents: image not uploaded)"
    storage.set_template_stamp(host, spec.pool, resource.ref.name, make_stamp(resource, context))
    return ("image created" if change.action is not Action.UPDATE else "updated") + note


def _refuse_backing(host: Host, ref: ResourceRef, backed: tuple[str, ...]) -> None:
    """A template image is never deleted while a volume backs onto it: the volume would point
    at a file that is gone. (The observation named them; those deleted since do not count.)"""
    left = [path for path in backed if storage.volume_exists_at(host, path)]
    if left:
        raise ProviderError(
            f"{ref}: its image is the backing file of {', '.join(left)}; not deleted",
            "delete those disks first (delete their guests with --delete-volumes)",
        )


def image_volume(
    host: Host, template: str, context: ApplyContext, fmt: str = "qcow2"
) -> lx.DiskVolume:
    """The template's image volume: its manifest names the pool, so one lookup finds it
    (rather than reading every pool's stamp for every disk)."""
    res = context.resources.get(ResourceRef("Template", template))
    vol_name = lx.template_volume_name(template, fmt)
    if res is not None and isinstance(res.manifest, Template):
        pool_name = res.manifest.spec.pool
        pool = lookup(host.conn.storagePoolLookupByName, pool_name)
        vol = lookup(pool.storageVolLookupByName, vol_name) if pool is not None else None
        if vol is not None:
            return lx.DiskVolume(pool_name, vol_name, vol.path(), fmt)
    raise ProviderError(f"Template/{template} has no image on the host")


def _verify_sha256(path: Path, expected: str) -> int:
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
    except OSError as exc:
        raise ProviderError(f"cannot read template image {path}: {exc.strerror}") from None
    if digest.hexdigest() != expected:
        raise ProviderError(
            f"template image {path} does not match its sha256",
            "update spec.source.file.sha256, or restore the file",
        )
    return size


def _upload(conn: libvirt.virConnect, vol: libvirt.virStorageVol, path: Path, size: int) -> None:
    stream = conn.newStream(0)
    vol.upload(stream, 0, size, 0)
    with path.open("rb") as fh:

        def reader(_stream: Any, nbytes: int, _opaque: Any) -> bytes:
            return fh.read(nbytes)

        stream.sendAll(reader, None)
    stream.finish()
