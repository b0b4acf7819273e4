"""Diagnostics: what recon says about bad input, collected rather than raised one by one."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

# A path into a document: mapping keys (str) and sequence indexes (int).
FieldPath = tuple[str | int, ...]


def format_path(path: Iterable[str | int]) -> str:
    """Render ("spec", "disks", 0, "size") as "spec.disks[0].size"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass(frozen=True, slots=True)
class Mark:
    """A 1-based line and column in a source file. (The loader keeps no Mark per node: it
    packs a node's place into one int, and makes a Mark only for a diagnostic.)"""

    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem with the input. Never carries a secret value: messages describe, not echo."""

    file: str
    line: int | None
    column: int | None
    message: str
    kind: str | None = None
    name: str | None = None
    field: str | None = None
    hint: str | None = None

    @property
    def resource(self) -> str | None:
        if self.kind and self.name:
            return f"{self.kind}/{self.name}"
        return self.kind

    @property
    def location(self) -> str:
        if self.line is None:
            return self.file
        return f"{self.file}:{self.line}:{self.column or 1}"

    def render(self) -> str:
        parts = [self.location]
        if self.resource:
            parts.append(self.resource)
        if self.field:
            parts.append(self.field)
        text = f"error: {': '.join(parts)}: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.file, self.line or 0, self.column or 0, self.message)
