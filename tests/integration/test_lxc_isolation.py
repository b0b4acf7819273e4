"""What isolation a container from a built (systemd) template has under libvirt 9.0's LXC
driver on this machine, and that recon reports it truthfully.

libvirt gives the container no cgroup namespace (its processes see the host's cgroup tree,
writable), and a systemd inside moves itself out of the cgroup that carries the container's
memory limit and guarantee. recon can not change that through libvirt here (no XML for a
cgroup namespace; `<idmap>` user namespaces fail to start, see docs/real-hosts.md), so it
must not report such a guarantee as held."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.integration.conftest import Host, Scene
from tests.integration.test_lxc import apply_or_skip
from tests.integration.test_templates import built_template


def _memory_group(pid: int) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return path
    return ""


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            kids = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        out += [int(k) for k in kids]
        todo += [int(k) for k in kids]
    return out


def test_a_systemd_containers_guarantee_is_not_reported_held_when_it_left_its_cgroup(
    host: Host, scene: Scene, example_templates: None, lxc: Any
) -> None:
    pool = scene.pool()
    template = built_template(scene, "debian-12-minimal")
    name = scene.put(
        "Container",
        "ct",
        {
            "template": template,
            "cpus": 1,
            "memory": "256Mi",
            "memoryGuarantee": "50%",
            "disk": {"pool": pool, "size": "1Gi"},
        },
    )
    apply_or_skip(scene)
    dom = lxc.lookupByName(name)
    assert dom.isActive(), (
        f"the container stopped after its start: {dom.state()}\n"
        + Path(f"/var/log/libvirt/lxc/{name}.log").read_text()[-2000:]
    )
    controller = int(Path(f"/run/libvirt/lxc/{name}.pid").read_text())
    own = _memory_group(controller)
    # Wait for the container's systemd to have set itself up (it moves itself early).
    deadline = time.monotonic() + 60
    outside: list[tuple[int, str]] = []
    while time.monotonic() < deadline:
        outside = [
            (p, _memory_group(p)) for p in _descendants(controller) if _memory_group(p) != own
        ]
        if outside:
            break
        time.sleep(1)
    assert outside, f"every process of the container stayed in {own}: the claim would hold"
    shown = json.loads(scene.recon.ok("get", "container", name, "-o", "json").stdout)
    guarantee = shown["status"]["guarantee"]
    assert guarantee["held"] is False, guarantee
    assert "outside its memory cgroup" in guarantee["heldBy"], guarantee
    wide = scene.recon.ok("get", "-o", "wide").stdout
    assert "cgroup-v1 soft limit" not in next(
        line for line in wide.splitlines() if f" {name} " in line
    )
