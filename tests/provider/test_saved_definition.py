"""A running guest has two definitions: what it runs now, and what it boots next (the saved,
persistent one). Both are observed; where the saved one differs from the manifest while the
running guest matches it (`virsh define` of a running guest), that is a change: the next boot
would otherwise get what nobody asked for. The change rewrites the definition only."""

from __future__ import annotations

import re
from pathlib import Path

import libvirt
import pytest

from reconciler.engine.apply import apply_plan
from reconciler.engine.plan import PlanOptions, make_plan
from reconciler.load.manifests import load_manifests
from reconciler.load.secrets import SecretPolicy, read_secrets
from reconciler.model.plan import Disruption, Plan
from reconciler.model.refs import ResourceRef
from reconciler.providers.base import ApplyContext
from reconciler.providers.libvirt.provider import LibvirtProvider
from reconciler.providers.snapshot import dump_host_state, parse_host_state
from tests.conftest import SECRET, Recon

WEB = ResourceRef("VirtualMachine", "web-1")
INACTIVE = libvirt.VIR_DOMAIN_XML_INACTIVE


def plan_for(provider: LibvirtProvider, manifests: Path) -> tuple[Plan, ApplyContext]:
    loaded = load_manifests([str(manifests)])
    values, _ = read_secrets(loaded.resources, SecretPolicy(manifests))
    observation = provider.observe()
    plan = make_plan(loaded.resources, observation, PlanOptions(secrets=values))
    context = ApplyContext({r.ref: r for r in loaded.resources}, observation, secrets=values)
    return plan, context


def with_memory(text: str, mib: int) -> str:
    """The definition with another memory size (and web-1's 50% guarantee of it)."""
    for tag, size in (("memory", mib), ("currentMemory", mib), ("min_guarantee", mib // 2)):
        text = re.sub(
            rf"<{tag} unit='KiB'>\d+</{tag}>", f"<{tag} unit='KiB'>{size * 1024}</{tag}>", text
        )
    return text


def test_a_running_guests_saved_definition_is_diffed_and_fixed_without_a_restart(
    recon: Recon, applied: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEB_ADMIN_PASSWORD", SECRET)
    provider = LibvirtProvider(home=recon.home)
    try:
        dom = provider.host.conn.lookupByName("web-1")
        assert dom.isActive()
        # virsh define, behind recon's back: the next boot would get 512Mi, not 1Gi.
        provider.host.conn.defineXML(with_memory(dom.XMLDesc(INACTIVE), 512))
        plan, context = plan_for(provider, applied)
        [change] = [c for c in plan.changes if c.ref == WEB]
        [field] = change.fields
        assert (field.path, field.before, field.after) == ("memory", "512Mi", "1Gi")
        assert field.disruption is Disruption.NONE  # the running guest has 1Gi already
        assert "saved definition" in field.note
        assert [c.ref for c in plan.changes] == [WEB]

        loaded = load_manifests([str(applied)])
        result = apply_plan(plan, loaded.resources, provider, context)
        assert result.ok, result.failed
        assert "restarted" not in result.applied[0][1]
        dom = provider.host.conn.lookupByName("web-1")
        assert dom.isActive()
        assert "<memory unit='KiB'>1048576</memory>" in dom.XMLDesc(INACTIVE)
        again, _ = plan_for(provider, applied)
        assert again.changes == [], again.changes
    finally:
        provider.close()


def test_a_saved_definition_equal_to_the_running_guest_is_not_a_change(
    recon: Recon, applied: Path
) -> None:
    provider = LibvirtProvider(home=recon.home)
    try:
        plan, _ = plan_for(provider, applied)
        assert plan.changes == []
        web = provider.observe().objects[WEB]
        assert web.saved == {}
    finally:
        provider.close()


def test_an_exported_host_state_keeps_the_saved_definition_for_a_plan_without_the_host(
    recon: Recon, applied: Path
) -> None:
    provider = LibvirtProvider(home=recon.home)
    try:
        dom = provider.host.conn.lookupByName("web-1")
        provider.host.conn.defineXML(with_memory(dom.XMLDesc(INACTIVE), 512))
        text = dump_host_state(provider.observe())
    finally:
        provider.close()
    observation, _ = parse_host_state(text, "host-state.json")
    assert observation.objects[WEB].saved["memory"] == "512Mi"
    loaded = load_manifests([str(applied)])
    plan = make_plan(loaded.resources, observation, PlanOptions())
    [change] = [c for c in plan.changes if c.ref == WEB]
    assert [(f.path, f.before, f.after) for f in change.fields] == [("memory", "512Mi", "1Gi")]
