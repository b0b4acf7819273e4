"""What every libvirt XML module shares: recon's namespace, names, element helpers, stamps."""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree as ET
from xml.etree.ElementTree import Element

from reconciler.model.patterns import NAME_PATTERN
from reconciler.providers.base import Stamp

NS = "http://recon.dev/xmlns/reconciler/v1"
# Without this ElementTree invents "ns0:" prefixes; libvirt keeps whatever prefix it is given,
# and "recon:" is what a person reading `virsh dumpxml` should see.
ET.register_namespace("recon", NS)

DISK_FORMATS = frozenset({"qcow2", "raw"})
TEMPLATE_FORMATS = frozenset({"qcow2", "tar"})

_NAME_RE = re.compile(NAME_PATTERN)
_UNSAFE_MARKUP = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
# Characters XML 1.0 cannot carry at all; ElementTree would write them and produce a document
# no parser accepts.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# --- names ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiskVolume:
    """Where a VM disk or a container root lives."""

    pool: str
    name: str
    path: str
    format: str


def _check_name(value: str, what: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a valid name")
    return value


GUEST_VOLUME_SEPARATOR = "_"


def volume_name(owner: str, disk: str, fmt: str) -> str:
    # Volume names become file names on the host, and libvirt's test driver accepts
    # "../../etc/evil": so every part is checked here, not trusted.
    _check_name(owner, "owner")
    _check_name(disk, "disk")
    if fmt not in DISK_FORMATS:
        raise ValueError(f"disk format {fmt!r} is not one of {sorted(DISK_FORMATS)}")
    # "_" never occurs in a name, so `<owner>_<disk>` reads back one way only: `db` with
    # disk `x-data` and `db-x` with disk `data` get two volumes, and no guest volume can
    # take a template image's name (`template-<name>.<format>`, which has no "_").
    return f"{owner}{GUEST_VOLUME_SEPARATOR}{disk}.{fmt}"


def template_volume_name(template: str, fmt: str) -> str:
    _check_name(template, "template")
    if fmt not in TEMPLATE_FORMATS:
        raise ValueError(f"template format {fmt!r} is not one of {sorted(TEMPLATE_FORMATS)}")
    return f"template-{template}.{fmt}"


def disk_name_from_path(owner: str, path: str) -> str | None:
    """The disk name in a volume path made by volume_name, or None if it is not one of owner's.
    Volumes made before the "_" separator (`<owner>-<disk>`) are still read as owner's: a
    guest keeps the disk it has."""
    base = posixpath.basename(path)
    for separator in (GUEST_VOLUME_SEPARATOR, "-"):
        prefix = f"{owner}{separator}"
        if not base.startswith(prefix):
            continue
        stem, dot, ext = base[len(prefix) :].rpartition(".")
        if dot and ext in DISK_FORMATS and _NAME_RE.fullmatch(stem):
            return stem
    return None


# --- element helpers --------------------------------------------------------------------------


def _check_text(value: str, what: str) -> str:
    if _NOT_XML.search(value):
        raise ValueError(f"{what} contains a character XML cannot carry")
    return value


def sub(parent: Element, tag: str, text: str | int | None = None, **attrs: str | int) -> Element:
    """A child element; every value passes the XML character check first."""
    elem = ET.SubElement(parent, tag)
    for key, value in attrs.items():
        elem.set(key, _check_text(str(value), f"attribute {key} of <{tag}>"))
    if text is not None:
        text = str(text)
        # Parsers turn a literal CR in text into LF, so it would not come back as written.
        if "\r" in text:
            raise ValueError(f"text of <{tag}> contains a carriage return")
        elem.text = _check_text(text, f"text of <{tag}>")
    return elem


def to_string(root: Element) -> str:
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"


def parse(xml_text: str, tag: str) -> Element:
    if _UNSAFE_MARKUP.search(xml_text):
        raise ValueError(f"refusing {tag} XML with a DOCTYPE or entity declaration")
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise ValueError(f"malformed {tag} XML: {exc}") from exc
    if root.tag != tag:
        raise ValueError(f"expected a <{tag}> document, got <{root.tag}>")
    return root


def _scale(unit: str | None, default: int) -> int:
    """Bytes per unit, the way libvirt reads unit attributes (case-insensitive, KB=1000)."""
    if not unit:
        return default
    lowered = unit.lower()
    if lowered in ("b", "byte", "bytes"):
        return 1
    powers = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}
    if lowered[0] not in powers:
        raise ValueError(f"unknown unit {unit!r}")
    rest = lowered[1:]
    if rest in ("", "ib"):
        base = 1024
    elif rest == "b":
        base = 1000
    else:
        raise ValueError(f"unknown unit {unit!r}")
    return int(base ** powers[lowered[0]])


def amount(elem: Element | None, default_scale: int) -> int | None:
    if elem is None or elem.text is None or not elem.text.strip():
        return None
    try:
        value = int(elem.text.strip())
    except ValueError as exc:
        raise ValueError(f"<{elem.tag}> holds {elem.text!r}, not an integer") from exc
    return value * _scale(elem.get("unit"), default_scale)


def child(elem: Element | None, *tags: str) -> Element | None:
    """The first element along `tags`, one plain tag a step. ElementTree finds a plain tag
    in C; a path ("a/b") goes through ElementPath in Python, several times slower, and
    observe does this for every domain."""
    for tag in tags:
        if elem is None:
            return None
        elem = elem.find(tag)
    return elem


