"""Drift, end to end: an operator's other tool (this test process) changes the embedded host
behind the loop's back, by rewriting its node file; the loop sees it through its host events
(`--resync` is long, so nothing else would make it look) and heals, reports or ignores it."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import OtherTool, Recon, edit
from tests.control.conftest import (
    EXAMPLES,
    StartLoop,
    condition,
    free_port,
    metric,
    obj,
    operator,
    resource,
    settled,
)

WEB = "VirtualMachine/web-1"
DB = "VirtualMachine/db-1"
CACHE = "Container/cache-1"


def running(recon: Recon, ref: str) -> bool | None:
    found = obj(recon, ref)
    return None if found is None else bool(found["running"])


def stop_guests(recon: Recon, other_tool: OtherTool, *names: str) -> float:
    """Stops guests as `virsh destroy` would. Returns a moment taken while holding the host
    lock: a pass that started later and looked at the host saw the change."""
    with operator(recon, other_tool) as conn:
        moment = time.time()
        for name in names:
            conn.lookupByName(name).destroy()
    return moment


def annotate(path: Path, annotations: dict[str, str]) -> None:
    lines = "".join(f'    {k}: "{v}"\n' for k, v in annotations.items())
    text = path.read_text()
    assert "metadata:\n" in text
    path.write_text(text.replace("metadata:\n", "metadata:\n  annotations:\n" + lines, 1))


def test_drift_is_healed_by_default_as_soon_as_the_host_changes(
    recon: Recon, manifests: Path, start_loop: StartLoop, other_tool: OtherTool
) -> None:
    loop = start_loop("watch", "-f", manifests, "--resync", "600")
    loop.wait_status(lambda s: settled(s, EXAMPLES))
    stop_guests(recon, other_tool, "web-1")
    loop.wait_host(lambda: running(recon, WEB))
    loop.wait_log("host event")
    loop.wait_log("drift")
    status = loop.wait_status(lambda s: settled(s, EXAMPLES))
    assert resource(status, WEB)["reason"] == "applied"
    assert loop.stop() == 0
    # The loop's own write (the heal) is not a host event: no pass came after the heal.
    passes = [line for line in loop.lines if " reconciled " in line]
    assert "changes=1" in passes[-1], loop.describe()


def test_drift_under_warn_is_reported_and_left_and_a_manifest_change_is_still_applied(
    recon: Recon, applied: Path, start_loop: StartLoop, other_tool: OtherTool
) -> None:
    port = free_port()
    loop = start_loop(
        "watch",
        "-f",
        applied,
        "--drift",
        "warn",
        "--resync",
        "1",
        "--metrics-addr",
        f"127.0.0.1:{port}",
    )
    # The host was applied by `recon apply`, not by this loop: the loop knows the resources
    # only as "matches the host".
    loop.wait_status(lambda s: settled(s, EXAMPLES))
    stop_guests(recon, other_tool, "web-1")
    status = loop.wait_status(lambda s: condition(s, WEB) == "Drifted")
    assert "state" in resource(status, WEB)["reason"]
    assert running(recon, WEB) is False  # reported, not healed
    assert metric(port, 'recon_drift_events_total{kind="VirtualMachine",policy="warn"}') >= 1

    # Deleted on the host: drift as well, on this pass and on every later one.
    with operator(recon, other_tool) as conn:
        dom = conn.lookupByName("db-1")
        dom.destroy()
        dom.undefine()
    loop.wait_status(lambda s: condition(s, DB) == "Drifted")
    loop.wait_pass_after(time.time())  # resyncs later, still not recreated
    status = loop.wait_pass_after(time.time())
    assert condition(status, DB) == "Drifted"
    assert obj(recon, DB) is None

    # The manifest moves on: that is not drift, and is applied (state included).
    edit(applied / "vms" / "web-1.yaml", "  cpus: 2\n", "  cpus: 3\n")
    loop.wait_host(lambda: running(recon, WEB))
    found = obj(recon, WEB)
    assert found is not None and found["fields"]["cpus"] == 3
    status = loop.wait_status(lambda s: condition(s, WEB) == "Ready")
    assert condition(status, DB) == "Drifted"
    assert loop.stop() == 0


def test_drift_under_ignore_is_left_silently_and_annotations_override_the_policy(
    recon: Recon, manifests: Path, start_loop: StartLoop, other_tool: OtherTool
) -> None:
    annotate(manifests / "vms" / "db-1.yaml", {"recon.dev/drift": "heal"})
    annotate(manifests / "containers" / "cache-1.yaml", {"recon.dev/drift": "warn"})
    loop = start_loop("watch", "-f", manifests, "--drift", "ignore", "--resync", "600")
    loop.wait_status(lambda s: settled(s, EXAMPLES))
    changed = stop_guests(recon, other_tool, "web-1", "db-1", "cache-1")
    loop.wait_host(lambda: running(recon, DB))  # heal, by annotation
    status = loop.wait_status(lambda s: condition(s, CACHE) == "Drifted")  # warn
    status = loop.wait_pass_after(changed)
    assert running(recon, CACHE) is False
    assert running(recon, WEB) is False  # ignore: left as it is
    assert condition(status, WEB) != "Drifted"
    assert loop.stop() == 0


def test_a_suspended_resource_is_not_reconciled(
    recon: Recon, applied: Path, start_loop: StartLoop, other_tool: OtherTool
) -> None:
    web = applied / "vms" / "web-1.yaml"
    annotate(web, {"recon.dev/suspend": "true"})
    loop = start_loop("watch", "-f", applied, "--resync", "600")
    status = loop.wait_status(lambda s: condition(s, WEB) == "Suspended")
    assert "suspend" in resource(status, WEB)["reason"]
    assert settled(status, [r for r in EXAMPLES if r != WEB])

    edit(web, "  cpus: 2\n", "  cpus: 3\n")  # a manifest change: not applied
    moment = stop_guests(recon, other_tool, "web-1")  # drift: not healed
    status = loop.wait_pass_after(moment)
    found = obj(recon, WEB)
    assert found is not None
    assert (found["fields"]["cpus"], found["running"]) == (2, False)
    assert condition(status, WEB) == "Suspended"

    edit(web, '    recon.dev/suspend: "true"\n', '    recon.dev/suspend: "false"\n')
    loop.wait_host(lambda: running(recon, WEB))
    found = obj(recon, WEB)
    assert found is not None and found["fields"]["cpus"] == 3
    loop.wait_status(lambda s: condition(s, WEB) == "Ready")
    assert loop.stop() == 0


def test_a_guest_paused_behind_the_loops_back_is_resumed(
    recon: Recon, manifests: Path, start_loop: StartLoop, other_tool: OtherTool
) -> None:
    loop = start_loop("watch", "-f", manifests, "--resync", "600")
    loop.wait_status(lambda s: settled(s, EXAMPLES))
    with operator(recon, other_tool) as conn:  # virsh suspend
        conn.lookupByName("web-1").suspend()
    loop.wait_host(
        lambda: (found := obj(recon, WEB)) is not None and found["fields"]["state"] == "Running"
    )
    assert "fields=['state']" in loop.wait_log("drift")
    assert loop.stop() == 0


def test_a_guest_whose_manifest_leaves_state_out_is_started_again_after_a_stop(
    recon: Recon, manifests: Path, start_loop: StartLoop, other_tool: OtherTool
) -> None:
    # `state` defaults to Running: recon starts such a guest when it creates it, so one
    # stopped behind its back is drift as if the manifest said so.
    for path in (manifests / "vms" / "web-1.yaml", manifests / "containers" / "cache-1.yaml"):
        text = path.read_text()
        assert "  state: Running\n" in text
        path.write_text(text.replace("  state: Running\n", ""))
    recon.ok("apply", "-f", manifests)
    stop_guests(recon, other_tool, "web-1", "cache-1")
    planned = recon("diff", "-f", manifests)
    assert planned.returncode == 1, planned.stdout
    assert planned.stdout.count("state: Stopped -> Running") == 2, planned.stdout
    loop = start_loop("watch", "-f", manifests, "--resync", "600")
    loop.wait_host(lambda: running(recon, WEB) and running(recon, CACHE))
    loop.wait_status(lambda s: settled(s, EXAMPLES))
