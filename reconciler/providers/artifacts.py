"""recon's artifact cache of built templates ($RECON_HOME/templates): one directory per
revision (content-addressed: Templates of different names with one spec share a build),
holding the image (and a VM template's kernel and initrd) and the build's record.
reconciler.build writes it; the provider reads it to upload an image into a pool.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from reconciler.model.artifacts import Artifact


def cache_root(home: Path) -> Path:
    """$RECON_TEMPLATE_CACHE, or templates/ in recon's home (one cache may serve several
    homes: builds are content-addressed)."""
    return Path(os.environ.get("RECON_TEMPLATE_CACHE") or home / "templates")


def entry_dir(home: Path, revision: str) -> Path:
    return cache_root(home) / revision[:12]


def cached(home: Path, revision: str) -> Artifact | None:
    """The artifact of this revision in the cache, if a build of it completed."""
    found = read_entry(entry_dir(home, revision))
    return found if found is not None and found.revision.startswith(revision) else None


def read_entry(directory: Path) -> Artifact | None:
    try:
        data = json.loads((directory / "record.json").read_text())
    except (OSError, ValueError):
        return None
    try:
        return Artifact(
            template=data["template"],
            revision=data["revision"],
            id=data["artifact"],
            format=data["format"],
            image=directory / data["file"],
            digest=data["digest"].removeprefix("sha256:"),
            size=int(data["size"]),
            built_at=data["builtAt"],
            repository=dict(data["repository"]),
            packages=dict(data.get("packages", {})),
            kernel=directory / "vmlinuz" if data.get("boot") else None,
            initrd=directory / "initrd" if data.get("boot") else None,
        )
    except (KeyError, TypeError, ValueError):
        return None


def entries(home: Path) -> list[Artifact]:
    root = cache_root(home)
    if not root.is_dir():
        return []
    found = [read_entry(d) for d in sorted(root.iterdir()) if not d.name.startswith(".")]
    return [a for a in found if a is not None]


def file_sha256(path: Path) -> tuple[str, int]:
    """The sha256 (hex) and size of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size
