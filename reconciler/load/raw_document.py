"""RawDocument: one parsed YAML document with the position (line:column) of every node.

The type that the strict YAML loader (yamlsafe) produces and validation reads; it knows how to
find the closest position for a field path. Nothing here parses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.model.diagnostics import FieldPath, Mark

__all__ = ["RawDocument"]


@dataclass(slots=True)
class RawDocument:
    """One parsed YAML document whose root is a mapping, with the position of every node."""

    file: str
    index: int
    mark: Mark
    data: Any
    marks: dict[FieldPath, Mark]
    key_marks: dict[FieldPath, Mark]

    def mark_for(self, path: FieldPath) -> Mark:
        """The location of path, else of its closest ancestor that has one."""
        marks = self.marks
        while path:
            found = marks.get(path)
            if found is not None:
                return found
            path = path[:-1]
        return marks.get((), self.mark)
