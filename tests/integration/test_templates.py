"""Templates recon builds from a package list, on the real libvirtd: a container template that
boots systemd under LXC, a VM template that boots to its guest agent under QEMU, the same
spec built twice to the same digest, and a rebuild that leaves a guest's image alone.

The specs are the examples' (manifests/templates.yaml), so the builds come from the run's
shared cache (tests/conftest.py's BUILD_ENV) once the example templates are built.

Real-OS VMs boot under TCG (`virtualization: qemu`) unless RECON_IT_VIRT says kvm: this kind
of machine is itself a VM, and KVM here stops or crawls on a real OS (docs/real-hosts.md).
The terminal summary says which one they booted with.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import libvirt
import pytest
import yaml

from tests.conftest import BUILD_ENV, ROOT, output
from tests.integration.conftest import (
    BOOTED,
    Host,
    Scene,
    free_subnet,
    lxc_uri,
)
from tests.integration.test_lxc import apply_or_skip

VIRT = os.environ.get("RECON_IT_VIRT", "qemu")
AGENT_BOUND = 300.0  # seconds: TCG boots measured here in 40-60 s


def example_template(name: str) -> dict[str, Any]:
    for doc in yaml.safe_load_all((ROOT / "manifests" / "templates.yaml").read_text()):
        if doc["metadata"]["name"] == name:
            spec: dict[str, Any] = doc["spec"]
            return spec
    raise KeyError(name)


def built_template(scene: Scene, example: str, **changes: Any) -> str:
    """The example template's spec in this scene's pool, its scripts copied beside it."""
    spec = example_template(example)
    spec.update(changes, pool=scene.name("pool"))
    scripts = spec["source"]["build"].get("customize", [])
    for script in scripts:
        dest = scene.manifest_dir.parent / "scripts" / Path(script).name
        dest.parent.mkdir(exist_ok=True)
        shutil.copy(ROOT / "manifests" / script, dest)
    # The manifest directory is rewritten on every put: scripts live next to it.
    spec["source"]["build"]["customize"] = [f"../scripts/{Path(s).name}" for s in scripts]
    return scene.put("Template", example, spec)


def booted_vm(scene: Scene, **spec: Any) -> str:
    """A VM from the built example VM template (TCG unless RECON_IT_VIRT says kvm), on a NAT
    network (its agent reports an address), with `spec` on top."""
    pool = scene.pool()
    net = scene.put(
        "Network",
        "net",
        {
            "mode": "nat",
            "bridge": f"br{scene.prefix[-8:]}",
            "ipv4": {"address": f"{free_subnet()}.1/24"},
        },
    )
    template = built_template(scene, "debian-12-base")
    return scene.vm(
        memory="512Mi",
        virtualization=VIRT,
        disks=[{"name": "root", "pool": pool, "size": "2Gi", "template": template}],
        interfaces=[{"network": net}],
        **spec,
    )


@pytest.fixture
def built(example_templates: None) -> None:
    """The example templates are in the shared cache (built by tests/conftest.py)."""


def backing_file(disk: Path) -> str:
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", "-U", str(disk)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    found: str = info["backing-filename"]
    return found


def artifact_of(scene: Scene, template: str) -> dict[str, Any]:
    shown = json.loads(scene.recon.ok("get", "template", template, "-o", "json").stdout)
    found: dict[str, Any] = shown["status"]["artifact"]
    return found


def agent(dom: Any, command: dict[str, Any], timeout: int = 10) -> dict[str, Any]:
    import libvirt_qemu

    reply: dict[str, Any] = json.loads(
        libvirt_qemu.qemuAgentCommand(dom, json.dumps(command), timeout, 0)
    )
    return reply


def wait_for_agent(dom: Any) -> float:
    """Seconds until the guest agent answered guest-ping; fails after AGENT_BOUND."""
    started = time.monotonic()
    last = ""
    while time.monotonic() - started < AGENT_BOUND:
        try:
            agent(dom, {"execute": "guest-ping"}, 5)
            return time.monotonic() - started
        except libvirt.libvirtError as exc:
            last = exc.get_error_message() or str(exc)
        time.sleep(2)
    pytest.fail(f"the guest agent did not answer within {AGENT_BOUND:.0f} s: {last}")


def test_built_container_templates_boot_their_init_under_lxc(
    host: Host, scene: Scene, built: None, lxc: Any
) -> None:
    uri = lxc_uri(host.uri)  # the lxc fixture points the scene's recon at it
    pool = scene.pool()
    template = built_template(scene, "debian-12-minimal")
    # An application template on it: a package and a script (vzpkg's appcache).
    script = scene.work / "scripts" / "app.sh"
    script.parent.mkdir(exist_ok=True)
    script.write_text('#!/bin/sh\nset -eu\necho layered > "$1/etc/recon-app"\n')
    script.chmod(0o755)
    tools = scene.put(
        "Template",
        "tools",
        {
            "osName": "debian",
            "version": "12",
            "format": "tar",
            "pool": pool,
            "type": "application",
            "base": template,
            "packages": ["less"],
            "source": {"build": {"customize": ["../scripts/app.sh"]}},
        },
    )
    containers = {}
    for what, apps in (("ct", []), ("app", [tools])):
        containers[what] = scene.put(
            "Container",
            what,
            {
                "template": template,
                "applications": apps,
                "cpus": 1,
                "memory": "256Mi",
                "disk": {"pool": pool, "size": "1Gi"},
            },
        )
    apply_or_skip(scene)

    def inside(name: str, *cmd: str, check: bool = True) -> str:
        return subprocess.run(
            ["virsh", "-c", uri, "lxc-enter-namespace", name, "--noseclabel", "--", *cmd],
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
        ).stdout

    for name in containers.values():
        assert "VERSION_CODENAME=bookworm" in inside(name, "/bin/cat", "/etc/os-release")
        # PID 1 is the template's init (systemd, from systemd-sysv), and it runs.
        pid1 = inside(name, "/bin/readlink", "/proc/1/exe").strip()
        assert pid1 == "/usr/lib/systemd/systemd"
        deadline = time.monotonic() + 60
        state = ""
        while time.monotonic() < deadline:
            state = inside(name, "/bin/systemctl", "is-system-running", check=False).strip()
            if state in ("running", "degraded"):
                break
            time.sleep(1)
        assert state in ("running", "degraded"), state
    # The application's package and script are in its container only.
    app, plain = containers["app"], containers["ct"]
    assert inside(app, "/bin/cat", "/etc/recon-app").strip() == "layered"
    assert inside(app, "/usr/bin/dpkg-query", "-W", "-f=${Status}", "less").startswith("install ok")
    assert inside(plain, "/bin/sh", "-c", "test -e /etc/recon-app || echo none").strip() == "none"
    scene.converged()


def test_a_built_vm_template_boots_to_its_guest_agent(
    host: Host, scene: Scene, built: None
) -> None:
    vm = booted_vm(scene)
    scene.apply()
    dom = host.domain(vm)
    xml = dom.XMLDesc(0)
    assert f"<domain type='{VIRT}'" in xml
    assert "<kernel>" in xml and ".vmlinuz</kernel>" in xml, xml
    seconds = wait_for_agent(dom)
    BOOTED.append(f"{VIRT}: guest agent after {seconds:.0f} s")
    name = agent(
        dom,
        {
            "execute": "guest-exec",
            "arguments": {"path": "/bin/cat", "arg": ["/etc/os-release"], "capture-output": True},
        },
    )
    pid = name["return"]["pid"]
    for _ in range(30):
        status = agent(dom, {"execute": "guest-exec-status", "arguments": {"pid": pid}})
        if status["return"]["exited"]:
            break
        time.sleep(1)
    import base64

    text = base64.b64decode(status["return"].get("out-data", "")).decode()
    assert "bookworm" in text, status
    scene.converged()


def test_the_same_spec_built_twice_has_the_same_digest(tmp_path: Path, built: None) -> None:
    """A second build of the container example into an empty cache: the same bytes as the
    shared cache's build when the repository has not moved in between (else built twice)."""
    from tests.conftest import Recon

    def build(cache: Path) -> dict[str, Any]:
        env = {**BUILD_ENV, "RECON_TEMPLATE_CACHE": str(cache)}
        result = Recon(tmp_path / "home", tmp_path)(
            "template",
            "build",
            "debian-12-minimal",
            "-f",
            ROOT / "manifests",
            "-o",
            "json",
            env=env,
            timeout=1800,
        )
        assert result.returncode == 0, output(result)
        record: dict[str, Any] = json.loads(result.stdout)["templates"][0]
        assert record["built"] is True
        return record

    first = build(tmp_path / "cache-1")
    shared = json.loads(
        next(
            Path(BUILD_ENV["RECON_TEMPLATE_CACHE"]).glob(f"{first['revision'][:12]}/record.json")
        ).read_text()
    )
    other = shared if shared["artifact"] == first["artifact"] else build(tmp_path / "cache-2")
    if other["artifact"] != first["artifact"]:
        pytest.skip("the repository moved between the two builds")
    assert other["digest"] == first["digest"]
    assert other["packages"] == first["packages"]


