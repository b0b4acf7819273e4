"""`recon watch/sync --export-state FILE`: after each pass the loop publishes the host as the
pass left it, for pipelines that plan without reaching the host (`diff --host-state`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import Recon, edit
from tests.control.conftest import EXAMPLES, GitRepo, StartLoop, settled, wait_until

WEB = "VirtualMachine/web-1"


def read_export(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


def web_cpus(data: dict[str, Any] | None) -> int | None:
    if data is None:
        return None
    web = next((o for o in data["objects"] if f"{o['kind']}/{o['name']}" == WEB), None)
    return None if web is None else web["fields"].get("cpus")


def test_watch_exports_the_host_as_each_pass_leaves_it(
    recon: Recon, manifests: Path, start_loop: StartLoop, tmp_path: Path
) -> None:
    state = tmp_path / "published" / "host-state.json"
    state.parent.mkdir()
    loop = start_loop("watch", "-f", manifests, "--resync", "600", "--export-state", state)
    loop.wait_status(lambda s: settled(s, EXAMPLES))
    # The first pass created everything: the export is the host after it, not before.
    data = wait_until(lambda: read_export(state) if web_cpus(read_export(state)) else None)
    assert data["fingerprint"] == json.loads(recon.ok("observe").stdout)["fingerprint"]
    assert recon("diff", "-f", manifests, "--host-state", state).returncode == 0

    edit(manifests / "vms" / "web-1.yaml", "  cpus: 2\n", "  cpus: 3\n")
    wait_until(lambda: web_cpus(read_export(state)) == 3, describe=loop.describe)
    assert recon("diff", "-f", manifests, "--host-state", state).returncode == 0
    # Written by rename: no temporary file is left beside it.
    assert [p.name for p in state.parent.iterdir()] == ["host-state.json"]
    assert loop.stop() == 0


def test_sync_exports_the_host_after_a_pass(
    recon: Recon, repo: GitRepo, start_loop: StartLoop, tmp_path: Path
) -> None:
    repo.commit_and_push("node-1: the examples")
    state = tmp_path / "host-state.json"
    loop = start_loop(
        "sync",
        "--repo",
        repo.url,
        "--path",
        "node-1",
        "--resync",
        "600",
        "--export-state",
        state,
    )
    loop.wait_status(lambda s: settled(s, EXAMPLES))
    wait_until(lambda: web_cpus(read_export(state)) == 2, describe=loop.describe)
    assert recon("diff", "-f", repo.node, "--host-state", state).returncode == 0
    assert loop.stop() == 0


def test_an_export_that_cannot_be_written_is_logged_and_the_loop_goes_on(
    recon: Recon, manifests: Path, start_loop: StartLoop, tmp_path: Path
) -> None:
    state = tmp_path / "no-such-directory" / "host-state.json"
    loop = start_loop("watch", "-f", manifests, "--resync", "600", "--export-state", state)
    loop.wait_status(lambda s: settled(s, EXAMPLES))
    loop.wait_log("cannot export the host state")
    assert loop.proc.poll() is None
    assert loop.stop() == 0
