"""Restart-class changes under the loop: refused by default (the guest keeps running, the
status says what would change and how to allow it), allowed per resource by annotation or for
all by --allow-restart. Live changes in the same pass go through."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Recon, edit
from tests.control.conftest import EXAMPLES, StartLoop, condition, obj, resource, settled
from tests.control.test_host_drift import annotate

WEB = "VirtualMachine/web-1"
DB = "VirtualMachine/db-1"
BOOT = ("  bootOrder: [disk, network]\n", "  bootOrder: [network, disk]\n")


def boot_order(recon: Recon) -> object:
    found = obj(recon, WEB)
    return None if found is None else found["fields"].get("bootOrder")


def test_a_restart_is_refused_by_default_shown_and_allowed_by_annotation(
    recon: Recon, manifests: Path, start_loop: StartLoop
) -> None:
    loop = start_loop("watch", "-f", manifests, "--resync", "600")
    loop.wait_status(lambda s: settled(s, EXAMPLES))

    edit(manifests / "vms" / "web-1.yaml", *BOOT)  # restart class
    edit(manifests / "vms" / "web-1.yaml", "  cpus: 2\n", "  cpus: 3\n")  # live, same guest
    status = loop.wait_status(lambda s: condition(s, WEB) == "Stalled")
    entry = resource(status, WEB)
    assert entry["reason"] == "NeedsRestart"
    assert "bootOrder" in entry["last_error"] and "--allow-restart" in entry["last_error"]
    assert "recon.dev/allow-restart" in entry["last_error"]
    assert status["runs"][-1]["result"] in ("applied", "no changes")  # not a failure to retry
    found = obj(recon, WEB)
    assert found is not None
    assert found["running"] and found["fields"]["bootOrder"] == ["disk", "network"]
    assert found["fields"]["cpus"] == 2  # the whole change waits, its live part too
    loop.wait_log("not applied: the change restarts the guest")

    # Taken back: nothing to refuse any more, the guest is Ready again.
    edit(manifests / "vms" / "web-1.yaml", BOOT[1], BOOT[0])
    edit(manifests / "vms" / "web-1.yaml", "  cpus: 3\n", "  cpus: 2\n")
    loop.wait_status(lambda s: condition(s, WEB) == "Ready")

    edit(manifests / "vms" / "web-1.yaml", *BOOT)
    edit(manifests / "vms" / "web-1.yaml", "  cpus: 2\n", "  cpus: 3\n")
    annotate(manifests / "vms" / "web-1.yaml", {"recon.dev/allow-restart": "true"})
    loop.wait_host(lambda: boot_order(recon) == ["network", "disk"])
    status = loop.wait_status(lambda s: condition(s, WEB) == "Ready")
    found = obj(recon, WEB)
    assert found is not None and found["running"] and found["fields"]["cpus"] == 3
    assert loop.stop() == 0


def test_allow_restart_lets_the_loop_restart_any_guest(
    recon: Recon, manifests: Path, start_loop: StartLoop
) -> None:
    loop = start_loop("watch", "-f", manifests, "--resync", "600", "--allow-restart")
    loop.wait_status(lambda s: settled(s, EXAMPLES))
    # db-1 has no maxCpus: more vCPUs need a restart.
    edit(manifests / "vms" / "db-1.yaml", "  cpus: 2\n", "  cpus: 3\n")
    loop.wait_host(lambda: (found := obj(recon, DB)) is not None and found["fields"]["cpus"] == 3)
    loop.wait_status(lambda s: condition(s, DB) == "Ready")
    assert loop.stop() == 0