def test_a_rebuild_leaves_a_guests_image_and_a_used_template_is_not_pruned(
    host: Host, scene: Scene, built: None
) -> None:
    pool = scene.pool()
    template = built_template(scene, "debian-12-base")
    vm = scene.vm(
        memory="256Mi",
        virtualization=VIRT,
        disks=[{"name": "root", "pool": pool, "size": "2Gi", "template": template}],
    )
    scene.apply()
    first = artifact_of(scene, template)
    disk = scene.pool_dir / f"{vm}_root.qcow2"
    assert backing_file(disk).endswith(first["image"])

    # A spec change: a new revision, built and uploaded beside the old image.
    scene.spec("Template", template)["packages"] = ["procps", "less"]
    scene.write()
    diff = scene.diff()
    assert diff.returncode == 1, output(diff)
    assert "revision" in diff.stdout + diff.stderr
    assert "1 existing disk(s) keep the image" in output(diff)
    scene.apply()
    second = artifact_of(scene, template)
    assert second["image"] != first["image"]
    assert second["revision"] != first["revision"]
    assert "less" in second["packages"]
    assert (scene.pool_dir / first["image"]).exists(), "the old image went while a disk used it"
    assert backing_file(disk).endswith(first["image"])
    assert first["image"] in second["images"]
    scene.converged()

    # The running guest was left alone, on the kernel of the image its disk was made from.
    assert host.domain(vm).isActive()
    assert first["image"].rsplit(".", 1)[0] + ".vmlinuz" in host.live_xml(vm)

    # The VM pruned with its disk kept: the disk still backs onto the old image, so a
    # prune of the template leaves it (and says which disk needs it).
    del scene.documents[f"Template/{template}"]
    del scene.documents[f"VirtualMachine/{vm}"]
    scene.write()
    result = scene.recon("apply", *scene.files, "--prune", "--yes")
    assert f"Template/{template} is not pruned" in output(result), output(result)
    assert disk.name in output(result)
    assert (scene.pool_dir / first["image"]).exists()
