"""RawDocument: one parsed YAML document with the position (line:column) of every node.

The type that the strict YAML loader (yamlsafe) produces and validation reads; it knows how to
find the closest position for a field path. Nothing here parses.

The positions are kept compact, as one packed int per place in an array, in node order: a
mapping's own place, then for each entry its key's place and its value's places; a
sequence's own place, then its items' places (the order in which the loader meets them in
the text). Nothing stores a field path: a path's place is found on demand by walking `data`
in that same order, which only an error (or a List split into its items) needs. (For the
10,000 documents of bench/run.py: 2.6 MiB of positions, where a `Mark` under a tuple path
for every node and key took 28 MiB more.)
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.model.diagnostics import FieldPath, Mark

__all__ = ["RawDocument", "place_format", "unpack"]


def place_format(text: str) -> tuple[str, int]:
    """The array typecode and the shift that pack every place of text (0-based line << shift
    | 0-based column): 4 bytes a place when the text is small enough, else 8."""
    # A column is at most the length of the text; the shift leaves it room.
    shift = len(text).bit_length()
    lines = text.count("\n") + 1
    return ("I" if (lines << shift) < (1 << 32) else "Q"), shift


def unpack(packed: int, shift: int) -> Mark:
    """The Mark of a place packed as place_format says."""
    return Mark((packed >> shift) + 1, (packed & ((1 << shift) - 1)) + 1)


# A document asked for more places than this (one with many errors) walks its data once
# into an index by path, so that each further place is found at once, not by a walk.
_WALKS_BEFORE_INDEX = 8


def _size(node: Any) -> int:
    """How many places node and everything in it take."""
    if isinstance(node, dict):
        return 1 + sum(1 + _size(value) for value in node.values())
    if isinstance(node, list):
        return 1 + sum(_size(item) for item in node)
    return 1


@dataclass(slots=True)
class RawDocument:
    """One parsed YAML document whose root is a mapping, with the position of every node.

    places holds the positions of loaded (the data as it was read) in node order (see the
    module), loaded's own at start; a document made from a part of another (a List's item)
    shares the other's array. data is loaded, or a copy with less in it (what recon reports
    dropped): its paths are paths of loaded too, so they are placed the same. loaded is never
    changed.
    """

    file: str
    index: int
    mark: Mark
    data: Any
    places: array[int]
    shift: int
    start: int = 0
    loaded: Any = None
    _walks: int = field(default=0, init=False, repr=False, compare=False)
    _index: dict[FieldPath, tuple[int, int | None]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.loaded is None:
            self.loaded = self.data

    def _mark(self, place: int) -> Mark:
        return unpack(self.places[place], self.shift)

    def _locate(self, path: FieldPath) -> tuple[int, int, int | None]:
        """How many parts of path lead to a node, that node's place, and (when the last of
        them is a mapping's key) the key's place."""
        if self._index is None and self._walks >= _WALKS_BEFORE_INDEX:
            self._index = self._build_index()
        if self._index is not None:
            for depth in range(len(path), 0, -1):
                found = self._index.get(path[:depth])
                if found is not None:
                    return depth, found[0], found[1]
            return 0, self.start, None
        self._walks += 1
        node = self.loaded
        place = self.start
        key_place: int | None = None
        depth = 0
        for part in path:
            if isinstance(node, dict):
                if not isinstance(part, str) or part not in node:
                    break
                place += 1
                for key, value in node.items():
                    if key == part:
                        key_place = place
                        place += 1
                        node = value
                        break
                    place += 1 + _size(value)
            elif isinstance(node, list):
                if not isinstance(part, int) or not 0 <= part < len(node):
                    break
                place += 1
                for item in node[:part]:
                    place += _size(item)
                key_place = None
                node = node[part]
            else:
                break
            depth += 1
        return depth, place, key_place

    def _build_index(self) -> dict[FieldPath, tuple[int, int | None]]:
        """Every node's path: its place and its key's place (None for a sequence's item)."""
        index: dict[FieldPath, tuple[int, int | None]] = {}
        key_places: dict[FieldPath, int] = {}
        for path, place, is_key in self._walk():
            if is_key:
                key_places[path] = place
            else:
                index[path] = (place, key_places.pop(path, None))
        return index

    def mark_for(self, path: FieldPath) -> Mark:
        """The location of path, else of its closest ancestor that has one."""
        if len(self.places) <= self.start:
            return self.mark
        return self._mark(self._locate(path)[1])

    def key_mark(self, path: FieldPath) -> Mark | None:
        """The location of the key that names path in its mapping, if path is one."""
        depth, _, key_place = self._locate(path)
        if depth != len(path) or key_place is None:
            return None
        return self._mark(key_place)

    def items(self, path: FieldPath) -> list[RawDocument]:
        """A document of each item of the sequence at path (none if it is no sequence),
        sharing this document's positions."""
        depth, place, _ = self._locate(path)
        node = self.loaded
        for part in path[:depth]:
            node = node[part]
        if depth != len(path) or not isinstance(node, list):
            return []
        out: list[RawDocument] = []
        place += 1
        for item in node:
            mark = self._mark(place)
            out.append(
                RawDocument(self.file, self.index, mark, item, self.places, self.shift, place)
            )
            place += _size(item)
        return out

    @property
    def marks(self) -> Mapping[FieldPath, Mark]:
        """The location of every node, by path (computed when read)."""
        return _Marks(self, keys=False)

    @property
    def key_marks(self) -> Mapping[FieldPath, Mark]:
        """The location of every mapping key, by the path it names (computed when read)."""
        return _Marks(self, keys=True)

    def _walk(self) -> Iterator[tuple[FieldPath, int, bool]]:
        """Every (path, place, is a key) in node order."""
        place = self.start

        def walk(path: FieldPath, node: Any) -> Iterator[tuple[FieldPath, int, bool]]:
            nonlocal place
            yield path, place, False
            place += 1
            if isinstance(node, dict):
                for key, value in node.items():
                    yield (*path, key), place, True
                    place += 1
                    yield from walk((*path, key), value)
            elif isinstance(node, list):
                for index, item in enumerate(node):
                    yield from walk((*path, index), item)

        return walk((), self.loaded)


class _Marks(Mapping[FieldPath, Mark]):
    """A read-only view of a document's positions by path (for tests and inspection; the
    loader's users call mark_for and key_mark)."""

    __slots__ = ("_doc", "_keys")

    def __init__(self, doc: RawDocument, *, keys: bool) -> None:
        self._doc = doc
        self._keys = keys

    def __getitem__(self, path: FieldPath) -> Mark:
        if self._keys:
            found = self._doc.key_mark(path)
            if found is None:
                raise KeyError(path)
            return found
        depth, place, _ = self._doc._locate(path)
        if depth != len(path) or place >= len(self._doc.places):
            raise KeyError(path)
        return self._doc._mark(place)

    def __iter__(self) -> Iterator[FieldPath]:
        return (path for path, _, key in self._doc._walk() if key is self._keys)

    def __len__(self) -> int:
        return sum(1 for _ in self)
