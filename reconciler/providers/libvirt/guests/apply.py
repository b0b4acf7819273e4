"""A guest's change, as a straight run of steps: check ownership, take apart what a replace
rebuilds, make its disks, define it, apply live changes, start/restart/stop it, hold its
memory guarantee, set what is inside it. Each step looks before it acts, so a rerun after a
failure continues from where the host is."""

from __future__ import annotations

import posixpath
import time
import uuid as uuidlib
from contextlib import suppress

import libvirt

from reconciler.model.artifacts import VM_CMDLINE, boot_volume_names
from reconciler.model.kinds import Container, VirtualMachine
from reconciler.model.plan import Action, Change, Disruption
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.providers.base import ApplyContext, ProviderError
from reconciler.providers.libvirt import storage, templates
from reconciler.providers.libvirt import xml as lx
from reconciler.providers.libvirt.common import Host, check_owned, lookup, make_stamp
from reconciler.providers.libvirt.guests import agent, guarantee, live, lxc, observe


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
    notes: list[str] = []
    if dom is not None:
        parsed = lx.parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        if change.action is not Action.CREATE or parsed.stamp is None:
            check_owned(change.ref, parsed.stamp, context)
        existing_uuid, attached = parsed.uuid, parsed.disk_paths
        macs = [
            parsed.fields.get(f"interfaces[{i}].mac") for i in range(len(manifest.spec.interfaces))
        ]
        if change.action is Action.REPLACE:
            notes += _delete_guest(host, dom, context, False, _rebuilt_disks(change))
            dom, existing_uuid, macs, attached = None, None, [], {}
    uuid = manifest.spec.uuid or existing_uuid or str(uuidlib.uuid4())
    volumes, backings = _guest_volumes(host, resource, context, attached, notes)
    stamp = make_stamp(resource, context)
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
        notes += live.live_changes(host, dom, change, manifest)
    dom.setAutostart(1 if manifest.spec.autostart else 0)
    started, run_notes = _run_state(dom, change, manifest, was_running, context)
    notes += run_notes
    if dom.isActive():
        notes += guarantee.hold(host, dom, manifest)
        notes += agent.guest_settings(host, dom, resource, change, started, context)
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
    dom: libvirt.virDomain,
    change: Change,
    manifest: VirtualMachine | Container,
    was_running: bool,
    context: ApplyContext,
) -> tuple[bool, list[str]]:
    """Start, restart or stop the guest as its state and the change's disruption ask;
    whether it was started, and what was done."""
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
        return True, [*notes, "restarted"]
    if want_running and not dom.isActive():
        dom.create()
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


def _guest_volumes(
    host: Host,
    resource: Resource,
    context: ApplyContext,
    attached: dict[str, str],
    notes: list[str],
) -> tuple[dict[str, lx.DiskVolume], dict[str, str]]:
    """Create what is missing: each disk's volume (with its template as backing file). A disk
    the guest already has keeps its volume (one named before the "_" separator too); a volume
    another guest uses is never attached. Also returns the backing file of each disk made
    from a template (the image it was made from, which may be an older build)."""
    manifest = resource.manifest
    out: dict[str, lx.DiskVolume] = {}
    backings: dict[str, str] = {}
    wanted: list[tuple[str, str, int, str | None, str]] = []
    if isinstance(manifest, VirtualMachine):
        for disk in manifest.spec.disks:
            wanted.append((disk.name, disk.pool, disk.size, disk.template, disk.format))
    elif isinstance(manifest, Container):
        wanted.append(("root", manifest.spec.disk.pool, manifest.spec.disk.size, None, "raw"))
    for disk_name, pool_name, size, template, fmt in wanted:
        pool = host.conn.storagePoolLookupByName(pool_name)
        vol_name = lx.volume_name(resource.ref.name, disk_name, fmt)
        # The volume the guest has for this disk, if it is in this pool (one named before
        # the "_" separator too), else the one under the disk's name.
        have = attached.get(disk_name, "")
        vol = storage.find_volume(pool, posixpath.basename(have)) if have else None
        if vol is None or vol.path() != have:
            vol = storage.find_volume(pool, vol_name)
        if vol is None:
            backing = templates.image_volume(host, template, context) if template else None
            root_from = None
            if isinstance(manifest, Container) and host.driver == "lxc":
                root_from = lxc.root_archive(host, manifest, context)
            vol = storage.create_volume(
                pool, lx.build_volume(vol_name, capacity=size, fmt=fmt, backing=backing)
            )
            if root_from is not None:
                lxc.make_root(vol, root_from)
            if backing is not None:
                backings[disk_name] = backing.path
        else:
            _refuse_shared(resource, disk_name, vol.path(), context)
            vol_name = vol.name()
            notes += _grow(host, vol, disk_name, size)
            if template:
                backing_path = lx.parse_volume(vol.XMLDesc(0)).backing_path
                if backing_path:
                    backings[disk_name] = backing_path
        out[disk_name] = lx.DiskVolume(pool_name, vol_name, vol.path(), fmt)
    return out, backings


def _grow(host: Host, vol: libvirt.virStorageVol, disk: str, size: int) -> list[str]:
    """Grow a disk's volume to its size where the host can; where it cannot, the disk is left
    as it is (the plan already reported the grow as unmet) and the guest's other changes go
    on: a grow the host cannot make must not wedge every later change to the guest."""
    capacity = int(vol.info()[1])
    if size <= capacity:
        return []
    left = f"disk {disk} left at {capacity} bytes"
    if not host.capabilities.get("volume-resize", False):
        return [f"{left} (this host cannot resize volumes)"]
    try:
        vol.resize(size, 0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in (
            libvirt.VIR_ERR_NO_SUPPORT,
            libvirt.VIR_ERR_OPERATION_INVALID,
            libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
        ):
            raise
        return [f"{left} (the host refused the resize: {exc.get_error_message()})"]
    return []


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


def _other_users(context: ApplyContext, path: str, guest: str) -> list[ResourceRef]:
    """The other guests, managed or not, whose disks or filesystems are the file at path."""
    return [ref for ref in context.observation.users_of(path) if ref.name != guest]


def _refuse_shared(resource: Resource, disk: str, path: str, context: ApplyContext) -> None:
    others = _other_users(context, path, resource.ref.name)
    if others:
        raise ProviderError(
            f"{resource.ref}: the volume {path} for disk {disk} is in use by "
            + ", ".join(str(ref) for ref in others)
            + "; two guests on one disk would corrupt it",
            "rename the disk, or remove the volume from the other guest first",
        )


def _delete_guest(
    host: Host,
    dom: libvirt.virDomain,
    context: ApplyContext,
    delete_volumes: bool,
    only_disks: set[str] | None = None,
) -> list[str]:
    """Undefine the guest and, if asked, delete its disks; a disk that another guest uses
    is kept, and said so."""
    parsed = lx.parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    if dom.isActive():
        dom.destroy()
    flags = libvirt.VIR_DOMAIN_UNDEFINE_NVRAM if host.driver in ("qemu", "kvm") else 0
    dom.undefine() if flags == 0 else dom.undefineFlags(flags)
    if not delete_volumes and only_disks is None:
        return []
    notes = []
    backing: list[str] = []
    for disk, path in parsed.disk_paths.items():
        if only_disks is not None and disk not in only_disks:
            continue
        others = _other_users(context, path, parsed.name)
        if others:
            notes.append(f"volume {path} kept: in use by {', '.join(map(str, others))}")
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
