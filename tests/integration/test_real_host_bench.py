"""The real-host benchmark (bench/real_host.py) at a small size: it runs end to end on the real
libvirtd (containers from the built template, a VM, the no-op diff, the drift heal) and cleans
up after itself. The full run (100 containers) is a documented command; no time is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import libvirt
import pytest

from tests.conftest import BUILD_ENV, ROOT
from tests.integration.conftest import Host, lxc_uri


def test_the_real_host_bench_runs_and_leaves_nothing(
    host: Host, example_templates: None, lxc: Any, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "real_host.py"),
            "--containers",
            "2",
            "--vms",
            "1",
            "--repeat",
            "1",
            "--trials",
            "1",
            "--uri",
            host.uri,
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, **BUILD_ENV},
        check=False,
    )
    if done.returncode != 0 and "cgroup" in done.stderr:
        pytest.skip(f"the LXC driver cannot start containers here: {done.stderr[-500:]}")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["containers"] == 2 and result["vms"] == 1
    # Both sides healed the destroyed container, and every no-op diff said so (exit 0).
    assert len(result["heal_s"]) == len(result["floor_heal_s"]) == 1
    assert len(result["diff_s"]) == 1
    assert result["bench_domains"] == 4  # recon's two and the floor's two, before the clean-up
    conn = libvirt.open(lxc_uri(host.uri))
    try:
        left = [d.name() for d in conn.listAllDomains(0) if d.name().startswith("rhb")]
    finally:
        conn.close()
    assert not left, left
