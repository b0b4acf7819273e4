"""`recon watch`, end to end: a real subprocess, real file events in a temporary directory, the
embedded host, and `recon status` / `recon get` read as a user would."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, OtherTool, Recon, edit
from tests.control.conftest import (
    EXAMPLES,
    StartLoop,
    condition,
    host_lock,
    obj,
    operator,
    resource,
    settled,
)

WEB = "VirtualMachine/web-1"
DB = "VirtualMachine/db-1"
CACHE = "Container/cache-1"


def cpus(recon: Recon, ref: str) -> int | None:
    found = obj(recon, ref)
    return None if found is None else found["fields"].get("cpus")


def errors_mention(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda s: any(text in e for e in s["errors"])


def test_edits_are_applied_a_broken_file_keeps_its_last_good_and_a_fix_is_applied(
    recon: Recon, manifests: Path, start_loop: StartLoop
) -> None:
    loop = start_loop("watch", "-f", manifests, "--prune", "--resync", "600")
    status = loop.wait_status(lambda s: settled(s, EXAMPLES))
    assert status["source"] == f"files: {manifests}"
    assert set(recon.objects()) == set(EXAMPLES) - {"HostPolicy/host"}

    web = manifests / "vms" / "web-1.yaml"
    edit(web, "  cpus: 2\n", "  cpus: 3\n")
    loop.wait_host(lambda: cpus(recon, WEB) == 3)

    # An editor half way through a save: the file does not parse.
    edit(web, "  cpus: 3\n", "  cpus: [4\n")
    status = loop.wait_status(errors_mention("web-1.yaml"))
    assert cpus(recon, WEB) == 3  # the last good version stands, nothing was deleted
    assert condition(status, WEB) == "Ready"
    loop.wait_log("keeping the last good version")
    shown = recon.ok("status")
    assert "web-1.yaml" in shown.stderr
    assert "Ready" in shown.stdout

    edit(web, "  cpus: [4\n", "  cpus: 4\n")
    loop.wait_host(lambda: cpus(recon, WEB) == 4)
    status = loop.wait_status(lambda s: s["errors"] == [] and settled(s, EXAMPLES))
    assert all(run["duration"] >= 0 for run in status["runs"])
    assert status["runs"][0]["result"] == "applied"
    assert loop.stop() == 0


def test_an_empty_or_truncated_file_never_deletes_anything(
    recon: Recon, applied: Path, start_loop: StartLoop
) -> None:
    loop = start_loop("watch", "-f", applied, "--prune", "--resync", "600")
    loop.wait_status(lambda s: settled(s, EXAMPLES))

    cache = applied / "containers" / "cache-1.yaml"
    cache.write_text("")
    loop.wait_status(errors_mention("containers/cache-1.yaml"))
    templates = applied / "templates.yaml"
    original_templates = templates.read_text()
    templates.write_text(original_templates[: len(original_templates) // 3])
    status = loop.wait_status(errors_mention("templates.yaml"))
    assert status["runs"][-1]["result"] in ("applied", "no changes")
    assert set(recon.objects()) == set(EXAMPLES) - {"HostPolicy/host"}
    assert loop.stop() == 0

    # A restart while the file is still empty: no last good version is known, so its
    # resources are unknown and nothing may be pruned on this pass.
    restarted = time.time()
    again = start_loop("watch", "-f", applied, "--prune", "--resync", "600")
    status = again.wait_pass_after(restarted)
    assert any("cache-1.yaml" in e for e in status["errors"])
    assert any(run["started"] < restarted for run in status["runs"])  # kept across restarts
    assert CACHE in recon.objects()

    cache.write_text((ROOT / "manifests" / "containers" / "cache-1.yaml").read_text())
    templates.write_text(original_templates)
    again.wait_status(lambda s: s["errors"] == [] and settled(s, EXAMPLES))
    assert set(recon.objects()) == set(EXAMPLES) - {"HostPolicy/host"}
    assert again.stop() == 0


def test_a_deleted_manifest_is_pruned(recon: Recon, manifests: Path, start_loop: StartLoop) -> None:
    loop = start_loop("watch", "-f", manifests, "--prune", "--resync", "600")
    loop.wait_status(lambda s: settled(s, EXAMPLES))
    (manifests / "containers" / "cache-1.yaml").unlink()
    loop.wait_host(lambda: CACHE not in recon.objects())
    status = loop.wait_status(lambda s: settled(s))
    assert CACHE not in status["resources"]
    assert {WEB, DB} <= set(recon.objects())  # nothing else went with it
    assert loop.stop() == 0


def test_without_prune_a_deleted_manifest_leaves_the_object_and_is_no_longer_reported(
    recon: Recon, manifests: Path, start_loop: StartLoop
) -> None:
    loop = start_loop("watch", "-f", manifests, "--resync", "600")
    loop.wait_status(lambda s: settled(s, EXAMPLES))
    (manifests / "containers" / "cache-1.yaml").unlink()
    # The loop no longer manages it: the object stays, its status entry goes.
    loop.wait_status(lambda s: CACHE not in s["resources"] and settled(s))
    assert CACHE in recon.objects()
    assert loop.stop() == 0


def test_a_change_that_needs_a_replace_is_parked_as_stalled_the_rest_is_applied(
    recon: Recon, manifests: Path, start_loop: StartLoop
) -> None:
    # db-1's new vCPU needs a restart (it has no maxCpus): allowed here.
    loop = start_loop("watch", "-f", manifests, "--resync", "600", "--allow-restart")
    loop.wait_status(lambda s: settled(s, EXAMPLES))
    before = obj(recon, WEB)
    assert before is not None
    edit(
        manifests / "vms" / "web-1.yaml",
        "  cpus: 2\n",
        "  uuid: 0d1e5a4e-1111-4222-8333-0123456789ab\n  cpus: 2\n",
    )
    edit(manifests / "vms" / "db-1.yaml", "  cpus: 2\n", "  cpus: 3\n")
    status = loop.wait_status(lambda s: condition(s, WEB) == "Stalled")
    assert resource(status, WEB)["reason"] == "NeedsReplace"
    assert "--allow-replace" in resource(status, WEB)["last_error"]
    loop.wait_host(lambda: cpus(recon, DB) == 3)
    after = obj(recon, WEB)
    assert after is not None and after["uuid"] == before["uuid"]
    assert loop.stop() == 0


def test_an_object_recon_does_not_own_stalls_the_plan_until_the_conflict_is_gone(
    recon: Recon, manifests: Path, start_loop: StartLoop, other_tool: OtherTool
) -> None:
    loop = start_loop("watch", "-f", manifests, "--resync", "600")
    loop.wait_status(lambda s: settled(s, EXAMPLES))
    with operator(recon, other_tool) as conn:
        conn.defineXML(
            "<domain type='test'><name>app-1</name><memory unit='MiB'>256</memory>"
            "<vcpu>1</vcpu><os><type>hvm</type></os></domain>"
        )
    app = manifests / "vms" / "app-1.yaml"
    app.write_text(
        "apiVersion: reconciler/v1\nkind: VirtualMachine\nmetadata:\n  name: app-1\n"
        "spec:\n  cpus: 1\n  memory: 256Mi\n  state: Stopped\n"
    )
    status = loop.wait_status(lambda s: condition(s, "VirtualMachine/app-1") == "Stalled")
    entry = resource(status, "VirtualMachine/app-1")
    assert entry["reason"] == "PlanRefused"
    assert "not created by recon" in entry["last_error"]
    assert status["runs"][-1]["result"] == "refused"
    managed = obj(recon, "VirtualMachine/app-1")
    assert managed is not None and not managed["managed"]  # left untouched

    app.unlink()
    status = loop.wait_status(lambda s: settled(s, EXAMPLES))
    assert "VirtualMachine/app-1" not in status["resources"]
    assert loop.stop() == 0


def test_a_temporary_failure_is_retried_until_it_succeeds(
    recon: Recon, manifests: Path, start_loop: StartLoop
) -> None:
    loop = start_loop("watch", "-f", manifests, "--resync", "600")
    loop.wait_status(lambda s: settled(s, EXAMPLES))
    # Another recon holds the host: every pass fails with a temporary error and backs off.
    with host_lock(recon):
        edit(manifests / "vms" / "web-1.yaml", "  cpus: 2\n", "  cpus: 3\n")
        status = loop.wait_status(lambda s: any(r["result"] == "failed" for r in s["runs"]))
        failed = [r for r in status["runs"] if r["result"] == "failed"]
        assert "another recon" in failed[-1]["error"]
        assert "another recon" in recon.ok("status").stderr  # the text view says why too
        assert cpus(recon, WEB) == 2
    loop.wait_host(lambda: cpus(recon, WEB) == 3)
    assert loop.stop(signal.SIGINT) == 0
