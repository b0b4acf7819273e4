"""Templates: an image uploaded into a pool volume, and recorded in that pool's stamp (a
volume has no metadata of its own to carry one).

- source.file: the file, verified against its sha256, becomes `template-<name>.<format>`.
- source.build: the build of the template's revision in recon's artifact cache (made by
  reconciler.build before the apply took the host lock) becomes `template-<name>-<id>.<format>`,
  with a VM template's kernel and initrd beside it (`.vmlinuz`, `.initrd`). A new build never
  overwrites an image: the older images stay while a volume backs onto one (a guest keeps the
  image it was made from) and are deleted with the first apply that finds none does. The
  stamp's record lists them, with the build's digest, time and packages.

Guests find a template's image through `image_volume`.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import libvirt

from reconciler.model.artifacts import Artifact, boot_volume_names
from reconciler.model.kinds import Template
from reconciler.model.plan import Action, Change
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.providers.artifacts import cached, file_sha256
from reconciler.providers.base import ApplyContext, Observed, ProviderError
from reconciler.providers.libvirt import storage
from reconciler.providers.libvirt import xml as lx
from reconciler.providers.libvirt.common import Host, lookup, make_stamp, via


def observe(
    seen: storage.StorageSeen, objects: dict[ResourceRef, Observed], home: Path | None = None
) -> None:
    """The Templates recorded in pool stamps whose image is still in the pool, each with the
    volumes whose backing file is one of its images (they break if the image goes)."""
    backed: dict[str, list[str]] = {}
    for path, (_pool, vol) in seen.by_path.items():
        if vol.backing_path:
            backed.setdefault(vol.backing_path, []).append(path)
    images = {(pool, vol.name): path for path, (pool, vol) in seen.by_path.items()}
    for pool in seen.pools:
        pool_name = pool.name
        for tname, tstamp in pool.templates.items():
            fmt = tstamp.applied.get("format", "qcow2")
            record = tstamp.record
            tref = ResourceRef("Template", tname)
            fields: dict[str, Any] = {"pool": pool_name, "format": fmt}
            if record.get("type") == "application":
                # No image of its own: built into the caches of the containers that list it.
                fields["revision"] = record.get("revision")
                objects[tref] = Observed(tref, fields, tstamp)
                continue
            current = images.get((pool_name, _image_name(tname, fmt, record)))
            if current is None:
                continue  # its image is gone: the Template must be created again
            paths = {
                name: images[(pool_name, name)]
                for name in _images(tname, fmt, record)
                if (pool_name, name) in images
            }
            # A VM template's kernel and initrd go with their image (a prune that frees the
            # template frees them too).
            boot = [
                images[(pool_name, part)]
                for name in paths
                for part in boot_volume_names(name)
                if (pool_name, part) in images
            ]
            if isinstance(record.get("revision"), str):
                fields["revision"] = _observed_revision(home, tname, record)
            objects[tref] = Observed(
                tref,
                fields,
                tstamp,
                in_use_by=tuple(sorted(u for p in paths.values() for u in backed.get(p, ()))),
                volumes=(*paths.values(), *boot),
                extra={"users": {name: sorted(backed.get(p, ())) for name, p in paths.items()}},
            )


def _image_name(tname: str, fmt: str, record: Mapping[str, Any]) -> str:
    image = record.get("image")
    return image if isinstance(image, str) else lx.template_volume_name(tname, fmt)


def _images(tname: str, fmt: str, record: Mapping[str, Any]) -> list[str]:
    """Every image of the template the host keeps, the current one first."""
    current = _image_name(tname, fmt, record)
    kept = record.get("images")
    older = [n for n in kept if isinstance(n, str) and n != current] if kept else []
    return [current, *older]


def _observed_revision(home: Path | None, tname: str, record: Mapping[str, Any]) -> str:
    """The revision on the host; marked when recon's cache holds a newer build of it (the
    repository moved and the template was refreshed), so that the refresh is a change."""
    revision = str(record["revision"])
    if home is not None:
        newer = cached(home, revision)
        if (
            newer is not None
            and newer.id != record.get("artifact")
            and newer.built_at > str(record.get("builtAt", ""))
        ):
            return f"{revision[:12]} (rebuilt since)"
    return revision[:12]


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
                fmt = str(obs.fields["format"])
                _delete_images(pool, _images(change.ref.name, fmt, obs.stamp.record))
                storage.set_template_stamp(host, pool_name, change.ref.name, None)
        if change.action is Action.DELETE:
            return "image deleted"
    assert resource is not None and isinstance(resource.manifest, Template)
    spec = resource.manifest.spec
    if spec.type == "application":
        revision = resource.inputs.get("revision")
        record = {"type": "application", "revision": revision, "base": spec.base}
        stamp = make_stamp(resource, context, via=via(host))
        stamp = dataclasses.replace(stamp, record={**stamp.record, **record})
        storage.set_template_stamp(host, spec.pool, resource.ref.name, stamp)
        return "recorded: it is built into the cache of each container that lists it"
    if spec.source.build is not None:
        return _apply_built(host, change, resource, context)
    assert spec.source.file is not None
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
    stamp = make_stamp(resource, context, via=via(host))
    storage.set_template_stamp(host, spec.pool, resource.ref.name, stamp)
    return ("image created" if change.action is not Action.UPDATE else "updated") + note


def _apply_built(host: Host, change: Change, resource: Resource, context: ApplyContext) -> str:
    """Upload the build of the template's revision (unless the pool has it), make it the
    image new guests get, and delete the older images no volume backs onto any more."""
    manifest = resource.manifest
    assert isinstance(manifest, Template)
    spec = manifest.spec
    revision = str(resource.inputs.get("revision", ""))
    artifact = cached(host.home, revision) if host.home and revision else None
    if artifact is None:
        cause = context.build_errors.get(str(resource.ref))
        raise ProviderError(
            f"{resource.ref}: {cause or 'its revision ' + revision + ' is not built'}; "
            "nothing of it was uploaded",
            None if cause else f"build it: recon template build {manifest.name}",
        )
    pool = host.conn.storagePoolLookupByName(spec.pool)
    uploaded = _upload_artifact(host, pool, artifact, artifact.volume(manifest.name))
    obs = context.observation.objects.get(change.ref)
    before = obs.stamp.record if obs is not None and obs.stamp is not None else {}
    users: dict[str, list[str]] = obs.extra.get("users", {}) if obs is not None else {}
    image = artifact.volume(manifest.name)
    kept = [image]
    gone = 0
    for old in _images(manifest.name, spec.format, before) if obs is not None else []:
        if old == image:
            continue
        if any(storage.volume_exists_at(host, p) for p in users.get(old, ())):
            kept.append(old)
        else:
            gone += _delete_images(pool, [old])
    stamp = make_stamp(resource, context, via=via(host))
    record = {**stamp.record, **artifact.record(manifest.name), "images": kept}
    stamp = dataclasses.replace(stamp, record=record)
    storage.set_template_stamp(host, spec.pool, manifest.name, stamp)
    if not host.capabilities.get("volume-upload"):
        parts = [f"{image} recorded (this host keeps no volume contents: not uploaded)"]
    else:
        parts = [f"{image} {'uploaded' if uploaded else 'already in the pool'}"]
    if len(kept) > 1:
        parts.append(f"{len(kept) - 1} older image(s) kept: guests' disks back onto them")
    if gone:
        parts.append(f"{gone} unused older image(s) deleted")
    return "; ".join(parts)


def release_older_images(host: Host, images: Iterable[str]) -> list[str]:
    """Older images of built templates that no volume backs onto any more (the disks just
    deleted were the last): deleted now, with their kernel and initrd, and dropped from the
    template's record. The current image of a template stays whatever uses it."""
    notes = []
    for path in sorted(set(images)):
        vol = lookup(host.conn.storageVolLookupByPath, path)
        if vol is None:
            continue
        pool = vol.storagePoolLookupByVolume()
        name = posixpath.basename(path)
        for tname, tstamp in lx.parse_pool(storage.pool_xml(host, pool)).templates.items():
            kept = tstamp.record.get("images") or []
            if name not in kept or name == tstamp.record.get("image"):
                continue
            if storage.volumes_backed_by(host, path):
                break
            _delete_images(pool, [name])
            record = {**tstamp.record, "images": [i for i in kept if i != name]}
            storage.set_template_stamp(
                host, pool.name(), tname, dataclasses.replace(tstamp, record=record)
            )
            notes.append(f"older image {name} of Template/{tname} deleted: no disk uses it")
    return notes


