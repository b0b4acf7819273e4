"""Volumes as `recon get volumes` lists them: each pool volume with its size, the object
recon recorded it for (a guest's disk, a template's image) and the guests that use it now.
A guest volume no domain uses is orphaned: what a guest deleted without --delete-volumes left
behind, which `recon delete volume POOL/NAME` removes. No command lives here."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.cli.render import table
from reconciler.model.quantity import format_quantity
from reconciler.providers.base import Observation

VOLUME_WORDS = ("volume", "volumes", "vol", "vols")


@dataclass(frozen=True, slots=True)
class VolumeRow:
    pool: str
    name: str
    path: str
    capacity: int
    owner: str | None  # "VirtualMachine/web-1", "Template/x"; None: not made by recon
    used_by: tuple[str, ...]
    backing: str | None

    @property
    def orphaned(self) -> bool:
        """A guest volume recon made that no domain uses (its guest is gone, or the disk was
        removed from it)."""
        return (
            self.owner is not None and not self.owner.startswith("Template/") and not self.used_by
        )

    def to_json(self) -> dict[str, object]:
        return {
            "pool": self.pool,
            "name": self.name,
            "path": self.path,
            "size": format_quantity(self.capacity),
            "bytes": self.capacity,
            "owner": self.owner,
            "usedBy": list(self.used_by),
            "backingFile": self.backing,
            "orphaned": self.orphaned,
        }


def volume_rows(observation: Observation) -> list[VolumeRow]:
    owners: dict[str, str] = {}
    for obs in observation.objects.values():
        if obs.ref.kind == "Template":
            for path in obs.volumes:
                owners[path] = str(obs.ref)
        elif obs.ref.kind in ("VirtualMachine", "Container") and obs.owned:
            assert obs.stamp is not None
            recorded = obs.stamp.record.get("volumes")
            for path in (*obs.volumes, *(recorded if isinstance(recorded, list) else ())):
                owners.setdefault(str(path), str(obs.ref))
    rows = []
    for obs in observation.objects.values():
        if obs.ref.kind != "StoragePool":
            continue
        records = obs.extra.get("records", {})
        for name, info in sorted(obs.extra.get("volumes", {}).items()):
            path = str(info["path"])
            owner = owners.get(path) or records.get(name, {}).get("owner")
            users = tuple(sorted({str(r) for r in observation.users_of(path)}))
            rows.append(
                VolumeRow(
                    obs.ref.name,
                    name,
                    path,
                    int(info["capacity"]),
                    owner,
                    users,
                    info.get("backing"),
                )
            )
    return sorted(rows, key=lambda r: (r.pool, r.name))


def render_volumes(rows: list[VolumeRow]) -> str:
    head = ["POOL", "NAME", "SIZE", "OWNER", "USED-BY"]
    body = [
        [r.pool, r.name, format_quantity(r.capacity), r.owner or "-", ",".join(r.used_by) or "-"]
        for r in rows
    ]
    return table([head, *body])
