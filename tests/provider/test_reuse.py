"""A provider kept open across passes (what `recon watch` and `recon sync` do) must see exactly
what a freshly opened one sees: after every kind of change it applies itself, and not at all
once another process has written the embedded host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.engine.apply import apply_plan
from reconciler.engine.plan import PlanOptions, make_plan
from reconciler.load.manifests import load_manifests
from reconciler.load.secrets import SecretPolicy, read_secrets
from reconciler.model.refs import ResourceRef
from reconciler.providers.base import ApplyContext, Observation
from reconciler.providers.libvirt.provider import LibvirtProvider
from tests.conftest import SECRET, OtherTool, edit

NEW_DISK = """\
    - name: data
      pool: default
      size: 1Gi
      format: qcow2
"""


def view(observation: Observation) -> dict[ResourceRef, Any]:
    return {
        ref: (
            obs.fields,
            obs.running,
            obs.uuid,
            obs.stamp.spec_hash if obs.stamp else None,
            obs.guaranteed_bytes,
            obs.memory_bytes,
        )
        for ref, obs in observation.objects.items()
    }


def reconcile(provider: LibvirtProvider, manifests: Path, *, prune: bool = False) -> int:
    loaded = load_manifests([str(manifests)])
    assert loaded.ok, [d.render() for d in loaded.diagnostics]
    values, missing = read_secrets(loaded.resources, SecretPolicy(manifests))
    assert not missing, [d.render() for d in missing]
    observation = provider.observe()
    plan = make_plan(loaded.resources, observation, PlanOptions(prune=prune, secrets=values))
    context = ApplyContext({r.ref: r for r in loaded.resources}, observation, secrets=values)
    result = apply_plan(plan, loaded.resources, provider, context)
    assert result.ok, result.failed
    provider.flush()
    return len(result.applied)


def fresh(home: Path) -> dict[ResourceRef, Any]:
    other = LibvirtProvider(home=home)
    try:
        return view(other.observe())
    finally:
        other.close()


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_ADMIN_PASSWORD", SECRET)


def test_a_kept_provider_sees_what_a_fresh_one_sees_after_each_of_its_changes(
    tmp_path: Path, manifests: Path
) -> None:
    home = tmp_path / "home"
    kept = LibvirtProvider(home=home, reuse=True)
    web = manifests / "vms" / "web-1.yaml"
    cache = manifests / "containers" / "cache-1.yaml"
    steps = [
        ("create everything", lambda: None, False),
        ("live vCPU change", lambda: edit(web, "  cpus: 2\n", "  cpus: 3\n"), False),
        ("live memory growth", lambda: edit(web, "  memory: 1Gi\n", "  memory: 2Gi\n"), False),
        ("stop", lambda: edit(web, "  state: Running\n", "  state: Stopped\n"), False),
        ("offline change", lambda: edit(web, "  firmware: bios\n", "  firmware: efi\n"), False),
        ("start again", lambda: edit(web, "  state: Stopped\n", "  state: Running\n"), False),
        ("a new disk", lambda: edit(web, "  interfaces:\n", NEW_DISK + "  interfaces:\n"), False),
        ("guarantee", lambda: edit(web, '"50%"', '"75%"'), False),
        ("container swap", lambda: edit(cache, "  swap: 256Mi\n", "  swap: 512Mi\n"), False),
        ("prune a container", lambda: (manifests / "containers" / "cache-1.yaml").unlink(), True),
    ]
    try:
        for what, change, prune in steps:
            change()
            assert reconcile(kept, manifests, prune=prune) > 0, what
            assert kept.current(), what
            assert view(kept.observe()) == fresh(home), what
            assert reconcile(kept, manifests, prune=prune) == 0, f"{what}: not converged"
    finally:
        kept.close()


def test_a_write_by_another_process_makes_a_kept_provider_stale(
    tmp_path: Path, manifests: Path, other_tool: OtherTool
) -> None:
    home = tmp_path / "home"
    kept = LibvirtProvider(home=home, reuse=True)
    try:
        reconcile(kept, manifests)
        assert kept.current()
        with other_tool(home / "host.xml") as conn:
            conn.lookupByName("web-1").destroy()
        assert not kept.current()
        # What the kept connection holds is no longer the host; a new one sees the change.
        assert fresh(home)[ResourceRef("VirtualMachine", "web-1")][1] is False
        assert view(kept.observe())[ResourceRef("VirtualMachine", "web-1")][1] is True
        # Opened again, as the loop does: it reuses parses of identical XML, and only those.
        reopened = LibvirtProvider(home=home, reuse=True)
        try:
            assert view(reopened.observe()) == fresh(home)
        finally:
            reopened.close()
    finally:
        kept.close()


def test_a_redefinition_keeps_the_mac_addresses_the_manifest_does_not_pin(
    tmp_path: Path, manifests: Path
) -> None:
    home = tmp_path / "home"
    cache = ResourceRef("Container", "cache-1")
    provider = LibvirtProvider(home=home)
    try:
        reconcile(provider, manifests)
        before = provider.observe().objects[cache].fields["interfaces[0].mac"]
        edit(manifests / "containers" / "cache-1.yaml", "  cpus: 1\n", "  cpus: 2\n")
        assert reconcile(provider, manifests) == 1
    finally:
        provider.close()
    after = fresh(home)[cache][0]
    assert after["cpus"] == 2
    assert after["interfaces[0].mac"] == before