def children(elem: Element | None, *tags: str) -> list[Element]:
    """Every element named by the last of `tags` under the first element along the others."""
    parent = child(elem, *tags[:-1])
    return parent.findall(tags[-1]) if parent is not None else []


def text_of(root: Element, path: str) -> str | None:
    found = child(root, *path.split("/"))
    return (found.text or "").strip() if found is not None else None


def required(root: Element, path: str) -> str:
    found = text_of(root, path)
    if not found:
        raise ValueError(f"<{root.tag}> has no <{path}>")
    return found


# --- stamps -----------------------------------------------------------------------------------

# One vocabulary for both forms: the element names of <recon:resource> are the JSON keys.
_STAMP_KEYS = (
    "managed-by",
    "kind",
    "file",
    "spec-hash",
    "revision",
    "set",
    "applied",
    "labels",
    "annotations",
    "record",
    "salt",
    "secrets",
)
# Keys whose value is a mapping, kept as JSON text in the XML form.
_JSON_KEYS = ("applied", "labels", "annotations", "record", "secrets")


def dump_json(value: Any) -> str:
    # ASCII-only: lone surrogates and control characters become \u escapes, which any XML
    # carries unchanged.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def stamp_dict(stamp: Stamp, kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "managed-by": stamp.managed_by,
        "kind": kind,
        "file": stamp.file,
        "spec-hash": stamp.spec_hash,
        "set": stamp.set_name,
        "applied": stamp.applied,
    }
    if stamp.revision is not None:
        out["revision"] = stamp.revision
    # Only when set: the stamps of objects without labels stay as they were.
    if stamp.labels:
        out["labels"] = dict(stamp.labels)
    if stamp.annotations:
        out["annotations"] = dict(stamp.annotations)
    if stamp.record:
        out["record"] = dict(stamp.record)
    if stamp.secrets and stamp.salt:
        out["salt"] = stamp.salt
        out["secrets"] = dict(stamp.secrets)
    return out


def stamp_from_dict(data: Any) -> tuple[str, Stamp] | None:
    if not isinstance(data, dict):
        return None
    managed_by, kind, file, spec_hash, set_name, revision, applied = (
        data.get(key)
        for key in ("managed-by", "kind", "file", "spec-hash", "set", "revision", "applied")
    )
    if not (
        isinstance(managed_by, str)
        and isinstance(kind, str)
        and isinstance(file, str)
        and isinstance(spec_hash, str)
        and isinstance(set_name, str)
        and (revision is None or isinstance(revision, str))
        and isinstance(applied, dict)
    ):
        return None
    labels, annotations = data.get("labels") or {}, data.get("annotations") or {}
    if not (_str_map(labels) and _str_map(annotations)):
        return None
    record = data.get("record") or {}
    if not isinstance(record, dict):
        return None
    salt, secrets = data.get("salt"), data.get("secrets") or {}
    if not (salt is None or isinstance(salt, str)) or not _str_map(secrets):
        return None
    return kind, Stamp(
        file=file,
        spec_hash=spec_hash,
        applied=applied,
        revision=revision,
        set_name=set_name,
        managed_by=managed_by,
        labels=labels,
        annotations=annotations,
        record=record,
        salt=salt,
        secrets=secrets,
    )


def _str_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def stamp_to_element(stamp: Stamp, kind: str) -> Element:
    root = Element(f"{{{NS}}}resource")
    data = stamp_dict(stamp, kind)
    for key in _STAMP_KEYS:
        if key in data:
            value = data[key]
            sub(root, f"{{{NS}}}{key}", dump_json(value) if key in _JSON_KEYS else value)
    return root


def stamp_from_element(elem: Element) -> tuple[str, Stamp] | None:
    """(kind, stamp) from a <recon:resource>, or None if it is not one or is damaged."""
    # virDomain.metadata() hands back our element stripped of its namespace (the call is
    # already scoped to NS), so the bare form is accepted too.
    if elem.tag == f"{{{NS}}}resource":
        prefix = f"{{{NS}}}"
    elif elem.tag == "resource":
        prefix = ""
    else:
        return None
    data: dict[str, Any] = {}
    for key in _STAMP_KEYS:
        child = elem.find(prefix + key)
        if child is not None:
            data[key] = child.text or ""
    try:
        for key in _JSON_KEYS:
            if key in data or key == "applied":
                data[key] = json.loads(data[key])
    except (KeyError, ValueError):
        return None
    return stamp_from_dict(data)


def stamp_metadata_xml(stamp: Stamp, kind: str) -> str:
    """The stamp as virDomainSetMetadata takes it: bare element names, which libvirt puts in
    the namespace it is given (a prefixed element makes it fail)."""
    root = Element("resource")
    data = stamp_dict(stamp, kind)
    for key in _STAMP_KEYS:
        if key in data:
            sub(root, key, dump_json(data[key]) if key in _JSON_KEYS else data[key])
    return ET.tostring(root, encoding="unicode")


def stamp_to_json(stamp: Stamp, kind: str) -> str:
    return dump_json(stamp_dict(stamp, kind))


def stamp_from_json(text: str) -> tuple[str, Stamp] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return stamp_from_dict(data)


def metadata_stamp(root: Element) -> tuple[str, Stamp] | None:
    resource = child(root, "metadata", f"{{{NS}}}resource")
    return stamp_from_element(resource) if resource is not None else None


def add_metadata(root: Element, stamp: Stamp, kind: str) -> None:
    sub(root, "metadata").append(stamp_to_element(stamp, kind))
