"""A guest's change, as a straight run of steps: check ownership, take apart what a replace
rebuilds, make its disks, define it, apply live changes, start/restart/stop it, hold its
memory guarantee, set what is inside it. Each step looks before it acts, so a rerun after a
failure continues from where the host is."""

from __future__ import annotations

import dataclasses
import posixpath
import time
import uuid as uuidlib
from contextlib import suppress

import libvirt

from reconciler.model.artifacts import VM_CMDLINE, boot_volume_names
from reconciler.model.kinds import Container, VirtualMachine
from reconciler.model.plan import Action, Change, Disruption
from reconciler.model.resource import Resource
from reconciler.providers.base import ApplyContext, ProviderError
from reconciler.providers.libvirt import storage, templates
from reconciler.providers.libvirt import xml as lx
from reconciler.providers.libvirt.common import Host, check_owned, lookup, make_stamp
from reconciler.providers.libvirt.guests import (
    disks,
    guarantee,
    live,
    observe,
    settle,
    tools,
)


def apply_guest(
    host: Host, change: Change, resource: Resource | None, context: ApplyContext
) -> str:
    dom = lookup(host.conn.lookupByName, change.ref.name)
    if change.action is Action.DELETE:
        if dom is None:
            return "already gone"
        check_owned(change.ref, lx.parse_domain(dom.XMLDesc(0)).stamp, context)
        kept = _delete_guest(host, dom, context, context.delete_volumes)
        done = " with its volumes" if context.delete_volumes else " (volumes kept)"
        return ", ".join(["deleted" + done, *kept])
    assert resource is not None
    manifest = resource.manifest
    assert isinstance(manifest, VirtualMachine | Container)
    existing_uuid: str | None = None
    macs: list[str | None] = []
    attached: dict[str, str] = {}
    own: set[str] = set()
    notes: list[str] = []
    definition = ""  # the guest's saved definition before this change, if it has one
    if dom is not None:
        definition = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        parsed = lx.parse_domain(definition)
        if change.action is not Action.CREATE or parsed.stamp is None:
            check_owned(change.ref, parsed.stamp, context)
        existing_uuid, attached = parsed.uuid, parsed.disk_paths
        own = disks.own_paths(parsed.stamp, attached.values())
        macs = [
            parsed.fields.get(f"interfaces[{i}].mac") for i in range(len(manifest.spec.interfaces))
        ]
        if change.action is Action.REPLACE:
            notes += _delete_guest(host, dom, context, False, _rebuilt_disks(change))
            dom, existing_uuid, macs, attached = None, None, [], {}
    uuid = manifest.spec.uuid or existing_uuid or str(uuidlib.uuid4())
    volumes, backings = disks.guest_volumes(host, resource, context, attached, own, notes)
    # Detached disks stay the guest's while their volumes exist.
    using = {v.path for v in volumes.values()}
    own = {p for p in own if p in using or storage.volume_exists_at(host, p)}
    stamp = dataclasses.replace(make_stamp(resource, context), record={"volumes": sorted(own)})
    was_running = dom is not None and bool(dom.isActive())
    dom = host.conn.defineXML(
        lx.build_domain(
            manifest,
            uuid=uuid,
            stamp=stamp,
            volumes=volumes,
            driver=host.driver,
            macs=macs,
            boot=_kernel_boot(host, manifest, backings),
        )
    )
    if was_running:
        try:
            notes += live.live_changes(host, dom, change, manifest)
        except (ProviderError, libvirt.libvirtError):
            # The guest refused (a shrink it cannot make): its next boot must not get the
            # change either, so the definition goes back to what it was.
            host.conn.defineXML(definition)
            raise
    dom.setAutostart(1 if manifest.spec.autostart else 0)
    started, run_notes = _run_state(host, dom, change, manifest, was_running, context)
    notes += run_notes
    if dom.isActive():
        notes += guarantee.hold(host, dom, manifest)
        notes += tools.guest_settings(host, dom, resource, change, started, context)
    verb = {Action.CREATE: "defined", Action.REPLACE: "replaced"}.get(change.action, "updated")
    return ", ".join([verb, *notes])


def _rebuilt_disks(change: Change) -> set[str]:
    """Disks whose identity changed (template, pool, format): a replace rebuilds them."""
    rebuilt = {
        f.path.split("]")[0].removeprefix("disks[")
        for f in change.fields
        if f.disruption is Disruption.REPLACE and f.path.startswith("disks[")
    }
    if any(f.path in ("template", "disk.pool") for f in change.fields):
        rebuilt.add("root")
    return rebuilt


