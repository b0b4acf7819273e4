"""Settings inside a guest, through its agent: today the users' passwords of a VM."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import libvirt

from reconciler.model.fields import spec_hash
from reconciler.model.kinds import VirtualMachine
from reconciler.model.plan import Action, Change
from reconciler.model.resource import Resource
from reconciler.providers.base import ProviderError
from reconciler.providers.libvirt import xml as lx
from reconciler.providers.libvirt.common import CONFIG, LIVE, Host
from reconciler.providers.secrets import resolve_secret

# How long an unanswered guest agent is waited for after a start: a guest OS takes this long
# to boot far enough to run qemu-guest-agent.
_AGENT_WAIT = 30.0


def guest_settings(
    host: Host, dom: libvirt.virDomain, resource: Resource, change: Change, started: bool
) -> list[str]:
    """Guest passwords through the guest agent, when they are new or changed."""
    manifest = resource.manifest
    if not isinstance(manifest, VirtualMachine) or manifest.spec.guest is None:
        return []
    touched = change.action in (Action.CREATE, Action.REPLACE) or any(
        f.path.startswith("guest.users") or f.path == "state" for f in change.fields
    )
    if not touched:
        return []
    notes = []
    for user in manifest.spec.guest.users:
        if user.password is None:
            continue
        if not host.capabilities.get("guest-password"):
            notes.append(f"password of {user.name} not set: this host has no guest agent")
            continue
        try:
            value = resolve_secret(user.password, Path(resource.file).parent)
        except ProviderError:
            # The stamp already says the users were applied: it must not, or no later run
            # would try again (and a loop would call the guest Ready).
            _forget_applied(dom, "guest.users")
            raise
        # A guest that was just started needs time to boot far enough to run its agent.
        deadline = time.monotonic() + (_AGENT_WAIT if started and host.driver != "test" else 0)
        while True:
            try:
                dom.setUserPassword(user.name, value, 0)
                break
            except libvirt.libvirtError as exc:
                waiting = exc.get_error_code() == libvirt.VIR_ERR_AGENT_UNRESPONSIVE
                if waiting and time.monotonic() < deadline:
                    time.sleep(1.0)
                    continue
                # Not set: the stamp must not say it was, or no later run would retry.
                _forget_applied(dom, "guest.users")
                # The message can never contain the value: libvirt does not echo it.
                raise ProviderError(
                    f"setting the password of {user.name} failed: {exc.get_error_message()}",
                    "the guest must run qemu-guest-agent; the next apply tries again",
                ) from None
        notes.append(f"password of {user.name} set")
    return notes


def _forget_applied(dom: libvirt.virDomain, prefix: str) -> None:
    """Drop fields from the stamp's applied record (what did not reach the guest)."""
    parsed = lx.parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    if parsed.stamp is None or parsed.kind is None:
        return
    applied = {k: v for k, v in parsed.stamp.applied.items() if not k.startswith(prefix)}
    stamp = replace(parsed.stamp, spec_hash=spec_hash(applied), applied=applied)
    flags = CONFIG | (LIVE if dom.isActive() else 0)
    dom.setMetadata(
        libvirt.VIR_DOMAIN_METADATA_ELEMENT,
        lx.stamp_metadata_xml(stamp, parsed.kind),
        "recon",
        lx.NS,
        flags,
    )
