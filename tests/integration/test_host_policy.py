"""HostPolicy KSM on a real QEMU host: libvirt's node memory parameters for the scanner, and
/sys/kernel/mm/ksm/run for on/off. The host's values are put back afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import output
from tests.integration.conftest import Host, Scene

KSM_RUN = Path("/sys/kernel/mm/ksm/run")


@pytest.fixture
def ksm(host: Host, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The host's KSM settings now; restored when the test ends, whatever it did. recon's
    record of what the host had (`RECON_HOST_RECORD`) is the test's own: `record`."""
    try:
        params = host.conn.getMemoryParameters(0)
    except Exception as exc:  # libvirtError; a host without KSM is a skip, not a failure
        pytest.skip(f"this host has no KSM parameters: {exc}")
    if "shm_pages_to_scan" not in params or not KSM_RUN.exists():
        pytest.skip("this host has no KSM")
    run = KSM_RUN.read_text().strip()
    original = {k: params[k] for k in ("shm_pages_to_scan", "shm_sleep_millisecs") if k in params}
    yield {"run": run, "record": tmp_path / "host-policy.json", **original}
    host.conn.setMemoryParameters(original, 0)
    if os.geteuid() == 0 and KSM_RUN.read_text().strip() != run:
        KSM_RUN.write_text(run + "\n")


def test_ksm_pages_to_scan_is_applied_and_read_back(
    host: Host, scene: Scene, ksm: dict[str, Any]
) -> None:
    before = int(ksm["shm_pages_to_scan"])
    wanted = before + 17 if before < 90000 else before - 17
    enabled = ksm["run"] == "1"
    scene.put(
        "HostPolicy",
        "policy",
        {"ksm": {"enabled": enabled, "pagesToScan": wanted, "sleepMillisecs": 30}},
    )
    env = {"RECON_HOST_RECORD": str(ksm["record"])}
    plan = scene.recon("diff", *scene.files, env=env)
    assert plan.returncode == 1, output(plan)
    assert f"ksm.pagesToScan: {before} -> {wanted}  (live)" in plan.stdout
    result = scene.recon.ok("apply", *scene.files, env=env)
    assert f"pagesToScan {before} -> {wanted}" in result.stderr
    params = host.conn.getMemoryParameters(0)
    assert params["shm_pages_to_scan"] == wanted
    assert params["shm_sleep_millisecs"] == 30
    assert (KSM_RUN.read_text().strip() == "1") is enabled
    assert scene.recon("diff", *scene.files, env=env).returncode == 0


def test_ksm_switched_on_is_shown_host_wide_recorded_and_put_back_by_delete(
    host: Host, scene: Scene, ksm: dict[str, Any]
) -> None:
    if os.geteuid() != 0:
        pytest.skip("switching KSM needs root")
    KSM_RUN.write_text("0\n")  # KSM off, as a host that never ran it has it
    before = int(ksm["shm_pages_to_scan"])
    wanted = before + 17 if before < 90000 else before - 17
    policy = scene.put("HostPolicy", "policy", {"ksm": {"enabled": True, "pagesToScan": wanted}})
    record = ksm["record"]
    env = {"RECON_HOST_RECORD": str(record)}

    plan = scene.recon("diff", *scene.files, env=env)
    assert plan.returncode == 1, output(plan)
    assert "ksm.enabled: false -> true  (live)" in plan.stdout
    assert "note: host-wide: /sys/kernel/mm/ksm/run 0 -> 1" in plan.stdout
    assert "every guest on this host" in plan.stdout

    scene.recon.ok("apply", *scene.files, env=env)
    assert KSM_RUN.read_text().strip() == "1"
    assert record.exists(), "what the host had before was not recorded"

    path = scene.manifest_dir / f"HostPolicy-{policy}.yaml"
    deleted = scene.recon("delete", "-f", path, env=env)
    assert deleted.returncode == 0, output(deleted)
    assert "restored" in deleted.stderr, output(deleted)
    assert KSM_RUN.read_text().strip() == "0"
    assert host.conn.getMemoryParameters(0)["shm_pages_to_scan"] == before
    assert not record.exists()

    again = scene.recon("delete", "-f", path, env=env)
    assert "not on the host" in again.stderr, output(again)
    assert KSM_RUN.read_text().strip() == "0"
