"""Persisted status: what the loop records survives a restart, byte for byte in meaning."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.control.status import (
    DRIFTED,
    MAX_RUNS,
    READY,
    RECONCILING,
    STALLED,
    UNKNOWN,
    Run,
    Status,
    load_status,
    save_status,
    status_path,
)
from tests.conftest import Recon


def sample() -> Status:
    status = Status(host="test:///h/host.xml", source="git: file:///r.git#main")
    status.revision = "b" * 40
    status.last_good_revision = "a" * 40
    status.set("VirtualMachine/web-1", READY, "applied", revision="a" * 40)
    status.set("VirtualMachine/db-1", DRIFTED, "host differs: state")
    status.set("Container/cache-1", STALLED, "NeedsReplace", error="run with --allow-replace")
    status.add_run(Run(1700000000.5, 0.125, "a" * 40, "applied", 3))
    status.add_run(Run(1700000060.0, 0.01, "b" * 40, "invalid", 0, "2 problems"))
    status.errors = ["error: node-1/vms/db-1.yaml:3:1: something"]
    return status


def test_status_round_trips_through_its_file(tmp_path: Path) -> None:
    path = status_path(tmp_path, "test:///h/host.xml")
    status = sample()
    save_status(path, status)
    loaded = load_status(path)
    assert loaded == status
    assert loaded.resources["Container/cache-1"].last_error == "run with --allow-replace"
    assert loaded.runs[-1].error == "2 problems"
    # The file is plain JSON, as `recon status -o json` prints it.
    assert json.loads(path.read_text())["runs"][0]["duration"] == 0.125
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


def test_each_host_has_its_own_status_file(tmp_path: Path) -> None:
    one = status_path(tmp_path, "test:///a/host.xml")
    two = status_path(tmp_path, "qemu:///system")
    assert one != two
    assert one.parent == two.parent == tmp_path / "status"


def test_a_missing_or_damaged_status_file_is_an_empty_status(tmp_path: Path) -> None:
    path = tmp_path / "status" / "x.json"
    assert load_status(path) == Status()
    path.parent.mkdir()
    path.write_text('{"runs": [')
    assert load_status(path) == Status()
    path.write_text('{"runs": [{"unexpected": 1}]}')
    assert load_status(path) == Status()
    for damaged in ("[]", '{"resources": []}', "null"):
        path.write_text(damaged)
        assert load_status(path) == Status()


def test_only_the_last_runs_are_kept() -> None:
    status = Status()
    for i in range(MAX_RUNS + 7):
        status.add_run(Run(float(i), 0.0, None, "no changes"))
    assert len(status.runs) == MAX_RUNS
    assert status.runs[0].started == 7.0


def test_a_condition_keeps_its_since_and_the_last_applied_revision_is_remembered() -> None:
    status = Status()
    status.set("VirtualMachine/web-1", READY, "applied", revision="abc")
    since = status.resources["VirtualMachine/web-1"].since
    status.set("VirtualMachine/web-1", READY, "matches the host")
    entry = status.resources["VirtualMachine/web-1"]
    assert (entry.since, entry.last_applied_revision) == (since, "abc")
    status.set("VirtualMachine/web-1", RECONCILING, "ApplyFailed", error="boom")
    entry = status.resources["VirtualMachine/web-1"]
    assert entry.condition == RECONCILING
    assert entry.last_error == "boom"
    assert entry.last_applied_revision == "abc"


def test_status_shows_what_was_ready_as_unknown_while_the_host_is_unreachable(
    recon: Recon,
) -> None:
    uri = "qemu:///system"
    status = sample()
    status.host = uri
    status.host_error = "cannot connect to qemu:///system: Failed to connect socket"
    save_status(status_path(recon.home, uri), status)
    shown = json.loads(recon.ok("--connect", uri, "status", "-o", "json").stdout)
    conditions = {ref: st["condition"] for ref, st in shown["resources"].items()}
    assert conditions == {
        "VirtualMachine/web-1": UNKNOWN,
        "VirtualMachine/db-1": UNKNOWN,
        "Container/cache-1": STALLED,  # what recon did (a refusal) is still known
    }
    assert shown["resources"]["VirtualMachine/web-1"]["reason"] == (
        "host unreachable; last seen Ready: applied"
    )
    table = recon.ok("--connect", uri, "status").stdout
    assert "UNREACHABLE" in table
    row = next(line for line in table.splitlines() if line.startswith("VirtualMachine/web-1"))
    assert row.split()[1] == UNKNOWN
    # Reachable again: what the loop saw is shown as it saw it.
    status.host_error = None
    save_status(status_path(recon.home, uri), status)
    shown = json.loads(recon.ok("--connect", uri, "status", "-o", "json").stdout)
    assert shown["resources"]["VirtualMachine/web-1"]["condition"] == READY
    assert load_status(status_path(recon.home, uri)) == status
