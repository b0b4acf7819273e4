"""A built template's images on the embedded host: a new revision is a new image beside the
old one, a guest keeps the image its disk was made from, the old image goes with the last
disk on it, and a prune spares a template whose image a kept disk needs.

The builds here are written into the artifact cache by hand, in the cache's own format (the
embedded host keeps no volume contents, so what an image holds does not matter; the builder
itself is tested against a real repository in tests/integration/test_templates.py)."""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path
from typing import Any

import pytest

from reconciler.build.builder import build, revision_of
from reconciler.load.manifests import load_manifests
from reconciler.model.artifacts import artifact_id
from tests.conftest import Recon, output

TEMPLATE = """\
apiVersion: reconciler/v1
kind: Template
metadata: {{name: base}}
spec:
  osName: debian
  version: "12"
  format: qcow2
  pool: default
  packages: [{packages}]
  source:
    build: {{}}
"""
REST = """\
apiVersion: reconciler/v1
kind: StoragePool
metadata: {{name: default}}
spec: {{path: {pool}}}
"""
VM = """\
apiVersion: reconciler/v1
kind: VirtualMachine
metadata: {{name: {name}}}
spec:
  cpus: 1
  memory: 128Mi
  disks:
    - {{name: root, pool: default, size: 2Gi, template: base}}
"""


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def put_build(directory: Path, cache: Path) -> dict[str, Any]:
    """The cache entry of the Template in `directory` as it is now, written by hand."""
    loaded = load_manifests([str(directory)])
    (resource,) = [r for r in loaded.resources if r.ref.kind == "Template"]
    revision = revision_of(resource)
    entry = cache / revision[:12]
    entry.mkdir(parents=True)
    (entry / "image.qcow2").write_bytes(b"QFI\xfb" + secrets.token_bytes(60))
    (entry / "vmlinuz").write_bytes(b"kernel")
    (entry / "initrd").write_bytes(b"initrd")
    record = {
        "template": "base",
        "revision": revision,
        "artifact": secrets.token_hex(32),
        "format": "qcow2",
        "file": "image.qcow2",
        "digest": "sha256:" + "0" * 64,
        "size": 64,
        "builtAt": "2026-01-01T00:00:00+00:00",
        "repository": {"bookworm": "Sat, 10 May 2025 10:00:00 UTC"},
        "packages": {"procps": "2:4.0.2-3"},
        "boot": True,
    }
    (entry / "record.json").write_text(json.dumps(record))
    return record


def artifact(recon: Recon) -> dict[str, Any]:
    shown = json.loads(recon.ok("get", "template", "base", "-o", "json").stdout)
    found: dict[str, Any] = shown["status"]["artifact"]
    return found


def write(directory: Path, packages: str, vms: list[str]) -> None:
    for old in directory.glob("*.yaml"):
        old.unlink()
    (directory / "template.yaml").write_text(TEMPLATE.format(packages=packages))
    (directory / "pool.yaml").write_text(REST.format(pool=directory.parent / "pool"))
    for name in vms:
        (directory / f"{name}.yaml").write_text(VM.format(name=name))


def test_a_new_revision_is_a_new_image_and_old_ones_go_with_their_last_disk(
    tmp_path: Path, cache: Path
) -> None:
    recon = Recon(tmp_path / "home", tmp_path)
    env = {"RECON_TEMPLATE_CACHE": str(cache)}
    d = tmp_path / "m"
    d.mkdir()
    write(d, "procps", ["vm-a"])
    first = put_build(d, cache)
    recon.ok("apply", "-f", d, env=env)
    host = recon.host_xml.read_text()
    old_image = f"template-base-{first['artifact'][:12]}.qcow2"
    assert old_image in host
    # The VM boots the build's kernel directly.
    assert f"template-base-{first['artifact'][:12]}.vmlinuz</kernel>" in host

    write(d, "procps, less", ["vm-a", "vm-b"])
    second = put_build(d, cache)
    diff = recon("diff", "-f", d, env=env)
    assert diff.returncode == 1
    text = output(diff)
    assert f"revision: {first['revision'][:12]} -> {second['revision'][:12]}" in text, text
    assert "1 existing disk(s) keep the image they were made from" in text, text
    recon.ok("apply", "-f", d, env=env)
    new_image = f"template-base-{second['artifact'][:12]}.qcow2"
    host = recon.host_xml.read_text()
    assert old_image in host and new_image in host
    listed = {o["name"]: o for o in recon.get("vm", "-o", "json")}
    assert set(listed) == {"vm-a", "vm-b"}
    # vzpkg list: the guests on the template's images, old and new.
    templates = json.loads(recon.ok("template", "list", "-o", "json", env=env).stdout)
    (row,) = [t for t in templates["templates"] if t["name"] == "base"]
    assert row["usedBy"] == ["VirtualMachine/vm-a", "VirtualMachine/vm-b"], row
    assert "vm-a, vm-b" in recon.ok("template", "list", env=env).stdout
    # vm-a keeps the first build (image and kernel), vm-b gets the second.
    assert f"template-base-{first['artifact'][:12]}.vmlinuz" in host
    assert f"template-base-{second['artifact'][:12]}.vmlinuz" in host
    record = artifact(recon)
    assert record["images"] == [new_image, old_image]
    assert record["packages"] == {"procps": "2:4.0.2-3"}
    assert recon("diff", "-f", d, env=env).returncode == 0

    # vm-a pruned with its disk: the old image goes with it (no disk needs it any more).
    write(d, "procps, less", ["vm-b"])
    result = recon.ok("apply", "-f", d, "--prune", "--delete-volumes", "--yes", env=env)
    assert f"older image {old_image} of Template/base deleted" in output(result)
    host = recon.host_xml.read_text()
    assert old_image not in host and new_image in host
    assert artifact(recon)["images"] == [new_image]

    # vm-b pruned with its disk kept: the template's prune is spared, naming the disk.
    for old in d.glob("*.yaml"):
        old.unlink()
    (d / "pool.yaml").write_text(REST.format(pool=tmp_path / "pool"))
    result = recon.ok("apply", "-f", d, "--prune", "--yes", env=env)
    assert (
        "Template/base is not pruned: its image is the backing file of vm-b_root.qcow2 "
        "(kept after VirtualMachine/vm-b is pruned)"
    ) in output(result)
    # The next prune: the disk belongs to no guest any more, and the note says so.
    again = recon.ok("apply", "-f", d, "--prune", "--yes", env=env)
    assert "vm-b_root.qcow2 (kept, no guest)" in output(again)
    assert new_image in recon.host_xml.read_text()