def _upload_artifact(
    host: Host, pool: libvirt.virStoragePool, artifact: Artifact, image: str
) -> bool:
    """The image (and a VM template's kernel and initrd) as pool volumes; False when the
    pool already had them. Boot files first: the image's presence means a complete set."""
    files: list[tuple[str, Path, str]] = []
    if artifact.kernel is not None and artifact.initrd is not None:
        kernel, initrd = boot_volume_names(image)
        files += [(kernel, artifact.kernel, "raw"), (initrd, artifact.initrd, "raw")]
    fmt = "qcow2" if artifact.format == "qcow2" else "raw"
    files.append((image, artifact.image, fmt))
    made = False
    for name, path, vol_fmt in files:
        if storage.find_volume(pool, name) is not None:
            continue
        size = path.stat().st_size
        vol = storage.create_volume(pool, lx.build_volume(name, capacity=size, fmt=vol_fmt))
        made = True
        if host.capabilities.get("volume-upload"):
            try:
                _upload(host.conn, vol, path, size)
            except (libvirt.libvirtError, OSError):
                # Half an image is worse than none: the next apply uploads it again.
                vol.delete(0)
                raise
    return made


def _delete_images(pool: libvirt.virStoragePool, names: Iterable[str]) -> int:
    """Delete images with their kernel and initrd; how many images were there."""
    count = 0
    for name in names:
        for part in (name, *boot_volume_names(name)):
            vol = storage.find_volume(pool, part)
            if vol is not None:
                vol.delete(0)
                count += part == name
    return count


