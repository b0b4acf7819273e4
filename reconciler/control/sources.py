"""Sources of work. Each one only says "look again": file changes (watchdog, debounced), new
commits in a git repository, a resync timer. None of them carries what to do."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from reconciler.model.errors import ReconError, TemporaryError
from reconciler.providers.files import private_dirs

MANIFEST_SUFFIXES = (".yaml", ".yml")


class Debouncer:
    """Calls `action` once things have been quiet for `delay` seconds. Editors save in bursts
    (write a temp file, rename it over, touch it): one reconcile of the complete file."""

    def __init__(self, delay: float, action: Callable[[], None]) -> None:
        self.delay = delay
        self.action = action
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def poke(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.delay, self.action)
            self._timer.daemon = True
            self._timer.start()

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()


_CHANGES = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    FileClosedEvent,
    DirCreatedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    DirDeletedEvent,
]


class _Handler(FileSystemEventHandler):
    def __init__(self, wanted: Callable[[str, bool], bool], poke: Callable[[], None]) -> None:
        self.wanted = wanted
        self.poke = poke

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        paths = [event.src_path, getattr(event, "dest_path", "")]
        if any(p and self.wanted(str(p), event.is_directory) for p in paths):
            self.poke()


class FileWatcher:
    """Watches manifest files and directories (recursively) for changes."""

    def __init__(self, paths: Sequence[str], debounce: float, notify: Callable[[], None]) -> None:
        self.debouncer = Debouncer(debounce, notify)
        self.observer = Observer()
        self._files: set[str] = set()
        watched: set[str] = set()
        for raw in paths:
            path = Path(raw).resolve()
            if path.is_dir():
                target, recursive = str(path), True
            else:
                self._files.add(str(path))
                target, recursive = str(path.parent), False
            if target not in watched:
                watched.add(target)
                self.observer.schedule(
                    _Handler(self._wanted, self.debouncer.poke),
                    target,
                    recursive=recursive,
                    # recon's own reads of the manifests would otherwise come back as
                    # opened/closed events, thousands per pass on a large set.
                    event_filter=_CHANGES,
                )
        self._dirs = {str(Path(p).resolve()) for p in paths if Path(p).is_dir()}

    def _wanted(self, path: str, is_directory: bool) -> bool:
        if path in self._files:
            return True
        inside = any(path.startswith(d + "/") for d in self._dirs)
        # A directory created, renamed or removed may hold manifests.
        return inside and (is_directory or path.endswith(MANIFEST_SUFFIXES))

    def start(self) -> None:
        self.observer.start()

    def stop(self) -> None:
        self.debouncer.cancel()
        self.observer.stop()
        self.observer.join(timeout=5)


class GitError(TemporaryError):
    """git failed: the repository is unreachable, or the ref does not exist (yet)."""


class GitSource:
    """A branch of a git repository (file://, ssh, https), mirrored under `workdir`.

    Fetches force-update the mirror, so a force-pushed branch simply points elsewhere; the
    commit to apply is always the one the branch names now.
    """

    def __init__(self, url: str, ref: str, subdir: str, workdir: Path) -> None:
        self.url = url
        self.ref = ref
        self.subdir = subdir.strip("/")
        self.workdir = workdir
        self.mirror = workdir / "mirror.git"

    def _git(self, *args: str, binary: bool = False) -> subprocess.CompletedProcess[bytes]:
        try:
            result = subprocess.run(
                ["git", "--git-dir", str(self.mirror), *args],
                capture_output=True,
                timeout=300,
                check=False,
            )
        except subprocess.TimeoutExpired:
            # A remote that hangs is a temporary failure like any other, not the end of the
            # fetcher thread.
            raise GitError(f"git {args[0]} timed out after 300 s") from None
        if result.returncode != 0:
            message = result.stderr.decode(errors="replace").strip().splitlines()
            raise GitError(f"git {args[0]} failed: {message[-1] if message else 'no output'}")
        return result

    def fetch(self) -> str:
        """The commit the branch points at, after fetching it."""
        if not self.mirror.exists():
            private_dirs(self.workdir)
            try:
                subprocess.run(
                    ["git", "init", "--bare", "-q", str(self.mirror)],
                    check=True,
                    capture_output=True,
                    timeout=60,
                )
            except subprocess.SubprocessError as exc:
                raise GitError(f"cannot create the mirror {self.mirror}: {exc}") from None
        self._git(
            "fetch",
            "--prune",
            "--force",
            "--no-tags",
            self.url,
            f"+refs/heads/{self.ref}:refs/heads/{self.ref}",
        )
        return self._git("rev-parse", f"refs/heads/{self.ref}^{{commit}}").stdout.decode().strip()

    def checkout(self, sha: str, keep: Iterable[str] = ()) -> Path:
        """The commit's manifest directory, exported to a directory of its own. Older exports
        are removed, except the commits in `keep`: the last good commit, whose files (template
        images) the loop may still need while newer commits are invalid."""
        target = self.workdir / "commits" / sha
        if not target.exists():
            data = self._git("archive", "--format=tar", sha).stdout
            tmp = target.with_name(sha + ".tmp")
            try:
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                    tar.extractall(tmp, filter="data")
                tmp.rename(target)
            except (OSError, tarfile.TarError) as exc:
                raise GitError(f"cannot export commit {sha[:12]}: {exc}") from None
            self._prune_checkouts(keep={sha, *keep})
        path = target / self.subdir if self.subdir else target
        if not path.is_dir():
            raise ReconError(f"commit {sha[:12]} has no directory '{self.subdir}'")
        return path

    def _prune_checkouts(self, keep: set[str], retain: int = 3) -> None:
        commits = self.workdir / "commits"
        entries = sorted(commits.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[retain:]:
            if old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)
