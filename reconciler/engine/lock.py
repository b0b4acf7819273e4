"""One mutating command per host at a time: an advisory lock the kernel drops with its holder."""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path
from types import TracebackType

from reconciler.model.errors import TemporaryError
from reconciler.providers.files import private_dirs


class HostLocked(TemporaryError):
    """Another recon is changing this host."""


class HostLock:
    """flock(2) on a file per host URI: a killed holder cannot leave a stale lock behind."""

    def __init__(self, home: Path, uri: str) -> None:
        digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
        self.path = home / "locks" / f"{digest}.lock"
        self.uri = uri
        self._fd: int | None = None

    def acquire(self) -> None:
        private_dirs(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise HostLocked(
                f"another recon (pid {holder}) is changing {self.uri}",
                "wait for it to finish; the lock goes away with its process",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> HostLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
