"""Two loops fighting over one resource: the same RECON_HOME and --set, different manifests.
Each pass of one undoes the other's; recon notices the flip, says so, and stops fighting."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import OtherTool, Recon, edit
from tests.control.conftest import EXAMPLES, StartLoop, settled, wait_until

WEB = "VirtualMachine/web-1"


def test_two_loops_fighting_over_a_guest_stop_and_say_so(
    recon: Recon, manifests: Path, start_loop: StartLoop, tmp_path: Path, other_tool: OtherTool
) -> None:
    first = start_loop("watch", "-f", manifests, "--resync", "600")
    first.wait_status(lambda s: settled(s, EXAMPLES))
    # A second loop, on the same host and set, wants web-1 without autostart.
    other = tmp_path / "other"
    shutil.copytree(manifests, other)
    edit(other / "vms" / "web-1.yaml", "  autostart: true\n", "  autostart: false\n")
    second = start_loop("watch", "-f", other, "--resync", "600")
    # Each undoes the other a few times, then the one that finds its change undone again
    # holds back, saying why (the other then finds the host as it wants it).
    line = first.wait_log("another writer keeps changing it back", timeout=60)
    assert WEB in line and "autostart" in line
    first.wait_status(lambda s: "Conflict" in str(s["resources"].get(WEB)))

    def updates() -> list[int]:
        return [sum(f"{WEB}: update" in x for x in loop.lines) for loop in (first, second)]

    # And the fight is over: woken by a change to the host, each loop runs a pass that
    # leaves web-1 alone.
    before = updates()
    marks = [len(loop.lines) for loop in (first, second)]
    with other_tool(recon.host_xml) as conn:
        conn.defineXML(
            "<domain type='test'><name>bystander</name><memory>262144</memory>"
            "<os><type>hvm</type></os></domain>"
        )
    for loop, mark in zip((first, second), marks, strict=True):
        wait_until(lambda lp=loop, m=mark: any("reconciled" in x for x in lp.lines[m:]), 60)
    assert updates() == before, first.describe() + second.describe()
    assert first.stop() == 0 and second.stop() == 0
