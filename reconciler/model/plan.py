"""Plans: what will change, how disruptive each change is, and in which order."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.model.refs import ResourceRef


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"

    @property
    def symbol(self) -> str:
        return {"create": "+", "update": "~", "replace": "-/+", "delete": "-"}[self.value]


class Disruption(StrEnum):
    """How much a change disturbs a running guest, from least to most."""

    NONE = "none"  # config only, or the guest is not running
    LIVE = "live"  # applied to the running guest without a reboot
    RESTART = "restart"  # needs the guest restarted
    REPLACE = "replace"  # the object is destroyed and created again

    @property
    def rank(self) -> int:
        return list(Disruption).index(self)


MISSING: Any = None


@dataclass(frozen=True, slots=True)
class FieldChange:
    path: str
    before: Any
    after: Any
    disruption: Disruption
    # What the change depends on that recon cannot see (a live shrink needs the guest's
    # help); shown under the field in the plan. Empty when there is nothing to say.
    note: str = ""


def _field_json(f: FieldChange) -> dict[str, Any]:
    data = {**asdict(f), "disruption": f.disruption.value}
    if not f.note:
        del data["note"]  # said only where there is something to say
    return data


@dataclass(frozen=True, slots=True)
class Change:
    ref: ResourceRef
    action: Action
    disruption: Disruption
    fields: tuple[FieldChange, ...] = ()
    reason: str = ""
    file: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "resource": str(self.ref),
            "kind": self.ref.kind,
            "name": self.ref.name,
            "action": self.action.value,
            "disruption": self.disruption.value,
            "reason": self.reason,
            "file": self.file,
            "fields": [_field_json(f) for f in self.fields],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Change:
        return cls(
            ref=ResourceRef(data["kind"], data["name"]),
            action=Action(data["action"]),
            disruption=Disruption(data["disruption"]),
            fields=tuple(
                FieldChange(
                    f["path"],
                    f["before"],
                    f["after"],
                    Disruption(f["disruption"]),
                    f.get("note", ""),
                )
                for f in data["fields"]
            ),
            reason=data.get("reason", ""),
            file=data.get("file"),
        )


@dataclass(slots=True)
class Plan:
    changes: list[Change]
    unchanged: list[ResourceRef] = field(default_factory=list)
    fingerprint: str = ""
    revision: str | None = None
    host: str = ""
    warnings: list[str] = field(default_factory=list)
    # Changes the manifests ask for that this host cannot make (a disk grow without volume
    # resize): also in warnings; the host does not match, so `diff` does not exit 0.
    unmet: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.changes

    @property
    def in_sync(self) -> bool:
        return not self.changes and not self.unmet

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "host": self.host,
            "fingerprint": self.fingerprint,
            "revision": self.revision,
            "changes": [c.to_json() for c in self.changes],
            "unchanged": [str(r) for r in self.unchanged],
            "warnings": self.warnings,
            "unmet": self.unmet,
        }