def _run_state(
    host: Host,
    dom: libvirt.virDomain,
    change: Change,
    manifest: VirtualMachine | Container,
    was_running: bool,
    context: ApplyContext,
) -> tuple[bool, list[str]]:
    """Start, restart or stop the guest as its state and the change's disruption ask;
    whether it was started, and what was done. A guest it starts is checked again at the
    end of the apply (settle.py): one that stopped right after fails its change."""
    want_running = manifest.spec.state == "Running"
    notes: list[str] = []
    if dom.isActive():
        # Paused, suspended or crashed: none of these shuts down cleanly or runs; brought back
        # first (or, crashed, off), then it is restarted, stopped or left running as asked.
        woken, notes = _wake(dom, want_running)
        if woken == "off":
            was_running = False
    if was_running and change.disruption is Disruption.RESTART and want_running:
        notes += _shutdown(dom, context)
        dom.create()
        settle.after_start(host, dom, change.ref, context)
        return True, [*notes, "restarted"]
    if want_running and not dom.isActive():
        dom.create()
        settle.after_start(host, dom, change.ref, context)
        return True, [*notes, "started"]
    if not want_running and dom.isActive():
        return False, [*notes, *_shutdown(dom, context), "stopped"]
    return False, notes


def _wake(dom: libvirt.virDomain, want_running: bool) -> tuple[str, list[str]]:
    """A paused guest resumed, a suspended one woken, a crashed one forced off; says which
    ("resumed", "off" or "" when it was simply running) and what was done."""
    state, reason = dom.state()[:2]
    word, why = observe.run_state(state, reason)
    if word == "Crashed":
        dom.destroy()
        return "off", ["it had crashed: forced off"]
    if word not in ("Paused", "Suspended"):
        return "", []
    try:
        if word == "Paused":
            dom.resume()
        else:
            dom.pMWakeup(0)
    except libvirt.libvirtError as exc:
        if not want_running:
            dom.destroy()  # to be stopped anyway: a clean shutdown needs it running
            return "off", [f"{why}; could not be resumed, forced off"]
        raise ProviderError(
            f"{dom.name()} is {why} and could not be resumed: {exc.get_error_message()}",
            "see the hypervisor's log for the guest; resume it by hand (virsh resume) "
            "once the cause is fixed",
        ) from None
    return "resumed", [f"resumed ({why})"]


def _kernel_boot(
    host: Host, manifest: VirtualMachine | Container, backings: dict[str, str]
) -> lx.KernelBoot | None:
    """A VM whose first template disk comes from a built template boots that build's kernel
    and initrd directly (they sit beside its image in the pool)."""
    if not isinstance(manifest, VirtualMachine):
        return None
    root = next((d for d in manifest.spec.disks if d.template), None)
    image = backings.get(root.name) if root is not None else None
    if image is None:
        return None
    folder = posixpath.dirname(image)
    kernel, initrd = (
        posixpath.join(folder, name) for name in boot_volume_names(posixpath.basename(image))
    )
    if not (storage.volume_exists_at(host, kernel) and storage.volume_exists_at(host, initrd)):
        return None  # an image that is not a built one: it boots with its own bootloader
    return lx.KernelBoot(kernel, initrd, VM_CMDLINE)


def _delete_guest(
    host: Host,
    dom: libvirt.virDomain,
    context: ApplyContext,
    delete_volumes: bool,
    only_disks: set[str] | None = None,
) -> list[str]:
    """Undefine the guest and, if asked, delete its disks (those recon made for it or it
    had, detached ones too); a disk that another guest uses is kept, and said so. Without
    its volumes, the volumes it owned are recorded as kept in their pools."""
    parsed = lx.parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    if dom.isActive():
        dom.destroy()
    flags = libvirt.VIR_DOMAIN_UNDEFINE_NVRAM if host.driver in ("qemu", "kvm") else 0
    dom.undefine() if flags == 0 else dom.undefineFlags(flags)
    own = disks.own_paths(parsed.stamp, parsed.disk_paths.values())
    owner = f"{parsed.kind or 'VirtualMachine'}/{parsed.name}"
    if not delete_volumes and only_disks is None:
        return disks.keep(host, owner, own)
    notes = []
    backing: list[str] = []
    if only_disks is not None:
        targets = [p for d, p in parsed.disk_paths.items() if d in only_disks]
    else:
        targets = sorted(own)
    for path in targets:
        others = disks.other_users(context, path, parsed.name)
        if others:
            notes.append(f"volume {path} kept: in use by {', '.join(others)}")
            continue
        image = storage.backing_file_of(host, path)
        storage.delete_volume_at(host, path)
        if image:
            backing.append(image)
    return notes + templates.release_older_images(host, backing)


def _shutdown(dom: libvirt.virDomain, context: ApplyContext) -> list[str]:
    """Clean shutdown first; forced off after the timeout, and said so."""
    with suppress(libvirt.libvirtError):
        dom.shutdown()
    deadline = time.monotonic() + context.shutdown_timeout
    while dom.isActive() and time.monotonic() < deadline:
        time.sleep(0.2)
    if not dom.isActive():
        return []
    message = f"no clean shutdown after {context.shutdown_timeout:g}s; forced off"
    context.progress(f"{dom.name()}: {message}")
    dom.destroy()
    return [message]
