"""`recon apply` killed (SIGKILL) in the middle of a restart-class change on a real libvirtd.

A restart redefines the guest, shuts it down (clean, then forced after --shutdown-timeout) and
starts it again. Killed anywhere in that, the rerun must end with the guest Running: a guest
left stopped, with the change already in its saved definition, is not "in sync" with a manifest
whose guest should run (`state` defaults to Running, and is compared even where the manifest
leaves it out). libvirtd itself is never touched here (others use it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import libvirt
import pytest

from tests.conftest import BUILD_ENV, RECON, output
from tests.integration.conftest import Host, Scene

KILLED = 137
INACTIVE = libvirt.VIR_DOMAIN_XML_INACTIVE


def boots(host: Host, name: str, flags: int = 0) -> list[str | None]:
    return [b.get("dev") for b in ET.fromstring(host.domain(name).XMLDesc(flags)).iter("boot")]


def start_apply(scene: Scene, log: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
    env.update(RECON_HOME=str(scene.recon.home), RECON_FAILPOINT_LOG=str(log), NO_COLOR="1")
    env.update(BUILD_ENV)
    return subprocess.Popen(
        [RECON, "--connect", scene.host.uri, "apply", *scene.files, *args],
        cwd=scene.work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def restart_pending(scene: Scene, name: str) -> None:
    scene.spec("VirtualMachine", name)["bootOrder"] = ["network", "disk"]
    scene.write()


def rerun_ends_running(host: Host, scene: Scene, name: str) -> None:
    pending = scene.diff()
    assert pending.returncode == 1, f"the stopped guest was taken as in sync:\n{output(pending)}"
    assert "state: Stopped -> Running" in pending.stdout, output(pending)
    scene.apply("--shutdown-timeout", "2")
    assert host.domain(name).isActive(), "the rerun left the guest stopped"
    assert boots(host, name) == ["network", "hd"]
    scene.converged()


@pytest.mark.parametrize("guest_stops", ["forced off", "shut down by itself"])
def test_killed_while_the_guest_is_being_stopped_the_rerun_starts_it(
    host: Host, scene: Scene, tmp_path: Path, guest_stops: str
) -> None:
    name = scene.vm()  # no `state`: Running by default
    scene.apply()
    restart_pending(scene, name)
    log = tmp_path / "failpoints.log"
    apply = start_apply(scene, log, "--shutdown-timeout", "30")
    try:
        wait_for(
            lambda: log.exists() and f"before update VirtualMachine/{name}" in log.read_text(),
            60,
            "the apply to reach the VM",
        )
        # Inside the shutdown wait: the definition already carries the new boot order.
        wait_for(lambda: boots(host, name, INACTIVE) == ["network", "hd"], 30, "the redefinition")
        time.sleep(0.5)
        if guest_stops == "forced off":
            # recon's forced off done, recon killed before it could start the guest again.
            apply.send_signal(signal.SIGSTOP)
            host.domain(name).destroy()
            apply.kill()
        else:
            # recon killed; the guest then finishes the shutdown it was asked for.
            apply.kill()
            apply.wait(30)
            host.domain(name).shutdown()
            host.domain(name).destroy()
        apply.communicate(timeout=30)
    finally:
        if apply.poll() is None:
            apply.kill()
    assert apply.returncode == -signal.SIGKILL
    assert not host.domain(name).isActive()
    rerun_ends_running(host, scene, name)


def test_a_restart_killed_at_any_step_is_finished_by_the_next_run(
    host: Host, scene: Scene, tmp_path: Path
) -> None:
    first = scene.vm("a")
    second = scene.vm("b", state="Running")
    scene.apply()
    for name in (first, second):
        restart_pending(scene, name)
    log = tmp_path / "count.log"
    steps: list[str] = []
    for k in range(1, 10):
        killed = scene.recon(
            "apply",
            *scene.files,
            "--shutdown-timeout",
            "1",
            env={"RECON_KILL_AT": str(k), "RECON_FAILPOINT_LOG": str(log)},
        )
        steps = [line.split(" ", 1)[1] for line in log.read_text().splitlines()]
        log.unlink()
        if killed.returncode == 0:
            break  # every failpoint passed: nothing left to kill
        assert killed.returncode == KILLED, output(killed)
        rerun = scene.recon("apply", *scene.files, "--shutdown-timeout", "1")
        assert rerun.returncode == 0, f"killed at {k} ({steps[-1]}):\n{output(rerun)}"
        for name in (first, second):
            assert host.domain(name).isActive(), f"killed at {k} ({steps[-1]}): {name} stopped"
            assert boots(host, name) == ["network", "hd"]
        scene.converged()
        # Back to the old boot order on the host, for the next kill to cut a restart again.
        for name in (first, second):
            scene.spec("VirtualMachine", name)["bootOrder"] = ["disk"]
        scene.write()
        scene.apply("--shutdown-timeout", "1")
        for name in (first, second):
            restart_pending(scene, name)
    assert k == 5, steps  # killed before and after each of the two restarts, then none
