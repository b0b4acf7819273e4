"""A resource that always fails, under a running loop: the failure is said (log, status), it is
retried with the documented backoff however many host events arrive meanwhile, and it does not
keep the loop from looking after every other resource.

The failure is deterministic on the embedded host and needs no network: the template cache-1
is made from names a repository on a closed local port, so every attempt at the template fails
at apply time (its build cannot read the repository), and cache-1 waits for it. (A missing
secret is no such failure: it refuses the whole pass before any action.)"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from tests.conftest import OtherTool, Recon, output
from tests.control.conftest import (
    StartLoop,
    condition,
    obj,
    operator,
    resource,
    wait_until,
)

TEMPLATE = "Template/debian-12-minimal"
DB = "VirtualMachine/db-1"
CACHE = "Container/cache-1"
CAUSE = "cannot reach the repository"
NOWHERE = "  repositories:\n    - {name: nowhere, url: 'http://127.0.0.1:9/debian'}\n"
# Seconds the pass count is taken over. Backoff 1 s, 2 s, 4 s: passes at +1, +3, +7.
WINDOW = 8.0


def break_the_container_template(manifests: Path) -> None:
    text = (manifests / "templates.yaml").read_text()
    at = text.index("  source:", text.index("name: debian-12-minimal"))
    (manifests / "templates.yaml").write_text(text[:at] + NOWHERE + text[at:])


def failed_passes(lines: list[str]) -> list[dict[str, Any]]:
    """The JSON log records of failed passes' errors."""
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("msg") == "reconcile failed":
            records.append(record)
    return records


def test_a_persistent_failure_is_logged_recorded_and_backs_off_despite_host_events(
    recon: Recon, manifests: Path, start_loop: StartLoop, other_tool: OtherTool
) -> None:
    break_the_container_template(manifests)
    loop = start_loop("watch", "-f", manifests, "--resync", "600", "--log-format", "json")
    wait_until(lambda: failed_passes(loop.lines), describe=loop.describe)

    # Host events all along the window: another tool defines an unmanaged guest every 0.3 s
    # (each a change of the embedded host's node file, which the loop is subscribed to).
    stop = threading.Event()

    def poke() -> None:
        n = 0
        while not stop.is_set():
            with operator(recon, other_tool) as conn:
                conn.defineXML(
                    f"<domain type='test'><name>other-{n}</name><memory>65536</memory>"
                    "<os><type>hvm</type></os></domain>"
                )
            n += 1
            stop.wait(0.3)

    poker = threading.Thread(target=poke, daemon=True)
    before = len(failed_passes(loop.lines))
    events_before = sum('"host event"' in line for line in loop.lines)
    poker.start()
    try:
        time.sleep(WINDOW)
    finally:
        stop.set()
        poker.join(30)
    loop.wait_log("host event")  # the events did arrive
    during = len(failed_passes(loop.lines)) - before
    events = sum('"host event"' in line for line in loop.lines) - events_before
    print(f"failed passes in {WINDOW:g} s: {during}, with {events} host events")  # measured
    # Three retries are due in the window; one more is slack for a loaded machine. Without
    # backoff the events alone would make a pass every 0.3 s (more than 20).
    assert 1 <= during <= 4, loop.describe()

    # Every failed pass says why, in the JSON field `error`: the template's build, or (a
    # pass that met the other tool at work) the host lock it holds.
    records = failed_passes(loop.lines)
    assert any(r.get("resource") == TEMPLATE for r in records), records
    for record in records:
        if record.get("resource") == TEMPLATE:
            assert CAUSE in record["error"], record
        else:
            assert "is changing" in record["error"], record
    status = loop.status()
    failed = [run for run in status["runs"] if run["result"] == "failed"]
    assert failed and all(run["error"] for run in failed), status["runs"]
    assert any(CAUSE in run["error"] for run in failed), status["runs"]
    assert any(CAUSE in e for e in status["errors"]), status["errors"]
    assert condition(status, TEMPLATE) != "Ready"
    assert CAUSE in resource(status, TEMPLATE)["last_error"]
    shown = recon.ok("status")
    assert CAUSE in shown.stdout + shown.stderr
    assert loop.stop() == 0


def test_one_failing_guest_does_not_keep_another_from_being_healed(
    recon: Recon, manifests: Path, start_loop: StartLoop, other_tool: OtherTool
) -> None:
    break_the_container_template(manifests)
    loop = start_loop("watch", "-f", manifests, "--resync", "600")
    # db-1 needs nothing the failing template makes.
    status = loop.wait_status(lambda s: condition(s, DB) == "Ready")
    assert condition(status, TEMPLATE) != "Ready"
    assert obj(recon, CACHE) is None  # it needs the template: it waits

    with operator(recon, other_tool) as conn:  # virsh destroy, behind recon's back
        conn.lookupByName("db-1").destroy()
    loop.wait_host(lambda: (found := obj(recon, DB)) is not None and found["running"])
    assert condition(loop.status(), TEMPLATE) != "Ready"
    assert loop.stop() == 0


def test_an_unreachable_host_is_shown_in_status_and_sigterm_still_exits_0(
    recon: Recon, manifests: Path, start_loop: StartLoop
) -> None:
    # A libvirtd that is not running: its socket is not there.
    uri = "qemu+unix:///system?socket=/nonexistent/recon-test.sock"
    loop = start_loop("--connect", uri, "watch", "-f", manifests, "--log-format", "json")
    loop.wait_log("host unreachable; host events are subscribed once it answers")

    def unreachable() -> dict[str, Any] | None:
        result = recon("--connect", uri, "status", "-o", "json")
        data: dict[str, Any] = json.loads(result.stdout)
        return data if data.get("host_error") and data["runs"] else None

    status = wait_until(unreachable, describe=loop.describe)
    assert status["host"] == uri
    assert "/nonexistent/recon-test.sock" in status["host_error"]
    assert status["runs"][-1]["result"] == "failed"
    shown = recon("--connect", uri, "status")
    assert "UNREACHABLE" in shown.stdout, output(shown)
    # Without --connect: the host the loop serves, not the (unused) embedded host.
    plain = recon("status")
    assert f"host: {uri}" in plain.stdout, output(plain)
    assert f"showing the host a loop served last from this RECON_HOME: {uri}" in plain.stderr
    assert json.loads(recon.ok("status", "-o", "json").stdout)["host"] == uri
    assert loop.stop() == 0, loop.describe()
    assert "Traceback" not in loop.log
