"""Storage: pools (which carry recon's stamps and Template stamps) and volumes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

from reconciler.model.fields import Fields
from reconciler.model.kinds import StoragePool, Template
from reconciler.providers.base import Stamp
from reconciler.providers.libvirt.xml.common import (
    DISK_FORMATS,
    DiskVolume,
    amount,
    dump_json,
    parse,
    required,
    stamp_dict,
    stamp_from_dict,
    stamp_from_json,
    sub,
    text_of,
    to_string,
)

VENDOR = "recon"


# --- storage pools ----------------------------------------------------------------------------


@dataclass(slots=True)
class ParsedPool:
    name: str
    uuid: str | None
    fields: Fields
    stamp: Stamp | None
    templates: dict[str, Stamp] = field(default_factory=dict)
    # Guest volumes recon made that outlived their guest (deleted without --delete-volumes):
    # volume name -> {"owner": "VirtualMachine/NAME", "disk": DISK}. A volume has no metadata
    # of its own, so the pool's stamp keeps what recon knows of its kept volumes.
    volumes: dict[str, dict[str, str]] = field(default_factory=dict)


def _pool_xml(
    name: str,
    uuid: str | None,
    pool_type: str,
    path: str,
    stamp: Stamp,
    templates: dict[str, Stamp],
    volumes: dict[str, dict[str, str]] | None = None,
) -> str:
    data = stamp_dict(stamp, StoragePool.KIND)
    data["templates"] = {
        tname: stamp_dict(tstamp, Template.KIND) for tname, tstamp in sorted(templates.items())
    }
    if volumes:
        data["volumes"] = {vname: dict(rec) for vname, rec in sorted(volumes.items())}
    root = Element("pool", type=pool_type)
    sub(root, "name", name)
    if uuid is not None:
        sub(root, "uuid", uuid)
    source = sub(root, "source")
    sub(source, "vendor", name=VENDOR)
    sub(source, "product", name=dump_json(data))
    sub(sub(root, "target"), "path", path)
    return to_string(root)


def build_pool(
    manifest: StoragePool,
    *,
    uuid: str | None,
    stamp: Stamp,
    templates: dict[str, Stamp],
    volumes: dict[str, dict[str, str]] | None = None,
) -> str:
    """Pool XML. Pools have no <metadata>, but <source><vendor>/<product> names survive a
    round trip, so the stamp (and those of Templates whose images live in the pool) ride in the
    product name as JSON."""
    s = manifest.spec
    return _pool_xml(manifest.name, uuid, s.type, s.path, stamp, templates, volumes)


def build_pool_from_parsed(
    parsed: ParsedPool,
    *,
    templates: dict[str, Stamp],
    volumes: dict[str, dict[str, str]] | None = None,
) -> str:
    """The XML of a pool recon already owns, with new Template stamps or kept-volume records
    (None: those it has): recording either must not need the pool's manifest."""
    if parsed.stamp is None:
        raise ValueError(f"pool {parsed.name!r} carries no recon stamp")
    path = parsed.fields.get("path")
    if not isinstance(path, str) or not path:
        raise ValueError(f"pool {parsed.name!r} has no target path")
    pool_type = str(parsed.fields.get("type") or "dir")
    kept = parsed.volumes if volumes is None else volumes
    return _pool_xml(parsed.name, parsed.uuid, pool_type, path, parsed.stamp, templates, kept)


def parse_pool(xml_text: str) -> ParsedPool:
    root = parse(xml_text, "pool")
    fields: Fields = {"type": root.get("type", "")}
    path = text_of(root, "target/path")
    if path:
        fields["path"] = path
    stamp: Stamp | None = None
    templates: dict[str, Stamp] = {}
    volumes: dict[str, dict[str, str]] = {}
    vendor = root.find("source/vendor")
    product = root.find("source/product")
    if vendor is not None and vendor.get("name") == VENDOR and product is not None:
        text = product.get("name", "")
        found = stamp_from_json(text)
        if found is not None:
            stamp = found[1]
            data = json.loads(text)
            kept = data.get("volumes")
            if isinstance(kept, dict):
                for vname, rec in kept.items():
                    if isinstance(rec, dict):
                        volumes[str(vname)] = {str(k): str(v) for k, v in rec.items()}
            raw = data.get("templates")
            if isinstance(raw, dict):
                for name, value in raw.items():
                    tfound = stamp_from_dict(value)
                    if tfound is not None:
                        templates[name] = tfound[1]
    return ParsedPool(
        name=required(root, "name"),
        uuid=text_of(root, "uuid"),
        fields=fields,
        stamp=stamp,
        templates=templates,
        volumes=volumes,
    )


# --- volumes ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedVolume:
    name: str
    path: str
    capacity: int
    format: str | None
    backing_path: str | None


def build_volume(name: str, *, capacity: int, fmt: str, backing: DiskVolume | None = None) -> str:
    if "/" in name or name.startswith("."):
        raise ValueError(f"volume name {name!r} must be a plain file name")
    if fmt not in DISK_FORMATS:
        raise ValueError(f"volume format {fmt!r} is not one of {sorted(DISK_FORMATS)}")
    root = Element("volume")
    sub(root, "name", name)
    sub(root, "capacity", capacity, unit="bytes")
    # Without <allocation> libvirt allocates the whole capacity up front; recon wants sparse
    # files, as `qemu-img create` makes.
    sub(root, "allocation", 0, unit="bytes")
    sub(sub(root, "target"), "format", type=fmt)
    if backing is not None:
        store = sub(root, "backingStore")
        sub(store, "path", backing.path)
        sub(store, "format", type=backing.format)
    return to_string(root)


def parse_volume(xml_text: str) -> ParsedVolume:
    root = parse(xml_text, "volume")
    target_format = root.find("target/format")
    return ParsedVolume(
        name=required(root, "name"),
        path=text_of(root, "target/path") or "",
        capacity=amount(root.find("capacity"), 1) or 0,
        format=target_format.get("type") if target_format is not None else None,
        backing_path=text_of(root, "backingStore/path") or None,
    )
