"""Stopping cleanly, logs and metrics.

SIGTERM in the middle of an apply: RECON_FAILPOINT_LOG names a FIFO, so the loop's first
failpoint ("before" its first change) blocks opening it until this test reads. The signal is sent
while the loop is held there, so it arrives, deterministically, while a change is under way."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Recon
from tests.control.conftest import (
    DEADLINE,
    EXAMPLES,
    StartLoop,
    free_port,
    metric,
    scrape,
    settled,
    wait_until,
)


def drain_fifo(fifo: Path, done: Callable[[], bool], timeout: float = DEADLINE) -> list[str]:
    """Lines written to the FIFO until done() and the writer are through. Opened non-blocking,
    so a writer waiting to open it is released at once and this never waits for one."""
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:  # a writer has it open, nothing written yet
                chunk = None
            if chunk:
                data += chunk
                continue
            if chunk == b"" and done():
                break
            time.sleep(0.01)
    finally:
        os.close(fd)
    return data.decode().splitlines()


def test_sigterm_during_an_apply_finishes_the_change_stops_cleanly_and_a_restart_converges(
    recon: Recon, manifests: Path, tmp_path: Path, start_loop: StartLoop
) -> None:
    fifo = tmp_path / "failpoints.fifo"
    os.mkfifo(fifo)
    loop = start_loop(
        "watch", "-f", manifests, "--resync", "600", env={"RECON_FAILPOINT_LOG": str(fifo)}
    )
    # The first change is announced, then its "before" failpoint waits for a reader.
    loop.wait_log("+ StoragePool/default: create...")
    loop.send(signal.SIGTERM)
    loop.wait_log("stopping: the change under way finishes first")
    crossed = drain_fifo(fifo, lambda: loop.proc.poll() is not None)
    assert loop.stop() == 0, loop.describe()
    names = [line.split(" ", 1)[1] for line in crossed]
    # The change under way finished (its "after"), and nothing else was started.
    assert names == ["before create StoragePool/default", "after create StoragePool/default"]
    assert "stopped" in loop.lines[-1]

    # The host file is whole, and shows exactly the finished change.
    ET.parse(recon.host_xml)
    objects = recon.objects()
    assert list(objects) == ["StoragePool/default"]
    assert objects["StoragePool/default"]["managed"]
    status = loop.status()
    assert status["runs"][-1]["result"] == "stopped"
    assert status["runs"][-1]["changes"] == 1
    assert status["resources"]["StoragePool/default"]["condition"] == "Ready"
    web = status["resources"]["VirtualMachine/web-1"]
    assert (web["condition"], web["reason"]) == ("Reconciling", "not started: the loop stopped")

    # Started again, the loop finishes the job; afterwards the host matches the manifests.
    again = start_loop("watch", "-f", manifests, "--resync", "600")
    again.wait_status(lambda s: settled(s, EXAMPLES))
    assert again.stop() == 0
    check = recon("diff", "-f", manifests)
    assert check.returncode == 0, check.stdout + check.stderr


def test_sigint_stops_an_idle_loop_with_exit_code_0(
    recon: Recon, manifests: Path, start_loop: StartLoop
) -> None:
    loop = start_loop("watch", "-f", manifests, "--resync", "600")
    loop.wait_status(lambda s: settled(s, EXAMPLES))
    assert loop.stop(signal.SIGINT) == 0
    assert "signal=SIGINT" in loop.log
    assert "Traceback" not in loop.log


def test_json_logs_and_prometheus_metrics(
    recon: Recon, manifests: Path, start_loop: StartLoop
) -> None:
    port = free_port()
    loop = start_loop(
        "watch",
        "-f",
        manifests,
        "--resync",
        "600",
        "--log-format",
        "json",
        "--metrics-addr",
        f"127.0.0.1:{port}",
    )
    loop.wait_status(lambda s: settled(s, EXAMPLES))
    # A broken manifest: an error line in the log, an error in the status.
    (manifests / "vms" / "web-2.yaml").write_text("kind: [\n")
    loop.wait_status(lambda s: any("web-2.yaml" in e for e in s["errors"]))

    wait_until(lambda: metric(port, 'recon_reconcile_duration_seconds_count{result="applied"}'))
    text = scrape(port)
    for family in (
        "recon_reconcile_duration_seconds",
        "recon_queue_depth",
        "recon_drift_events_total",
        "recon_errors_total",
    ):
        assert f"# TYPE {family} " in text, text
    assert metric(port, 'recon_reconcile_duration_seconds_bucket{le="+Inf",result="applied"}') == 1
    assert metric(port, "recon_queue_depth") >= 0

    assert loop.stop() == 0
    records = []
    for line in loop.lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}\n{loop.describe()}") from None
    assert records and all({"ts", "level", "msg"} <= set(r) for r in records)
    assert records[0]["msg"] == "started"
    assert records[-1]["msg"] == "stopped"
    reconciled = [r for r in records if r["msg"] == "reconciled"]
    assert reconciled[0]["result"] == "applied"
    assert isinstance(reconciled[0]["seconds"], float)
    errors = [r for r in records if r["level"] == "error"]
    assert any("web-2.yaml" in r.get("diagnostic", "") for r in errors)


def test_a_metrics_address_that_cannot_be_served_is_an_error_not_a_traceback(
    recon: Recon, manifests: Path, start_loop: StartLoop
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = start_loop(
            "watch", "-f", manifests, "--log-format", "json", "--metrics-addr", f"127.0.0.1:{port}"
        )
        assert busy.proc.wait(DEADLINE) == 2
    wrong = start_loop("watch", "-f", manifests, "--metrics-addr", "localhost")
    assert wrong.proc.wait(DEADLINE) == 2
    for loop in (busy, wrong):
        loop.stop()
        assert "Traceback" not in loop.log
    assert "cannot serve metrics" in busy.log
    # An address with no port is refused with the flags, before the loop starts.
    assert "Invalid value for '--metrics-addr'" in wrong.log
    assert json.loads(busy.lines[-1])["msg"] == "cannot serve metrics"
    assert not recon.host_xml.exists() or recon.objects() == {}  # nothing was applied
