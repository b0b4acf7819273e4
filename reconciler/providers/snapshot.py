"""A host's exported state: an Observation written as a `recon.host-state/v1` document
(reconciler/model/host_state.py), and read back as a read-only Provider.

`SnapshotProvider` serves the exported Observation, so `recon diff --host-state FILE` runs the
engine exactly as against the live host: same diff, admission, plan and fingerprint. It
cannot change anything: `apply` raises. The fingerprint is the same function of the same
objects, so a plan saved from an export applies on the real host only while the host is
still as exported.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reconciler.model.host_state import FORMAT, HostStateDocument
from reconciler.model.plan import Change
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.providers.base import (
    ApplyContext,
    ExecResult,
    HostFacts,
    Observation,
    Observed,
    ProviderError,
    Stamp,
)


class HostStateError(ProviderError):
    """An export that cannot be read, or is not one."""


def _stamp_json(stamp: Stamp) -> dict[str, Any]:
    return {
        "file": stamp.file,
        "specHash": stamp.spec_hash,
        "applied": _json_safe(stamp.applied),
        "revision": stamp.revision,
        "set": stamp.set_name,
        "managedBy": stamp.managed_by,
        "labels": dict(stamp.labels),
        "annotations": dict(stamp.annotations),
    }


def _json_safe(value: Any) -> Any:
    """Plain JSON: a Stamp (a pool records its templates' stamps) as the stamp's document form,
    tuples as lists, anything else unknown as its text (as the fingerprint hashes it)."""
    if isinstance(value, Stamp):
        return _stamp_json(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _json_safe(dataclasses.asdict(value))
    return str(value)


def export_observation(observation: Observation, observed_at: datetime) -> dict[str, Any]:
    """The document for an observation; `observed_at` must carry a time zone."""
    host = observation.host
    return {
        "format": FORMAT,
        "observedAt": observed_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "fingerprint": observation.fingerprint(),
        "complete": observation.complete,
        "host": {
            "uri": host.uri,
            "hostname": host.hostname,
            "driver": host.driver,
            "memoryBytes": host.memory_bytes,
            "cpus": host.cpus,
            "capabilities": dict(sorted(host.capabilities.items())),
        },
        "objects": [
            {
                "kind": ref.kind,
                "name": ref.name,
                "fields": _json_safe(obs.fields),
                "stamp": None if obs.stamp is None else _stamp_json(obs.stamp),
                "uuid": obs.uuid,
                "running": obs.running,
                "guaranteedBytes": obs.guaranteed_bytes,
                "memoryBytes": obs.memory_bytes,
                "extra": _json_safe(obs.extra),
                "inUseBy": list(obs.in_use_by),
                "volumes": list(obs.volumes),
                **({"saved": _json_safe(obs.saved)} if obs.saved else {}),
            }
            for ref, obs in sorted(observation.objects.items())
        ],
    }


def dump_host_state(observation: Observation, observed_at: datetime | None = None) -> str:
    document = export_observation(observation, observed_at or datetime.now(UTC))
    return json.dumps(document, indent=2) + "\n"


def write_host_state(
    path: Path, observation: Observation, observed_at: datetime | None = None
) -> None:
    """Atomically: a reader (a pipeline fetching the file) sees the old export or the new one,
    never half of one, and a crash leaves one of them whole (temp file, fsync, rename)."""
    text = dump_host_state(observation, observed_at)
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def parse_host_state(text: str, source: str) -> tuple[Observation, HostStateDocument]:
    """The Observation an export holds. Refuses another format, a malformed document, and one
    whose objects do not give its recorded fingerprint (edited, or written by a recon whose
    observation differs from this one's)."""
    try:
        head = json.loads(text)
    except ValueError as exc:
        raise HostStateError(f"{source}: not JSON ({exc})") from None
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        found = head.get("format") if isinstance(head, dict) else None
        raise HostStateError(
            f"{source}: not a {FORMAT} document (format: {found!r})",
            "write it with `recon observe --out FILE` or `--export-state FILE`",
        )
    try:
        document = HostStateDocument.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise HostStateError(f"{source}: not a valid host state: {problems}") from None
    facts = document.host
    observation = Observation(
        host=HostFacts(
            uri=facts.uri,
            hostname=facts.hostname,
            driver=facts.driver,
            memory_bytes=facts.memory_bytes,
            cpus=facts.cpus,
            capabilities=dict(facts.capabilities),
        ),
        objects={},
        complete=document.complete,
    )
    for item in document.objects:
        ref = ResourceRef(item.kind, item.name)
        if ref in observation.objects:
            raise HostStateError(f"{source}: {ref} is listed twice")
        stamp = None
        if item.stamp is not None:
            s = item.stamp
            stamp = Stamp(
                s.file,
                s.spec_hash,
                dict(s.applied),
                s.revision,
                s.set_name,
                s.managed_by,
                labels=dict(s.labels),
                annotations=dict(s.annotations),
            )
        observation.objects[ref] = Observed(
            ref=ref,
            fields=dict(item.fields),
            stamp=stamp,
            uuid=item.uuid,
            running=item.running,
            guaranteed_bytes=item.guaranteed_bytes,
            memory_bytes=item.memory_bytes,
            extra=dict(item.extra),
            in_use_by=tuple(item.in_use_by),
            volumes=tuple(item.volumes),
            saved=dict(item.saved),
        )
    if observation.fingerprint() != document.fingerprint:
        raise HostStateError(
            f"{source}: its objects do not match its fingerprint; it was edited or damaged",
            "export it again from the host",
        )
    return observation, document


class SnapshotProvider:
    """The Provider a plan made from an export uses: observe() serves the exported
    Observation; nothing here reaches a host, and apply() refuses."""

    name = "snapshot"

    def __init__(self, observation: Observation, document: HostStateDocument, source: str):
        self.observation = observation
        self.document = document
        self.source = source

    @classmethod
    def load(cls, path: Path) -> SnapshotProvider:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise HostStateError(f"{path}: cannot read the host state ({exc})") from None
        observation, document = parse_host_state(text, str(path))
        return cls(observation, document, str(path))

    @property
    def observed_at(self) -> datetime:
        return self.document.observed_at

    def observe(self) -> Observation:
        return self.observation

    def apply(self, change: Change, resource: Resource | None, context: ApplyContext) -> str:
        raise HostStateError(
            f"{change.ref}: {self.source} is an exported host state; it cannot be changed",
            "save the plan with `recon diff --host-state ... --out plan.json` and apply that "
            "on the host",
        )

    def subscribe(
        self,
        notify: Callable[[str], None],
        connection: Callable[[bool, str], None] | None = None,
    ) -> Callable[[], None]:
        return lambda: None

    def _no_guest(self, ref: ResourceRef) -> HostStateError:
        return HostStateError(
            f"{ref.name}: {self.source} is an exported host state; nothing runs in it",
            "run the command on the host (without --host-state)",
        )

    def exec(self, ref: ResourceRef, argv: list[str], timeout: float) -> ExecResult:
        raise self._no_guest(ref)

    def enter_argv(self, ref: ResourceRef, argv: list[str]) -> list[str]:
        raise self._no_guest(ref)

    def console_argv(self, ref: ResourceRef) -> list[str]:
        raise self._no_guest(ref)

    def guest_status(self, refs: Sequence[ResourceRef]) -> dict[ResourceRef, dict[str, Any]]:
        return {}  # the export holds what the observation held, and no more

    def current(self) -> bool:
        return True

    def host_settings_changed(self) -> list[str]:
        return []

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None
