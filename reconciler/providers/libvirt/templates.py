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


def observe(pools: list[storage.PoolSeen], objects: dict[ResourceRef, Observed]) -> None:
    """The Templates recorded in pool stamps whose image is still in the pool."""
    for seen in pools:
        for tname, tstamp in seen.parsed.templates.items():
            fmt = tstamp.applied.get("format", "qcow2")
            if lx.template_volume_name(tname, fmt) not in seen.volume_names:
                continue  # its image is gone: the Template must be created again
            tref = ResourceRef("Template", tname)
            objects[tref] = Observed(tref, {"pool": seen.parsed.name, "format": fmt}, tstamp)


def apply_template(
    host: Host, change: Change, resource: Resource | None, context: ApplyContext
) -> str:
    if change.action in (Action.DELETE, Action.REPLACE):
        obs = context.observation.objects.get(change.ref)
        if obs is not None and obs.stamp is not None:
            pool_name = str(obs.fields["pool"])
            if lookup(host.conn.storagePoolLookupByName, pool_name) is not None:
                vol_name = lx.template_volume_name(change.ref.name, str(obs.fields["format"]))
                vol = storage.find_volume(host, pool_name, vol_name)
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
    vol = storage.find_volume(host, spec.pool, vol_name)
    note = ""
    if vol is None:
        fmt = "qcow2" if spec.format == "qcow2" else "raw"
        vol = storage.create_volume(
            host, spec.pool, lx.build_volume(vol_name, capacity=size, fmt=fmt)
        )
        if host.capabilities.get("volume-upload"):
            _upload(host.conn, vol, source, size)
        else:
            note = " (this host keeps no volume contents: image not uploaded)"
    storage.set_template_stamp(host, spec.pool, resource.ref.name, make_stamp(resource, context))
    return ("image created" if change.action is not Action.UPDATE else "updated") + note


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
