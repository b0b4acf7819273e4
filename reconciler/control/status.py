"""Status of each resource and of recent runs, kept on disk across restarts of the loop."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reconciler.providers.files import private_dirs

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
DRIFTED = "Drifted"
SUSPENDED = "Suspended"
# A Template being built before the pass takes the host (its reason: the build's stage).
BUILDING = "Building"
# What `recon status` shows for a resource last seen Ready or Drifted while the host does not
# answer: nothing is known of it now.
UNKNOWN = "Unknown"
MAX_RUNS = 20


@dataclass(slots=True)
class ResourceStatus:
    condition: str
    reason: str = ""
    last_applied_revision: str | None = None
    last_error: str | None = None
    since: float = field(default_factory=time.time)


@dataclass(slots=True)
class Run:
    started: float
    duration: float
    revision: str | None
    result: str  # "applied", "no changes", "failed", "invalid", "refused", "stopped"
    changes: int = 0
    error: str | None = None


@dataclass(slots=True)
class Status:
    host: str = ""
    # Why the host could not be reached on the last pass (or the events' connection was
    # lost since); None while it answers.
    host_error: str | None = None
    source: str = ""
    revision: str | None = None
    last_good_revision: str | None = None
    resources: dict[str, ResourceStatus] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def set(
        self,
        ref: str,
        condition: str,
        reason: str = "",
        *,
        revision: str | None = None,
        error: str | None = None,
    ) -> None:
        old = self.resources.get(ref)
        since = old.since if old is not None and old.condition == condition else time.time()
        applied = revision if revision is not None else (old.last_applied_revision if old else None)
        self.resources[ref] = ResourceStatus(condition, reason, applied, error, since)

    def as_shown(self) -> Status:
        """The status as `recon status` may state it now: while the host is unreachable, a
        resource last seen Ready (or Drifted) is Unknown, its reason saying what was seen
        last. The file keeps what was seen; the loop's next pass sets each one again."""
        if not self.host_error:
            return self
        resources = dict(self.resources)
        for ref, st in self.resources.items():
            if st.condition in (READY, DRIFTED):
                seen = f"host unreachable; last seen {st.condition}"
                reason = f"{seen}: {st.reason}" if st.reason else seen
                resources[ref] = ResourceStatus(
                    UNKNOWN, reason, st.last_applied_revision, st.last_error, st.since
                )
        return replace(self, resources=resources)

    def add_run(self, run: Run) -> None:
        self.runs.append(run)
        del self.runs[:-MAX_RUNS]

    def to_json(self) -> dict[str, Any]:
        # By hand rather than dataclasses.asdict, which deep-copies every value: this is
        # written after every pass, with one entry per resource.
        return {
            "host": self.host,
            "host_error": self.host_error,
            "source": self.source,
            "revision": self.revision,
            "last_good_revision": self.last_good_revision,
            "resources": {ref: _fields(st) for ref, st in self.resources.items()},
            "runs": [_fields(run) for run in self.runs],
            "errors": list(self.errors),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Status:
        return cls(
            host=data.get("host", ""),
            host_error=data.get("host_error"),
            source=data.get("source", ""),
            revision=data.get("revision"),
            last_good_revision=data.get("last_good_revision"),
            resources={k: ResourceStatus(**v) for k, v in data.get("resources", {}).items()},
            runs=[Run(**r) for r in data.get("runs", [])],
            errors=list(data.get("errors", [])),
        )


def _fields(item: ResourceStatus | Run) -> dict[str, Any]:
    return {name: getattr(item, name) for name in item.__slots__}


def status_path(home: Path, uri: str) -> Path:
    return home / "status" / (hashlib.sha256(uri.encode()).hexdigest()[:16] + ".json")


def load_status(path: Path) -> Status:
    """The persisted status; an empty one when the file is missing or damaged (a damaged
    file must not keep the loop, or `recon status`, from starting)."""
    try:
        return Status.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, AttributeError):
        return Status()


def _render(data: dict[str, Any]) -> str:
    head = json.dumps({k: v for k, v in data.items() if k != "resources"}, indent=1)[:-2]
    rows = ",\n".join(
        f"  {json.dumps(ref)}: {json.dumps(st)}" for ref, st in data["resources"].items()
    )
    body = f"{{\n{rows}\n }}" if rows else "{}"
    return f'{head},\n "resources": {body}\n}}\n'


def save_status(path: Path, status: Status) -> None:
    private_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=".status-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        # One line per resource: readable, and a fraction of indent=1's size and time.
        fh.write(_render(status.to_json()))
    os.replace(tmp, path)
