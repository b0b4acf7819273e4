"""A validated manifest together with where it came from."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model.kinds import Manifest
from reconciler.model.refs import ResourceRef


@dataclass(frozen=True, slots=True)
class Resource:
    manifest: Manifest
    file: str
    line: int

    @property
    def ref(self) -> ResourceRef:
        return ResourceRef(self.manifest.KIND, self.manifest.metadata.name)
