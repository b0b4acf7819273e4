"""The control loop across libvirtd going away, on the real daemon (issue 11, item 1).

`recon watch` runs with a long resync, so only host events can make it look. libvirtd is
stopped and started again (scripts/libvirtd), then a guest is destroyed behind recon's back.
The loop must notice the close at once, show the host unreachable while it is down, subscribe
to events again once it is back, heal the guest, and exit 0 on SIGTERM. A loop started while
libvirtd is down subscribes once it answers. Like test_faults.py these run only on a daemon
this test run started (RECON_LIBVIRTD_OWNED=1)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import RECON, ROOT
from tests.integration.conftest import Host, Scene

LIBVIRTD = str(ROOT / "scripts" / "libvirtd")


class Watch:
    """`recon --connect URI watch` of the scene, its JSON log collected."""

    def __init__(self, host: Host, scene: Scene) -> None:
        self.scene = scene
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
        env.update(RECON_HOME=str(scene.recon.home), NO_COLOR="1")
        args = ["--connect", host.uri, "watch", *scene.files, "--resync", "600"]
        self.proc = subprocess.Popen(
            [RECON, *args, "--log-format", "json"],
            cwd=scene.work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        self.lines.extend(line.rstrip("\n") for line in self.proc.stderr)

    def describe(self) -> str:
        return "\n".join(self.lines[-40:])

    def logged(self, msg: str) -> bool:
        for line in self.lines:
            try:
                if json.loads(line).get("msg") == msg:
                    return True
            except ValueError:
                continue
        return False

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.scene.recon("status", "-o", "json").stdout)
        return data

    def wait(self, predicate: Callable[[], object], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the loop exited\n{self.describe()}"
            if predicate():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{self.describe()}")

    def healed_after(self, moment: float) -> bool:
        status = self.status()
        return not status.get("host_error") and any(
            r["started"] > moment and r["result"] == "applied" for r in status["runs"]
        )

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(120)
        self.reader.join(10)
        return code


@pytest.fixture
def owned_libvirtd(host: Host) -> Iterator[None]:
    if os.environ.get("RECON_LIBVIRTD_OWNED") != "1":
        pytest.skip(
            "restarts libvirtd, so it runs only on a daemon this test run started "
            "(RECON_LIBVIRTD_OWNED=1, set by ./scripts/test when it starts libvirtd itself)"
        )
    yield
    # Back for whatever comes next, also when an assertion failed while it was stopped.
    subprocess.run([LIBVIRTD, "start"], check=True, timeout=300)


def test_the_loop_reconnects_after_libvirtd_restarts_and_heals_what_changed(
    host: Host, scene: Scene, owned_libvirtd: None
) -> None:
    vm = scene.vm("a", state="Running")
    scene.apply()
    loop = Watch(host, scene)
    try:
        loop.wait(lambda: loop.logged("reconciled"), 120, "the first pass")
        subprocess.run([LIBVIRTD, "stop"], check=True, timeout=120)
        loop.wait(lambda: loop.logged("host connection lost"), 30, "the close noticed")
        loop.wait(lambda: loop.status().get("host_error"), 60, "status: unreachable")
        subprocess.run([LIBVIRTD, "start"], check=True, timeout=300)
        loop.wait(
            lambda: loop.logged("host connection back; events subscribed again"),
            120,
            "events subscribed again",
        )
        moment = time.time()
        host.domain(vm).destroy()  # virsh destroy, after the restart
        loop.wait(lambda: host.domain(vm).isActive(), 60, "the guest healed")
        loop.wait(lambda: loop.healed_after(moment), 60, "status: reachable, heal recorded")
    finally:
        code = loop.stop()
    assert code == 0, loop.describe()
    assert not any("Traceback" in line for line in loop.lines), loop.describe()


def test_a_loop_started_while_libvirtd_is_down_subscribes_once_it_answers(
    host: Host, scene: Scene, owned_libvirtd: None
) -> None:
    vm = scene.vm("a", state="Running")
    scene.apply()
    subprocess.run([LIBVIRTD, "stop"], check=True, timeout=120)
    loop = Watch(host, scene)
    try:
        loop.wait(
            lambda: loop.logged("host unreachable; host events are subscribed once it answers"),
            60,
            "the unreachable host said",
        )
        subprocess.run([LIBVIRTD, "start"], check=True, timeout=300)
        # The backoff of the failed passes (1 s, 2 s, 4 s ...) brings a pass that reaches it.
        loop.wait(lambda: loop.logged("host events subscribed"), 180, "events subscribed")
        moment = time.time()
        host.domain(vm).destroy()
        loop.wait(lambda: host.domain(vm).isActive(), 60, "the guest healed")
        loop.wait(lambda: loop.healed_after(moment), 60, "status: reachable, heal recorded")
    finally:
        code = loop.stop()
    assert code == 0, loop.describe()
    assert not any("Traceback" in line for line in loop.lines), loop.describe()
