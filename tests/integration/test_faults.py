"""Faults on a real host: libvirtd dies in the middle of an apply.

recon must report a clean failure (no traceback), must not go on to prune, and once libvirtd
is back (`scripts/libvirtd start`) a rerun must converge. The daemon is killed only when this
test run started it (scripts/test says so with RECON_LIBVIRTD_OWNED=1): a daemon that was
running before may have other users.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import BUILD_ENV, RECON, ROOT
from tests.integration.conftest import Host, Scene, free_subnet

RUN = Path(os.environ.get("RECON_LIBVIRT_RUN", "/run/recon-libvirt"))


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def owned_libvirtd(host: Host) -> int:
    if os.environ.get("RECON_LIBVIRTD_OWNED") != "1":
        pytest.skip(
            "kills libvirtd, so it runs only on a daemon this test run started "
            "(RECON_LIBVIRTD_OWNED=1, which ./scripts/test sets when it starts libvirtd itself); "
            "this one was running before"
        )
    return int((RUN / "libvirtd.pid").read_text().strip())


def test_libvirtd_killed_during_an_apply_fails_cleanly_and_a_rerun_converges(
    host: Host, scene: Scene, owned_libvirtd: int, tmp_path: Path
) -> None:
    subnet = free_subnet()
    doomed = scene.put(
        "Network", "doomed", {"mode": "isolated", "ipv4": {"address": f"{subnet}.1/24"}}
    )
    first = scene.vm("a", bootOrder=["disk"])
    scene.apply()
    # Next: the network leaves the manifests (a prune), VM a needs a restart (a slow step:
    # its firmware ignores the ACPI shutdown for the whole timeout) and VM b is new.
    del scene.documents[f"Network/{doomed}"]
    scene.spec("VirtualMachine", first)["bootOrder"] = ["network", "disk"]
    second = scene.vm("b")
    log = tmp_path / "failpoints.log"
    args = ["apply", *scene.files, "--prune", "--shutdown-timeout", "30"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
    env.update(RECON_HOME=str(scene.recon.home), RECON_FAILPOINT_LOG=str(log), NO_COLOR="1")
    env.update(BUILD_ENV)
    apply = subprocess.Popen(
        [RECON, "--connect", host.uri, *map(str, args)],
        cwd=scene.work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: log.exists() and f"before update VirtualMachine/{first}" in log.read_text(),
            60,
            "the apply to reach VM a",
        )
        time.sleep(1.0)  # inside the shutdown wait
        os.kill(owned_libvirtd, signal.SIGKILL)
        stdout, stderr = apply.communicate(timeout=60)
    finally:
        if apply.poll() is None:
            apply.kill()
        # Back for whatever comes next, also when an assertion below fails.
        subprocess.run([str(ROOT / "scripts" / "libvirtd"), "start"], check=True, timeout=300)
    text = stdout + stderr
    assert apply.returncode == 1, text
    assert "Traceback" not in text
    assert f"failed: VirtualMachine/{first} (update)" in stdout, text
    assert "connection to libvirtd was lost" in stdout, text
    assert f"not attempted: VirtualMachine/{second}, Network/{doomed}" in stdout, text
    crossed = log.read_text()
    assert f"delete Network/{doomed}" not in crossed  # no prune after the failure

    net = host.conn.networkLookupByName(doomed)  # still there: nothing was pruned
    assert net.isActive()

    rerun = scene.apply("--prune", "--shutdown-timeout", "2")
    assert "forced off, restarted" in rerun.stderr  # the restart the kill cut short
    scene.converged("--prune")
    assert host.domain(first).isActive() and host.domain(second).isActive()
    assert doomed not in [n.name() for n in host.conn.listAllNetworks(0)]
