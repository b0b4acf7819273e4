"""ResourceRef: the hashable key for a resource in the queue, the graph and the inventory."""

from __future__ import annotations

from typing import NamedTuple


class ResourceRef(NamedTuple):
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> ResourceRef:
        kind, _, name = text.partition("/")
        return cls(kind, name)
