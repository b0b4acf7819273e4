"""The parsed domains and volumes of a host's last observation, kept in the state directory
by their text.

Parsing every domain's and volume's XML is most of an observation at scale (ElementTree, then
the fields). A parse depends on the text alone (`xml.parse_domain`, `xml.parse_volume`), and
between two commands a host's objects mostly stay as they were, so a one-shot observation
(`recon diff`, `apply`, `get`) keeps what it parsed in `HOME/cache/`, one file per host URI,
by a digest of each text; the next one parses only the texts it has not seen. A control loop
keeps its parses in memory instead (`guests.observe.DomainCache`, the provider's volumes) and
does not use this.

- The file holds core types only, written with marshal: reading it runs no code (pickle would).
- It is tagged with a digest of the parser's own source: a recon whose parser differs never
  takes a parse made by another.
- It holds the domains of the last observation only, so it does not grow, and is replaced
  whole (a temporary file, then a rename): a command killed while writing leaves the old file.
- A file that cannot be read, or whose rows do not make a domain, counts as none: those
  domains are parsed. A file that cannot be written is left as it is; the cache only saves
  time.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from reconciler.model import quantity
from reconciler.providers import base
from reconciler.providers.files import private_dirs
from reconciler.providers.libvirt import xml as lx
from reconciler.providers.libvirt.xml import common as xml_common
from reconciler.providers.libvirt.xml import domain as xml_domain
from reconciler.providers.libvirt.xml import storage as xml_storage

_FORMAT = b"recon-parses/1"

Row = tuple[Any, ...]
T = TypeVar("T")


def _parser_tag() -> bytes:
    """A digest of what a parse depends on: this format and the source of the parsers'
    modules (the XML readers, quantities, the Stamp) and of this one (the rows)."""
    digest = hashlib.blake2b(_FORMAT, digest_size=16)
    for module in (xml_domain, xml_storage, xml_common, quantity, base):
        digest.update(Path(module.__file__ or "").read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.digest()


def cache_file(home: Path, uri: str) -> Path:
    name = hashlib.blake2b(uri.encode(), digest_size=8).hexdigest()
    return home / "cache" / f"parses-{name}.marshal"


# Strings up to this long are written interned: marshal reads them back interned, so the
# field names and the common values ("Running", "512Mi", a pool's name) that every domain
# repeats are one object each in the process, not one per domain (about a third of what the
# rows of 10,000 domains take once read).
_SHARED_LENGTH = 24


def _shared(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {
        sys.intern(k): sys.intern(v) if type(v) is str and len(v) <= _SHARED_LENGTH else v
        for k, v in mapping.items()
    }


def _row(obj: Any) -> Row:
    """A dataclass's values in the order of its fields (which the tag covers, through the
    source of their modules): mappings as plain dicts, shared as said above; a stamp as a
    row of its own."""
    values = []
    for item in fields(obj):
        value = getattr(obj, item.name)
        if isinstance(value, base.Stamp):
            value = _row(value)
        elif isinstance(value, Mapping):
            value = _shared(value)
        values.append(value)
    return tuple(values)


_DOMAIN_FIELDS = tuple(item.name for item in fields(lx.ParsedDomain))


def to_row(parsed: lx.ParsedDomain) -> Row:
    return _row(parsed)


def from_row(row: Row) -> lx.ParsedDomain:
    values = dict(zip(_DOMAIN_FIELDS, row, strict=True))
    if values["stamp"] is not None:
        values["stamp"] = base.Stamp(*values["stamp"])
    return lx.ParsedDomain(**values)


def volume_row(parsed: lx.ParsedVolume) -> Row:
    return _row(parsed)


def volume_from_row(row: Row) -> lx.ParsedVolume:
    return lx.ParsedVolume(*row)


class ParseCache:
    """The parses of one host's last observation: `domain` or `volume` a text through it,
    `save` at the end of the observation. Each row is kept as its marshalled bytes, so what is
    written is what was parsed, whatever a caller does to the object it was given."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tag = _parser_tag()
        self._old: dict[bytes, bytes] | None = None  # read when first asked
        self._now: dict[bytes, bytes] = {}
        self._parsed = 0

    def _load(self) -> dict[bytes, bytes]:
        try:
            tag, rows = marshal.loads(self.path.read_bytes())
        except (OSError, ValueError, EOFError, TypeError):
            return {}
        return rows if tag == self._tag and isinstance(rows, dict) else {}

    def domain(self, text: str) -> lx.ParsedDomain:
        return self._parse(b"d", text, lx.parse_domain, to_row, from_row)

    def volume(self, text: str) -> lx.ParsedVolume:
        return self._parse(b"v", text, lx.parse_volume, volume_row, volume_from_row)

    def _parse(
        self,
        what: bytes,
        text: str,
        parse: Callable[[str], T],
        row_of: Callable[[T], Row],
        from_row_: Callable[[Row], T],
    ) -> T:
        if self._old is None:
            self._old = self._load()
        key = what + hashlib.blake2b(text.encode(), digest_size=16).digest()
        row = self._old.get(key)
        if row is not None:
            try:
                return self._keep(key, row, from_row_(marshal.loads(row)))
            except (TypeError, ValueError, EOFError):  # not a row of this shape: parsed again
                pass
        parsed = parse(text)
        self._parsed += 1
        try:
            row = marshal.dumps(row_of(parsed))
        except ValueError:  # a value marshal cannot hold: this one is not kept
            return parsed
        return self._keep(key, row, parsed)

    def _keep(self, key: bytes, row: bytes, parsed: T) -> T:
        self._now[key] = row
        return parsed

    def save(self) -> None:
        """Write the parses of this observation, unless the file already holds exactly them."""
        if self._old is None:  # nothing was asked: a host with no domain and no volume
            self._old = self._load()
        if not self._parsed and self._now.keys() == self._old.keys():
            return
        data = marshal.dumps((self._tag, self._now))
        with suppress(OSError):
            private_dirs(self.path.parent)
            fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=".parses-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.replace(temp, self.path)
            except OSError:
                with suppress(OSError):
                    os.unlink(temp)
                raise
