"""A validated manifest together with where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.model.fields import Fields, flatten, set_fields, spec_hash
from reconciler.model.kinds import Manifest
from reconciler.model.refs import ResourceRef


@dataclass(frozen=True, slots=True)
class Resource:
    manifest: Manifest
    file: str
    line: int
    # Fields the manifest implies but does not hold, compared like its own: a built
    # Template's `revision` (the hash of its spec and of the scripts it names).
    inputs: Fields = field(default_factory=dict, compare=False)
    ref: ResourceRef = field(init=False, compare=False)
    # Views of the manifest computed once: a control loop diffs the same resources on every
    # pass (the manifest is frozen, so they cannot go stale).
    _set: tuple[Fields, str] | None = field(init=False, default=None, compare=False, repr=False)
    _full: Fields | None = field(init=False, default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "ref", ResourceRef(self.manifest.KIND, self.manifest.metadata.name)
        )

    def _set_fields(self) -> tuple[Fields, str]:
        if self._set is None:
            wanted = set_fields(self.manifest)
            if self.inputs:
                wanted = {**wanted, **self.inputs}
            object.__setattr__(self, "_set", (wanted, spec_hash(wanted)))
        assert self._set is not None
        return self._set

    def compute_views(self) -> None:
        """Compute the fields the manifest sets, and their hash, now rather than at the first
        diff: `recon diff` does it while the host is still being read."""
        self._set_fields()

    def desired_fields(self, previously_applied: Fields | None = None) -> Fields:
        """The fields to compare: those set now, plus those set at the last apply and removed
        since, which go back to their default (so deleting a line from a manifest is a
        change). A new dict each call: callers may change it."""
        wanted = dict(self._set_fields()[0])
        removed = previously_applied.keys() - wanted.keys() if previously_applied else ()
        if removed:
            if self._full is None:
                full = flatten(self.manifest.model_dump(mode="json", by_alias=True)["spec"])
                object.__setattr__(self, "_full", full)
            assert self._full is not None
            for key in removed:
                # A default, or None for what no longer exists (a disk or user removed).
                wanted[key] = self._full.get(key)
        return wanted

    def desired_hash(self, previously_applied: Fields | None = None) -> str:
        """spec_hash of desired_fields(previously_applied), without hashing again when
        nothing set before was removed since."""
        wanted, digest = self._set_fields()
        if previously_applied and previously_applied.keys() - wanted.keys():
            return spec_hash(self.desired_fields(previously_applied))
        return digest