def _refuse_backing(host: Host, ref: ResourceRef, backed: tuple[str, ...]) -> None:
    """A template image is never deleted while a volume backs onto it: the volume would point
    at a file that is gone. (The observation named them; those deleted since do not count.)"""
    left = [
        path for path in backed if path.startswith("/") and storage.volume_exists_at(host, path)
    ]
    if left:
        raise ProviderError(
            f"{ref}: its image is the backing file of {', '.join(left)}; not deleted",
            "delete those disks first (delete their guests with --delete-volumes)",
        )
    # Guests of the other driver of the same libvirtd (sharing.template_users) that were made
    # from it or run on its image.
    guests = [user for user in backed if not user.startswith("/")]
    if guests:
        raise ProviderError(
            f"{ref} is in use by {', '.join(guests)}; not deleted",
            "delete those guests first, through their own connection",
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
        if res.manifest.spec.source.build is not None:
            stamp = storage.template_stamp(host, pool_name, template)
            if stamp is not None:
                vol_name = _image_name(template, fmt, stamp.record)
        pool = lookup(host.conn.storagePoolLookupByName, pool_name)
        vol = lookup(pool.storageVolLookupByName, vol_name) if pool is not None else None
        if vol is not None:
            return lx.DiskVolume(pool_name, vol_name, vol.path(), fmt)
    raise ProviderError(f"Template/{template} has no image on the host")


def _verify_sha256(path: Path, expected: str) -> int:
    try:
        digest, size = file_sha256(path)
    except OSError as exc:
        raise ProviderError(f"cannot read template image {path}: {exc.strerror}") from None
    if digest != expected:
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
