"""Host events over libvirt, kept up across a lost connection. libvirt's test driver
(test:///default, in this process) delivers domain events like a real daemon; what a daemon's
restart does to the connection (libvirt calls the close callback) is done here by calling the
same handler libvirt calls. The real restart: tests/integration/test_reconnect.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import libvirt
import pytest

from reconciler.providers.libvirt.events import LibvirtEvents
from tests.control.conftest import wait_until

UNREACHABLE = "qemu+unix:///system?socket=/nonexistent/recon-test.sock"


class Seen:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.connection: list[tuple[bool, str]] = []
        self.lock = threading.Lock()

    def event(self, why: str) -> None:
        with self.lock:
            self.events.append(why)

    def conn(self, up: bool, why: str) -> None:
        with self.lock:
            self.connection.append((up, why))


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def events(seen: Seen) -> Iterator[LibvirtEvents]:
    watch = LibvirtEvents("test:///default", seen.event, seen.conn, retry=0.05, retry_cap=0.2)
    watch.start()
    yield watch
    watch.stop()


@pytest.fixture
def guest() -> Iterator[libvirt.virDomain]:
    """The test driver's own running guest, through a second connection (an operator's)."""
    conn = libvirt.open("test:///default")
    dom = conn.lookupByName("test")
    yield dom
    if dom.info()[0] == libvirt.VIR_DOMAIN_PAUSED:
        dom.resume()
    conn.close()


def test_stopping_after_the_connection_died_does_not_raise(
    events: LibvirtEvents, seen: Seen
) -> None:
    assert events.conn is not None
    events.conn.close()  # as the daemon's going away leaves it: every call now fails
    with pytest.raises(libvirt.libvirtError):
        events.conn.domainEventDeregisterAny(0)
    events.stop()
    events.stop()  # twice, too
    assert events.conn is None


def test_a_closed_connection_is_said_reopened_and_events_arrive_again(
    events: LibvirtEvents, seen: Seen, guest: libvirt.virDomain
) -> None:
    guest.suspend()
    wait_until(lambda: "domain test" in seen.events)
    first = events.conn
    events._on_close(first, libvirt.VIR_CONNECT_CLOSE_REASON_EOF)  # what libvirt calls
    events._on_close(first, libvirt.VIR_CONNECT_CLOSE_REASON_EOF)  # said twice: one reconnect
    wait_until(lambda: (True, "") in seen.connection)
    events._on_close(first, libvirt.VIR_CONNECT_CLOSE_REASON_EOF)  # late, of the old one: ignored
    down, up = seen.connection
    assert down[0] is False and "closed" in down[1] and "test:///default" in down[1]
    assert up == (True, "")
    assert events.conn is not None and events.conn is not first
    # The reconnect itself asks for a look: events were missed while it was down.
    assert any("subscribed again" in e for e in seen.events)
    before = len([e for e in seen.events if e == "domain test"])
    guest.resume()
    wait_until(lambda: len([e for e in seen.events if e == "domain test"]) > before)


def test_a_connection_lost_while_being_reopened_is_reopened_again(
    events: LibvirtEvents, seen: Seen
) -> None:
    events.uri = UNREACHABLE
    events.lost("first")
    wait_until(lambda: seen.connection)
    events.lost("again")  # e.g. the daemon restarting twice: the reconnect must not stop at it
    events.uri = "test:///default"
    wait_until(lambda: (True, "") in seen.connection)
    assert seen.connection[0][0] is False and len(seen.connection) == 2
    assert events.conn is not None and events.conn.isAlive()


def test_recon_closing_its_own_connection_is_not_a_loss(events: LibvirtEvents, seen: Seen) -> None:
    events._on_close(events.conn, libvirt.VIR_CONNECT_CLOSE_REASON_CLIENT)
    events.stop()
    assert seen.connection == []


def test_an_unreachable_host_is_retried_until_it_answers_and_stop_ends_the_retries(
    events: LibvirtEvents, seen: Seen
) -> None:
    events.uri = UNREACHABLE  # the daemon is not back yet
    events.lost("test")
    wait_until(lambda: seen.connection)
    threading.Event().wait(0.5)  # several attempts (backoff 0.05 s .. 0.2 s), all failing
    assert seen.connection == [(False, f"connection to {UNREACHABLE} closed: test")]
    events.uri = "test:///default"  # back
    wait_until(lambda: (True, "") in seen.connection)

    events.uri = UNREACHABLE
    events.lost("again")
    wait_until(lambda: len(seen.connection) == 3)
    events.stop()  # while retrying: the retries end, nothing is reported as back
    threading.Event().wait(0.5)
    assert len(seen.connection) == 3
    assert not [t for t in threading.enumerate() if t.name == "libvirt-reconnect"]


def test_the_first_subscription_to_an_unreachable_host_fails_plainly(seen: Seen) -> None:
    watch = LibvirtEvents(UNREACHABLE, seen.event, seen.conn)
    with pytest.raises(libvirt.libvirtError):
        watch.start()
    watch.stop()
