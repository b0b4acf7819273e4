"""The control loop across a libvirtd restart, on the real daemon (issue 11, item 1).

`recon watch` runs with a long resync, so only host events can make it look; libvirtd is
stopped and started again (scripts/libvirtd), then a guest is destroyed behind recon's back.
The loop must notice the close at once, show the host unreachable while it is down, subscribe
to events again once it is back, heal the guest, and exit 0 on SIGTERM. Like test_faults.py it
runs only on a daemon this test run started (RECON_LIBVIRTD_OWNED=1)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from typing import Any

import pytest

from tests.conftest import RECON, ROOT
from tests.integration.conftest import Host, Scene

LIBVIRTD = str(ROOT / "scripts" / "libvirtd")


def wait_for(predicate: Any, timeout: float, what: str, describe: Any = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what}\n{describe() if describe else ''}"
    )


@pytest.fixture
def owned_libvirtd(host: Host) -> None:
    if os.environ.get("RECON_LIBVIRTD_OWNED") != "1":
        pytest.skip(
            "restarts libvirtd, so it runs only on a daemon this test run started "
            "(RECON_LIBVIRTD_OWNED=1, set by ./scripts/test when it starts libvirtd itself)"
        )


def test_the_loop_reconnects_after_libvirtd_restarts_and_heals_what_changed(
    host: Host, scene: Scene, owned_libvirtd: None
) -> None:
    vm = scene.vm("a")
    scene.apply()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
    env.update(RECON_HOME=str(scene.recon.home), NO_COLOR="1")
    loop = subprocess.Popen(
        [
            RECON,
            "--connect",
            host.uri,
            "watch",
            *scene.files,
            "--resync",
            "600",
            "--log-format",
            "json",
        ],
        cwd=scene.work,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert loop.stderr is not None
        lines.extend(line.rstrip("\n") for line in loop.stderr)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def describe() -> str:
        return "\n".join(lines[-40:])

    def logged(msg: str) -> bool:
        return any(json.loads(line).get("msg") == msg for line in lines if line.startswith("{"))

    def status() -> dict[str, Any]:
        result = scene.recon("status", "-o", "json")
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    try:
        wait_for(lambda: logged("reconciled"), 120, "the first pass", describe)
        subprocess.run([LIBVIRTD, "stop"], check=True, timeout=120)
        try:
            wait_for(lambda: logged("host connection lost"), 30, "the close noticed", describe)
            wait_for(lambda: status().get("host_error"), 60, "status: unreachable", describe)
        finally:
            subprocess.run([LIBVIRTD, "start"], check=True, timeout=300)
        wait_for(
            lambda: logged("host connection back; events subscribed again"),
            120,
            "events subscribed again",
            describe,
        )
        moment = time.time()
        host.domain(vm).destroy()  # virsh destroy, after the restart
        wait_for(lambda: host.domain(vm).isActive(), 60, "the guest healed", describe)
        wait_for(
            lambda: (
                not status().get("host_error")
                and any(
                    r["started"] > moment and r["result"] == "applied" for r in status()["runs"]
                )
            ),
            60,
            "status: reachable, the heal recorded",
            describe,
        )
    finally:
        if loop.poll() is None:
            loop.send_signal(signal.SIGTERM)
        code = loop.wait(120)
        reader.join(10)
    assert code == 0, describe()
    assert not any("Traceback" in line for line in lines), describe()
