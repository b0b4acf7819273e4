"""recon's own state directory ($RECON_HOME: the embedded host, locks, status, mirrors):
directories made as private as the files in them."""

from __future__ import annotations

from pathlib import Path


def private_dirs(path: Path) -> None:
    """Make path and any missing parent 0700, whatever the umask (the files in them are 0600:
    a directory that follows a umask of 022 would still list them to everyone). Directories
    that exist already are left as their owner made them."""
    missing: list[Path] = []
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            break
        missing.append(candidate)
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
        directory.chmod(0o700)
