"""The README's main command against a real host: `./scripts/demo --connect qemu:///system`
(or lxc:///system) picks the examples that driver can run (QEMU the VMs, LXC the container,
both with the pool, network, templates and host policy), so that the plan is one the host can
take. Run with --plan: validate and diff only, since the examples' own names (pool `default`,
network `lan`) and KSM are the host's, shared with whoever else uses this libvirtd."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import libvirt
import pytest

from tests.conftest import BUILD_ENV, ROOT, output
from tests.integration.conftest import Host, lxc_uri


def demo(uri: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
    env.update(BUILD_ENV, RECON_HOME=str(home), NO_COLOR="1")
    return subprocess.run(
        [str(ROOT / "scripts" / "demo"), "--plan", "--connect", uri],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.mark.parametrize("driver", ["qemu", "lxc"])
def test_the_demo_plans_the_examples_its_driver_can_run(
    host: Host, tmp_path: Path, driver: str
) -> None:
    uri = host.uri if driver == "qemu" else lxc_uri(host.uri)
    if driver == "lxc":
        try:
            libvirt.open(uri).close()
        except libvirt.libvirtError as exc:
            pytest.skip(f"no LXC driver at {uri}: {exc.get_error_message()}")
    result = demo(uri, tmp_path / "home")
    text = output(result)
    assert result.returncode == 0, text
    assert "error:" not in text
    assert "not supported by the" not in text
    assert "Plan:" in result.stdout
    shared = ("StoragePool/default", "Network/lan", "Template/debian-12-base")
    guests = (
        ("VirtualMachine/web-1", "VirtualMachine/db-1")
        if driver == "qemu"
        else ("Container/cache-1",)
    )
    other = "Container/cache-1" if driver == "qemu" else "VirtualMachine/web-1"
    for ref in (*shared, *guests):
        assert ref in result.stdout, ref
    assert other not in result.stdout
