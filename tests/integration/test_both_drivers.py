"""One host, two drivers: QEMU guests and LXC containers share its RAM, so memory-guarantee
admission through qemu:///system counts the containers of lxc:///system too (read-only), and
`get -o wide` says what it counted."""

from __future__ import annotations

from typing import Any

from tests.conftest import output
from tests.integration.conftest import Host, HostRecon, Scene
from tests.integration.test_lxc import apply_or_skip, container_scene


def test_admission_through_qemu_counts_the_containers_of_lxc(
    host: Host, scene: Scene, lxc: Any
) -> None:
    container = container_scene(scene, memoryGuarantee="50%")  # 64Mi promised
    apply_or_skip(scene)
    assert lxc.lookupByName(container).isActive()
    # The QEMU side of the same host: the VM's manifests (the pool and template stay).
    del scene.documents[f"Container/{container}"]
    vm = scene.vm(memory="128Mi", memoryGuarantee="50%")
    scene.recon = HostRecon(scene.recon.home, scene.work, host.uri)
    scene.apply()

    wide = scene.recon.ok("get", "-o", "wide").stdout
    counted = next(line for line in wide.splitlines() if "lxc:///system" in line)
    assert f"Container/{container}" in counted, wide
    assert "64Mi" in counted, counted

    # A reserve that leaves no room: the refusal lists who holds what, the container too.
    total_kib = host.conn.getMemoryStats(-1, 0)["total"]
    scene.put("HostPolicy", "policy", {"memoryReserve": f"{total_kib - 1024}Ki"})
    refused = scene.diff()
    assert refused.returncode == 2, output(refused)
    assert f"Container/{container} (lxc:///system)" in refused.stderr, output(refused)
    assert f"VirtualMachine/{vm}" in refused.stderr
