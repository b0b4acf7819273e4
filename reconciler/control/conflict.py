"""Two writers fighting over one resource (two loops with the same --set and different
manifests, a loop and a cron job): the loop sets a field, the next observation shows it
changed away again by someone else, the loop sets it again, forever, restarting a guest each
time where the change needs it. Pure bookkeeping, no I/O.

A resource whose applied fields are changed away again, and restamped by another apply (its
stamp's spec hash is not the one this loop wrote), `LIMIT` passes in a row is held: the loop
stops changing it (Stalled, Conflict, in the status and the log) until its manifest changes or
the loop restarts. Drift healed once (an operator's hand edit), or a change the host did not
take (the stamp is still this loop's), is not a fight; a pass that finds the resource as the
loop left it forgets the count.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from reconciler.model.plan import Action, Change

LIMIT = 3


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


@dataclass(slots=True)
class Fight:
    """One resource's record: what the loop last set, how often it was changed away."""

    applied: dict[str, Any] = field(default_factory=dict)
    spec_hash: str = ""
    flips: int = 0
    held: str | None = None  # why it is held


@dataclass(slots=True)
class ConflictGuard:
    limit: int = LIMIT
    fights: dict[str, Fight] = field(default_factory=dict)

    def check(
        self, changes: Iterable[Change], hashes: dict[str, str], stamped: dict[str, str | None]
    ) -> dict[str, str]:
        """The resources (by ref) this pass must not change, and why. `hashes`: each
        resource's desired spec hash now (a new manifest ends a hold); `stamped`: the spec
        hash its stamp on the host carries (whose apply the host shows last)."""
        held: dict[str, str] = {}
        seen: set[str] = set()
        for change in changes:
            key = str(change.ref)
            seen.add(key)
            fight = self.fights.get(key)
            if fight is None or change.action in (Action.CREATE, Action.DELETE):
                continue
            if fight.spec_hash != hashes.get(key, fight.spec_hash):
                del self.fights[key]  # the manifest changed: a new start
                continue
            if fight.held is None:
                undone = [
                    f
                    for f in change.fields
                    if f.path in fight.applied
                    and _same(f.after, fight.applied[f.path])
                    and not _same(f.before, fight.applied[f.path])
                ]
                if not undone or stamped.get(key) == fight.spec_hash:
                    continue
                fight.flips += 1
                if fight.flips < self.limit:
                    continue
                shown = ", ".join(
                    f"{f.path} (set to {brief(f.after)}, found {brief(f.before)})" for f in undone
                )
                fight.held = (
                    f"another writer keeps changing it back: {shown}, {fight.flips} passes in a "
                    "row; not changed again until its manifest changes or the loop restarts "
                    "(two loops with the same --set and different manifests?)"
                )
            held[key] = fight.held
        for key in list(self.fights):
            # As the loop left it (no change planned): not a fight any more.
            if key not in seen and self.fights[key].held is None:
                self.fights[key].flips = 0
        return held

    def applied(self, changes: Iterable[Change], hashes: dict[str, str]) -> None:
        """What this pass set, to compare the next observations with."""
        for change in changes:
            key = str(change.ref)
            if change.action is Action.DELETE:
                self.fights.pop(key, None)
                continue
            fight = self.fights.setdefault(key, Fight())
            fight.spec_hash = hashes.get(key, "")
            fight.applied.update({f.path: f.after for f in change.fields})


def brief(value: object) -> str:
    """A field's value as a status line shows it: JSON, cut short."""
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."
