"""A libvirt connection opened ahead of the command that will use it.

Before `recon diff` can plan, it imports its modules and builds the manifest models (about a
quarter of a second), and the host has to be opened: the test driver parsing the embedded
host's node file in C, or a handshake with libvirtd. Neither needs the other, so the command
line `start`s the open in a thread before it imports the command, and the provider `take`s
the connection when it opens the host. A connection never taken is dropped with the
process; reading a host writes nothing.

This module imports libvirt and nothing of recon's provider, so starting costs only that
import. It is also where libvirt is told not to print its errors: recon reports them itself,
and an open that fails in this thread must be as quiet as one in the provider.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import libvirt

# libvirt prints every error to stderr by default.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

# (inode, size, mtime, ctime) of a node file: another process that writes it replaces it.
Signature = tuple[int, int, int, int]


def node_file_uri(path: Path) -> str:
    """The test driver's URI of the embedded host whose node file is `path`."""
    return f"test://{path.resolve()}"


def signature(path: Path) -> Signature | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class _Opening:
    def __init__(self, uri: str, node_file: Path | None) -> None:
        self.uri = uri
        # Taken before the driver reads the file, as the provider's own open does: a write
        # in between must make the kept host stale (EmbeddedHost.current).
        self.signature = signature(node_file) if node_file is not None else None
        self.conn: libvirt.virConnect | None = None
        self.error: libvirt.libvirtError | None = None
        self.thread = threading.Thread(target=self._open, name="recon-open", daemon=True)
        self.thread.start()

    def _open(self) -> None:
        try:
            self.conn = libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            self.error = exc


_openings: dict[str, _Opening] = {}


def start(uri: str, node_file: Path | None = None) -> None:
    """Open `uri` in a thread now. `node_file`: the embedded host's, which must exist
    (opening the test driver on a missing file fails; creating it is the provider's)."""
    if uri not in _openings:
        _openings[uri] = _Opening(uri, node_file)


def take(uri: str) -> tuple[libvirt.virConnect, Signature | None] | None:
    """The connection `start` opened for `uri` (waiting for it), with the node file's
    signature from before it was read; None when none was started. Raises what the open
    raised, in the caller's thread. A connection is taken once."""
    opening = _openings.pop(uri, None)
    if opening is None:
        return None
    opening.thread.join()
    if opening.error is not None:
        raise opening.error
    assert opening.conn is not None
    return opening.conn, opening.signature