def test_a_template_that_is_not_built_fails_alone(tmp_path: Path, cache: Path) -> None:
    """No build in the cache and none possible (an unreachable repository): the Template
    fails with the cause, the VM that needs it is not created, the pool is."""
    recon = Recon(tmp_path / "home", tmp_path)
    d = tmp_path / "m"
    d.mkdir()
    write(d, "procps", ["vm-a"])
    text = (
        (d / "template.yaml")
        .read_text()
        .replace(
            "  source:",
            "  repositories:\n    - {name: nowhere, url: 'http://127.0.0.1:9/debian'}\n  source:",
        )
    )
    (d / "template.yaml").write_text(text)
    result = recon("apply", "-f", d, env={"RECON_TEMPLATE_CACHE": str(cache)})
    assert result.returncode == 1, output(result)
    text = output(result)
    assert "Template/base: cannot reach the repository of suite 'bookworm'" in text
    errors = [line for line in text.splitlines() if "cannot reach" in line]
    assert errors and not any("127.0.0.1:9" in line for line in errors)
    host = recon.host_xml.read_text()
    assert "<name>vm-a</name>" not in host
    assert "<name>default</name>" in host
    assert not list(cache.glob("*")) or not any(cache.iterdir())


def test_a_refreshed_build_of_the_same_revision_is_a_change(tmp_path: Path, cache: Path) -> None:
    """maxAge passed and the repository moved: the cache holds a newer build of the same
    revision (another artifact). The host's is older: diff says so, apply uploads the new
    one beside the old, which a guest's disk still backs onto."""
    recon = Recon(tmp_path / "home", tmp_path)
    env = {"RECON_TEMPLATE_CACHE": str(cache)}
    d = tmp_path / "m"
    d.mkdir()
    write(d, "procps", ["vm-a"])
    first = put_build(d, cache)
    recon.ok("apply", "-f", d, env=env)
    entry = cache / first["revision"][:12]
    shutil.rmtree(entry)
    second = put_build(d, cache)
    record = json.loads((entry / "record.json").read_text())
    record["builtAt"] = "2026-02-01T00:00:00+00:00"
    (entry / "record.json").write_text(json.dumps(record))
    diff = recon("diff", "-f", d, env=env)
    assert diff.returncode == 1, output(diff)
    rev = first["revision"][:12]
    assert f"revision: {rev} (rebuilt since) -> {rev}" in output(diff)
    assert "older than maxAge and the repository moved: rebuilt" in output(diff)
    recon.ok("apply", "-f", d, env=env)
    host = recon.host_xml.read_text()
    assert f"template-base-{second['artifact'][:12]}.qcow2" in host
    assert f"template-base-{first['artifact'][:12]}.qcow2" in host  # vm-a's disk needs it
    assert recon("diff", "-f", d, env=env).returncode == 0


def test_an_old_build_against_an_unmoved_repository_is_no_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """maxAge alone: the repository (a file:// mirror here) has not moved, so the cached
    build stays, however old."""
    mirror = tmp_path / "mirror"
    (mirror / "dists" / "bookworm").mkdir(parents=True)
    (mirror / "dists" / "bookworm" / "Release").write_text("Date: Sat, 10 May 2025 10:00:00 UTC\n")
    d = tmp_path / "m"
    d.mkdir()
    (d / "t.yaml").write_text(
        TEMPLATE.format(packages="procps").replace(
            "    build: {}",
            "    build: {maxAge: 1h}\n  repositories:\n"
            f"    - {{name: local, url: '{mirror.as_uri()}', trusted: true}}",
        )
        + "---\n"
        + REST.format(pool=tmp_path / "pool")
    )
    cache = tmp_path / "cache"
    made = put_build(d, cache)
    entry = cache / made["revision"][:12]
    record = json.loads((entry / "record.json").read_text())
    record["artifact"] = artifact_id(
        record["revision"], {"bookworm": "Sat, 10 May 2025 10:00:00 UTC"}
    )
    (entry / "record.json").write_text(json.dumps(record))
    loaded = load_manifests([str(d)])
    (resource,) = [r for r in loaded.resources if r.ref.kind == "Template"]
    monkeypatch.setenv("RECON_TEMPLATE_CACHE", str(cache))
    artifact, built = build(tmp_path / "home", resource)
    assert built is False and artifact.id == record["artifact"]
