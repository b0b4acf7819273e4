"""A build's work directory in the artifact cache: locked while its build runs, renamed into
place when the build is complete, and removed (with what its steps left running or mounted)
by the next build when a killed one left it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

# The process groups of a build's steps, written by the builder as it starts each one.
GROUPS = ".groups"


@contextlib.contextmanager
def work_dir(root: Path, name: str) -> Iterator[Path]:
    """A fresh work directory for one build of `name`, locked while it runs; what a killed
    build of any template left is removed first."""
    for stale in root.glob(".build-*"):
        if stale.is_dir():
            _remove_if_unlocked(stale)
    for old in root.glob(".old-*"):
        shutil.rmtree(old, ignore_errors=True)
    work = root / f".build-{name}-{os.getpid()}"
    work.mkdir(mode=0o700)
    lock = (work / ".lock").open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        yield work
    finally:
        lock.close()
        if work.exists():
            _remove(work)


def _remove_if_unlocked(work: Path) -> None:
    try:
        lock = (work / ".lock").open("a")
    except OSError:
        _remove(work)
        return
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # a build is running there
    stop_groups(work)
    _remove(work)


def stop_groups(work: Path) -> None:
    """Kill what a dead build's steps left running (an orphaned mmdebstrap goes on writing
    into its work directory and mounting its chroot there). A recorded group is killed only
    while one of its processes still works inside this directory, so a reused id is safe."""
    try:
        groups = {int(g) for g in (work / GROUPS).read_text().split()}
    except (OSError, ValueError):
        return
    inside = str(work.resolve())
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            group = int((proc / "stat").read_text().rpartition(")")[2].split()[2])
            if group not in groups:
                continue
            places = [os.readlink(proc / "cwd"), os.readlink(proc / "root")]
            places += (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, ValueError, IndexError):
            continue
        if any(p.startswith(inside) or f"{inside}/" in p for p in places):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, 9)
            groups.discard(group)


def _remove(work: Path) -> None:
    """Delete a work directory, but never through a mount a killed mmdebstrap left in it
    (its chroot's /proc, /sys, /dev): those are unmounted first, or the directory is left."""
    prefix = str(work.resolve()) + "/"
    mounts = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].encode().decode("unicode_escape")
            if point.startswith(prefix):
                mounts.append(point)
    for point in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            if line.split()[4].startswith(prefix):
                return  # still mounted: leave it rather than delete through it
    shutil.rmtree(work, ignore_errors=True)


def replace(work: Path, final: Path) -> None:
    """Move a finished build into place (an older build of the same revision goes)."""
    (work / ".lock").unlink(missing_ok=True)
    (work / GROUPS).unlink(missing_ok=True)
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        final.rename(old)
        work.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        work.rename(final)
