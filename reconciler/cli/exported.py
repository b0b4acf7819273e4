"""The exported host state a command plans against instead of the host (`--host-state FILE`):
loaded as a read-only provider, and said (which file, which host, how old) on stderr. No
command lives here: the command modules import this one, never the other way round."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from reconciler.cli.output import fail
from reconciler.model.host_state import age_text
from reconciler.providers.snapshot import HostStateError, SnapshotProvider


def load_host_state(path: Path) -> SnapshotProvider:
    """The export as a provider; exits 2 when it cannot be read or is not one."""
    try:
        return SnapshotProvider.load(path)
    except HostStateError as exc:
        fail(str(exc), exc.hint, code=2)


def host_state_note(snapshot: SnapshotProvider, now: datetime | None = None) -> str:
    observed = snapshot.observed_at.astimezone(UTC)
    age = age_text(observed, now or datetime.now(UTC))
    return (
        f"planned against the exported host state {snapshot.source} "
        f"(observed {observed.strftime('%Y-%m-%dT%H:%M:%SZ')}, {age} ago)"
    )
