"""Host events, so drift is seen within a second: libvirt lifecycle and metadata events on a
real host; changes to the node file (made by another process) on the embedded host."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import libvirt
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

Notify = Callable[[str], None]
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


def watch_libvirt(uri: str, notify: Notify) -> Stop:
    _start_event_loop()
    conn = libvirt.openReadOnly(uri)

    def on_domain(_conn: Any, dom: Any, *args: Any) -> None:
        notify(f"domain {dom.name()}")

    def on_network(_conn: Any, net: Any, *args: Any) -> None:
        notify(f"network {net.name()}")

    ids = [
        conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_domain, None),
        conn.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, on_domain, None
        ),
    ]
    net_ids = [
        conn.networkEventRegisterAny(None, libvirt.VIR_NETWORK_EVENT_ID_LIFECYCLE, on_network, None)
    ]

    def stop() -> None:
        for callback_id in ids:
            conn.domainEventDeregisterAny(callback_id)
        for callback_id in net_ids:
            conn.networkEventDeregisterAny(callback_id)
        conn.close()

    return stop


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
