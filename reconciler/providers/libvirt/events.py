"""Host events, so drift is seen within a second: libvirt lifecycle and metadata events on a
real host; changes to the node file (made by another process) on the embedded host."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import libvirt
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

Notify = Callable[[str], None]
# (up, why): the host's connection was lost (False, why) or is back (True, "").
ConnectionNotify = Callable[[bool, str], None]
Stop = Callable[[], None]

# Content hashes of node files this process wrote itself: not drift, not worth a look.
# Ordered, so the oldest is forgotten first.
WRITTEN: dict[str, None] = {}
_loop_lock = threading.Lock()
_loop_started = False


def remember_write(data: bytes) -> None:
    WRITTEN[hashlib.sha256(data).hexdigest()] = None
    while len(WRITTEN) > 64:
        del WRITTEN[next(iter(WRITTEN))]


def _start_event_loop() -> None:
    """libvirt's default event loop, in a daemon thread, once per process. It must be
    registered before the connection that delivers events is opened."""
    global _loop_started
    with _loop_lock:
        if _loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _loop_started = True


# Why libvirt closed a connection (virConnectCloseReason), as an operator reads it.
_CLOSE_REASONS = {
    libvirt.VIR_CONNECT_CLOSE_REASON_ERROR: "a connection error",
    libvirt.VIR_CONNECT_CLOSE_REASON_EOF: "the daemon closed it (stopped or restarted)",
    libvirt.VIR_CONNECT_CLOSE_REASON_KEEPALIVE: "no keepalive answer",
    libvirt.VIR_CONNECT_CLOSE_REASON_CLIENT: "closed by recon",
}
# Keepalive: a probe every 5 s, the connection given up after 3 unanswered (~20 s), so a
# daemon that hangs or a host that vanishes is noticed without waiting for a resync.
KEEPALIVE_INTERVAL = 5
KEEPALIVE_COUNT = 3


class LibvirtEvents:
    """libvirt lifecycle and metadata events over a read-only connection of its own, kept up:
    libvirt's close callback says at once when the connection is gone (libvirtd stopped or
    restarted, keepalive unanswered); `connection(False, why)` is called, and a thread opens
    it again with backoff (`retry` seconds, doubling up to `retry_cap`), subscribes again and
    calls `connection(True, "")`. Stopping tolerates a connection in any state."""

    def __init__(
        self,
        uri: str,
        notify: Notify,
        connection: ConnectionNotify | None = None,
        *,
        retry: float = 0.5,
        retry_cap: float = 30.0,
    ) -> None:
        self.uri = uri
        self.notify = notify
        self.connection = connection or (lambda _up, _why: None)
        self.retry = retry
        self.retry_cap = retry_cap
        self.conn: libvirt.virConnect | None = None
        self._ids: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._reconnecting = False
        self._lost_again = False

    def start(self) -> None:
        """Subscribes; raises libvirtError when the host cannot be reached now."""
        _start_event_loop()
        self._connect()

    def _connect(self) -> None:
        conn = libvirt.openReadOnly(self.uri)
        ids: list[tuple[str, int]] = []
        try:
            with suppress(libvirt.libvirtError):  # a driver without keepalive (test:///)
                conn.setKeepAlive(KEEPALIVE_INTERVAL, KEEPALIVE_COUNT)
            conn.registerCloseCallback(self._on_close, None)
            for event in (
                libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                libvirt.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
            ):
                callback_id = conn.domainEventRegisterAny(None, event, self._on_domain, None)
                ids.append(("domain", callback_id))
            ids.append(
                (
                    "network",
                    conn.networkEventRegisterAny(
                        None, libvirt.VIR_NETWORK_EVENT_ID_LIFECYCLE, self._on_network, None
                    ),
                )
            )
        except libvirt.libvirtError:
            _release(conn, ids)
            raise
        with self._lock:
            if self._stopping.is_set():
                _release(conn, ids)
                return
            self.conn, self._ids = conn, ids

    def _on_domain(self, _conn: Any, dom: Any, *args: Any) -> None:
        self.notify(f"domain {dom.name()}")

    def _on_network(self, _conn: Any, net: Any, *args: Any) -> None:
        self.notify(f"network {net.name()}")

    def _on_close(self, conn: Any, reason: int, _opaque: Any = None) -> None:
        """libvirt's close callback (in its event thread): must not block, so the dead
        connection is let go and a new one opened in a thread of its own."""
        if reason == libvirt.VIR_CONNECT_CLOSE_REASON_CLIENT:
            return
        with self._lock:
            if conn is not self.conn:
                return  # an earlier connection, already let go (or not yet taken: see below)
        self.lost(_CLOSE_REASONS.get(reason, f"reason {reason}"))

    def lost(self, why: str) -> None:
        """The connection is gone: say so and reconnect (once, however often it is said)."""
        with self._lock:
            if self._stopping.is_set():
                return
            if self._reconnecting:
                # Lost while a reconnect was under way (the new connection died at once):
                # that reconnect must not stop at it.
                self._lost_again = True
                return
            self._reconnecting = True
            dead, ids = self.conn, self._ids
            self.conn, self._ids = None, []
        self.connection(False, f"connection to {self.uri} closed: {why}")
        threading.Thread(
            target=self._reconnect, args=(dead, ids), name="libvirt-reconnect", daemon=True
        ).start()

    def _reconnect(self, dead: libvirt.virConnect | None, ids: list[tuple[str, int]]) -> None:
        if dead is not None:
            _release(dead, ids)
        delay = self.retry
        while not self._stopping.wait(delay):
            try:
                self._connect()
            except libvirt.libvirtError:
                delay = min(self.retry_cap, delay * 2)
                continue
            with self._lock:
                if self._stopping.is_set():
                    return
                # Closed before it was taken (its close callback then ignored), or after.
                if self._lost_again or not _alive(self.conn):
                    self._lost_again = False
                    dead, ids = self.conn, self._ids
                    self.conn, self._ids = None, []
                else:
                    self._reconnecting = False
                    dead = None
            if dead is not None:
                _release(dead, ids)
                continue
            self.connection(True, "")
            # What changed while no event could arrive (a guest destroyed meanwhile).
            self.notify(f"events from {self.uri} subscribed again")
            return

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            conn, ids = self.conn, self._ids
            self.conn, self._ids = None, []
        if conn is not None:
            _release(conn, ids)


def _alive(conn: libvirt.virConnect | None) -> bool:
    try:
        return conn is not None and bool(conn.isAlive())
    except libvirt.libvirtError:
        return False


def _release(conn: libvirt.virConnect, ids: list[tuple[str, int]]) -> None:
    """Deregister and close, whatever state the connection is in: on a connection the daemon
    already closed every call fails ("client socket is closed"), and that is no error here."""
    for kind, callback_id in ids:
        with suppress(libvirt.libvirtError):
            if kind == "domain":
                conn.domainEventDeregisterAny(callback_id)
            else:
                conn.networkEventDeregisterAny(callback_id)
    with suppress(libvirt.libvirtError):
        conn.unregisterCloseCallback()
    with suppress(libvirt.libvirtError):
        conn.close()


def watch_libvirt(uri: str, notify: Notify, connection: ConnectionNotify | None = None) -> Stop:
    events = LibvirtEvents(uri, notify, connection)
    events.start()
    return events.stop


class _NodeFileHandler(FileSystemEventHandler):
    def __init__(self, path: Path, notify: Notify) -> None:
        self.path = str(path)
        self.notify = notify

    def on_any_event(self, event: FileSystemEvent) -> None:
        if self.path not in (str(event.src_path), str(getattr(event, "dest_path", ""))):
            return
        if event.event_type not in ("modified", "created", "moved", "closed"):
            return
        try:
            digest = hashlib.sha256(Path(self.path).read_bytes()).hexdigest()
        except OSError:
            return
        if digest not in WRITTEN:
            self.notify("embedded host changed by another process")


def watch_node_file(path: Path, notify: Notify) -> Stop:
    observer = Observer()
    observer.schedule(
        _NodeFileHandler(path.resolve(), notify), str(path.resolve().parent), recursive=False
    )
    observer.start()

    def stop() -> None:
        observer.stop()
        observer.join(timeout=5)

    return stop
