"""The libvirt provider: observe a host in bulk, apply one change at a time, idempotently.

Every step looks at the host before it acts (does the volume exist? is the domain defined?
running?), so an apply killed half way is finished by the next run rather than repeated.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import libvirt

from reconciler.model.fields import desired_fields, spec_hash
from reconciler.model.kinds import (
    Container,
    Network,
    StoragePool,
    Template,
    VirtualMachine,
)
from reconciler.model.plan import Action, Change, Disruption
from reconciler.model.quantity import format_quantity
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.providers.base import (
    ApplyContext,
    HostFacts,
    NotOwnedError,
    Observation,
    Observed,
    ProviderError,
    Stamp,
    UnsupportedError,
)
from reconciler.providers.libvirt import events
from reconciler.providers.libvirt import xml as lx
from reconciler.providers.libvirt.embedded import EmbeddedHost
from reconciler.providers.secrets import resolve_secret

T = TypeVar("T")

# libvirt prints every error to stderr by default; recon reports them itself.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE
CONFIG = libvirt.VIR_DOMAIN_AFFECT_CONFIG
HOST_POLICY = ResourceRef("HostPolicy", "")

_DRIVERS = {"TEST": "test", "QEMU": "qemu", "LXC": "lxc", "VZ": "vz", "PARALLELS": "vz"}
# live-memory: balloon down live; memory-hotplug: grow live within maxMemory (DIMM hotplug
# on QEMU, which recon does not drive yet; a cgroup limit on containers).
_CAPABILITIES: dict[str, dict[str, bool]] = {
    # What each driver can change on a running guest or on storage; see docs/plan.md.
    "test": {
        "live-memory": True,
        "memory-hotplug": False,
        "live-vcpus": True,
        "volume-resize": False,
        "volume-upload": False,
        "ksm": False,
        "guest-password": True,
    },
    "qemu": {
        "live-memory": True,
        "memory-hotplug": False,
        "live-vcpus": True,
        "volume-resize": True,
        "volume-upload": True,
        "ksm": False,
        "guest-password": True,
    },
    "lxc": {
        "live-memory": True,
        "memory-hotplug": True,
        "live-vcpus": False,
        "volume-resize": True,
        "volume-upload": True,
        "ksm": False,
        "guest-password": False,
    },
    "vz": {
        "live-memory": True,
        "memory-hotplug": True,
        "live-vcpus": True,
        "volume-resize": True,
        "volume-upload": True,
        "ksm": False,
        "guest-password": True,
    },
}


@contextmanager
def _host_errors(what: str) -> Iterator[None]:
    try:
        yield
    except libvirt.libvirtError as exc:
        code = exc.get_error_code()
        message = f"{what}: {exc.get_error_message() or exc}"
        if code == libvirt.VIR_ERR_NO_SUPPORT:
            raise UnsupportedError(message) from None
        raise ProviderError(message) from None


def _lookup(fn: Callable[[str], T], name: str) -> T | None:
    try:
        return fn(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() in (
            libvirt.VIR_ERR_NO_DOMAIN,
            libvirt.VIR_ERR_NO_NETWORK,
            libvirt.VIR_ERR_NO_STORAGE_POOL,
            libvirt.VIR_ERR_NO_STORAGE_VOL,
        ):
            return None
        raise


def make_stamp(resource: Resource, context: ApplyContext) -> Stamp:
    fields = desired_fields(resource.manifest)
    return Stamp(
        file=resource.file,
        spec_hash=spec_hash(fields),
        applied=fields,
        revision=context.revision,
        set_name=context.set_name,
    )


class LibvirtProvider:
    name = "libvirt"

    def __init__(self, uri: str | None = None, home: Path | None = None) -> None:
        from reconciler.providers.libvirt.embedded import default_home

        self.embedded: EmbeddedHost | None = None
        with _host_errors(f"cannot connect to {uri or 'the embedded host'}"):
            if uri is None:
                self.embedded = EmbeddedHost((home or default_home()) / "host.xml")
                self.conn = self.embedded.open()
                self.uri = self.embedded.uri
            else:
                self.conn = libvirt.open(uri)
                self.uri = uri
        self.driver = self._driver()

    def _driver(self) -> str:
        name = str(self.conn.getType())
        kind = _DRIVERS.get(name.upper(), name.lower())
        if kind == "qemu" and os.access("/dev/kvm", os.R_OK | os.W_OK):
            return "kvm"
        return kind

    @property
    def capabilities(self) -> dict[str, bool]:
        return dict(_CAPABILITIES.get("qemu" if self.driver == "kvm" else self.driver, {}))

    def subscribe(self, notify: Callable[[str], None]) -> Callable[[], None]:
        """Call notify (from another thread) when the host changes; returns a stop function."""
        if self.embedded is not None:
            return events.watch_node_file(self.embedded.path, notify)
        return events.watch_libvirt(self.uri, notify)

    def close(self) -> None:
        if self.embedded is not None:
            self.embedded.flush(self.conn)
        self.conn.close()

    # --- observe -----------------------------------------------------------------------------

    def observe(self) -> Observation:
        with _host_errors("cannot read the host"):
            info = self.conn.getInfo()
            host = HostFacts(
                uri=self.uri,
                hostname=self.conn.getHostname(),
                driver=self.driver,
                memory_bytes=info[1] * 1024 * 1024,
                cpus=info[2],
                capabilities=self.capabilities,
            )
            objects: dict[ResourceRef, Observed] = {}
            volumes = self._observe_pools(objects)
            self._observe_networks(objects)
            self._observe_domains(objects, volumes)
        return Observation(host=host, objects=objects)

    def _observe_pools(
        self, objects: dict[ResourceRef, Observed]
    ) -> dict[str, tuple[str, lx.ParsedVolume]]:
        """Pools, their volumes (by path), and the Templates recorded in pool stamps."""
        by_path: dict[str, tuple[str, lx.ParsedVolume]] = {}
        for pool in self.conn.listAllStoragePools(0):
            parsed = lx.parse_pool(self._pool_xml(pool))
            fields = dict(parsed.fields)
            fields["autostart"] = bool(pool.autostart())
            ref = ResourceRef("StoragePool", parsed.name)
            objects[ref] = Observed(
                ref, fields, parsed.stamp, uuid=parsed.uuid, extra={"templates": parsed.templates}
            )
            names: set[str] = set()
            if pool.isActive():
                for vol in pool.listAllVolumes(0):
                    pv = lx.parse_volume(vol.XMLDesc(0))
                    by_path[pv.path] = (parsed.name, pv)
                    names.add(pv.name)
            for tname, tstamp in parsed.templates.items():
                fmt = tstamp.applied.get("format", "qcow2")
                if lx.template_volume_name(tname, fmt) not in names:
                    continue  # its image is gone: the Template must be created again
                tref = ResourceRef("Template", tname)
                objects[tref] = Observed(tref, {"pool": parsed.name, "format": fmt}, tstamp)
        return by_path

    def _observe_networks(self, objects: dict[ResourceRef, Observed]) -> None:
        for net in self.conn.listAllNetworks(0):
            parsed = lx.parse_network(net.XMLDesc(0))
            fields = dict(parsed.fields)
            fields["autostart"] = bool(net.autostart())
            ref = ResourceRef("Network", parsed.name)
            objects[ref] = Observed(ref, fields, parsed.stamp, uuid=parsed.uuid)

    def _observe_domains(
        self, objects: dict[ResourceRef, Observed], volumes: dict[str, tuple[str, lx.ParsedVolume]]
    ) -> None:
        active = {
            d.name() for d in self.conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
        }
        autostart = {
            d.name() for d in self.conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_AUTOSTART)
        }
        for dom in self.conn.listAllDomains(0):
            parsed = lx.parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            running = parsed.name in active
            fields = dict(parsed.fields)
            memory = parsed.memory_bytes
            if running:
                # What the guest has now, not what it will have after a restart.
                live = lx.parse_domain(dom.XMLDesc(0))
                for key in ("memory", "cpus"):
                    if key in live.fields:
                        fields[key] = live.fields[key]
                memory = live.memory_bytes
            fields["state"] = "Running" if running else "Stopped"
            fields["autostart"] = parsed.name in autostart
            fields["uuid"] = parsed.uuid
            for disk, path in parsed.disk_paths.items():
                hit = volumes.get(path)
                if hit is None:
                    continue
                prefix = "disk" if parsed.kind == "Container" else f"disks[{disk}]"
                fields[f"{prefix}.size"] = format_quantity(hit[1].capacity)
                fields[f"{prefix}.pool"] = hit[0]
            kind = parsed.kind or "VirtualMachine"
            ref = ResourceRef(kind, parsed.name)
            guaranteed = parsed.guarantee_bytes
            if parsed.stamp is not None:
                pct = str(parsed.stamp.applied.get("memoryGuarantee", "0%")).rstrip("%")
                guaranteed = memory * int(pct) // 100 if pct.isdigit() else guaranteed
            objects[ref] = Observed(
                ref,
                fields,
                parsed.stamp,
                uuid=parsed.uuid,
                running=running,
                guaranteed_bytes=guaranteed,
                memory_bytes=memory,
            )

    # --- apply -------------------------------------------------------------------------------

    def apply(self, change: Change, resource: Resource | None, context: ApplyContext) -> str:
        handler = {
            "StoragePool": self._apply_pool,
            "Network": self._apply_network,
            "Template": self._apply_template,
            "VirtualMachine": self._apply_guest,
            "Container": self._apply_guest,
            "HostPolicy": self._apply_host_policy,
        }[change.ref.kind]
        try:
            with _host_errors(f"{change.ref}"):
                return handler(change, resource, context)
        finally:
            if self.embedded is not None:
                self.embedded.changed(self.conn)

    def _check_owned(self, ref: ResourceRef, stamp: Stamp | None, context: ApplyContext) -> None:
        obs = context.observation.objects.get(ref)
        adopting = obs is not None and not obs.owned
        if stamp is None and not adopting:
            raise NotOwnedError(
                f"{ref} exists on the host but was not created by recon",
                "take it over with --adopt, or remove it yourself",
            )

    # pools

    def _apply_pool(self, change: Change, resource: Resource | None, context: ApplyContext) -> str:
        name = change.ref.name
        pool = _lookup(self.conn.storagePoolLookupByName, name)
        if change.action is Action.DELETE:
            if pool is None:
                return "already gone"
            self._check_owned(change.ref, lx.parse_pool(self._pool_xml(pool)).stamp, context)
            if pool.isActive() and pool.listAllVolumes(0):
                raise ProviderError(
                    f"{change.ref} still holds volumes; not deleted",
                    "delete its guests' volumes first (--delete-volumes)",
                )
            if pool.isActive():
                pool.destroy()
            pool.undefine()
            return "deleted"
        assert resource is not None and isinstance(resource.manifest, StoragePool)
        templates: dict[str, Stamp] = {}
        existing_uuid: str | None = None
        if pool is not None:
            parsed = lx.parse_pool(self._pool_xml(pool))
            if change.action is not Action.CREATE or parsed.stamp is None:
                self._check_owned(change.ref, parsed.stamp, context)
            templates, existing_uuid = parsed.templates, parsed.uuid
            if change.action is Action.REPLACE:
                if pool.isActive() and pool.listAllVolumes(0):
                    raise ProviderError(f"{change.ref} holds volumes; it cannot be replaced")
                if pool.isActive():
                    pool.destroy()
                pool.undefine()
                pool, existing_uuid = None, None
        stamp = make_stamp(resource, context)
        xml_text = lx.build_pool(
            resource.manifest, uuid=existing_uuid, stamp=stamp, templates=templates
        )
        pool = self._define_pool(xml_text)
        if not pool.isActive():
            if self.driver != "test":
                pool.build(libvirt.VIR_STORAGE_POOL_BUILD_NO_OVERWRITE)
            pool.create(0)
        pool.setAutostart(1 if resource.manifest.spec.autostart else 0)
        return "defined and started" if change.action is Action.CREATE else "updated"

    def _pool_xml(self, pool: libvirt.virStoragePool) -> str:
        """The persistent definition: what a redefinition changed, even while active."""
        if self.driver == "test":  # the test driver has one definition and no INACTIVE flag
            return str(pool.XMLDesc(0))
        return str(pool.XMLDesc(libvirt.VIR_STORAGE_XML_INACTIVE))

    def _define_pool(self, xml_text: str) -> libvirt.virStoragePool:
        """Define or redefine a pool. The test driver parks a redefinition of an active pool
        where nothing reads it, so there the pool is cycled; its volumes (metadata only on
        that driver) are put back as they were."""
        pool = _lookup(self.conn.storagePoolLookupByName, lx.parse_pool(xml_text).name)
        if self.driver != "test" or pool is None or not pool.isActive():
            return self.conn.storagePoolDefineXML(xml_text, 0)
        volumes = [vol.XMLDesc(0) for vol in pool.listAllVolumes(0)]
        autostart = pool.autostart()
        pool.destroy()
        pool = self.conn.storagePoolDefineXML(xml_text, 0)
        pool.create(0)
        pool.setAutostart(autostart)
        existing = set(pool.listVolumes())
        for vol_xml in volumes:
            if lx.parse_volume(vol_xml).name not in existing:
                pool.createXML(vol_xml, 0)
        return pool

    def _set_template_stamp(self, pool_name: str, template: str, stamp: Stamp | None) -> None:
        pool = self.conn.storagePoolLookupByName(pool_name)
        parsed = lx.parse_pool(self._pool_xml(pool))
        if parsed.stamp is None:
            raise NotOwnedError(
                f"StoragePool/{pool_name} is not managed by recon; templates live in recon's pools"
            )
        templates = dict(parsed.templates)
        if stamp is None:
            templates.pop(template, None)
        else:
            templates[template] = stamp
        self._define_pool(lx.build_pool_from_parsed(parsed, templates=templates))

    # networks

    def _apply_network(
        self, change: Change, resource: Resource | None, context: ApplyContext
    ) -> str:
        net = _lookup(self.conn.networkLookupByName, change.ref.name)
        if change.action is Action.DELETE or change.action is Action.REPLACE:
            if net is not None:
                self._check_owned(change.ref, lx.parse_network(net.XMLDesc(0)).stamp, context)
                if net.isActive():
                    net.destroy()
                net.undefine()
                net = None
            if change.action is Action.DELETE:
                return "deleted"
        assert resource is not None and isinstance(resource.manifest, Network)
        existing_uuid = None
        if net is not None:
            parsed = lx.parse_network(net.XMLDesc(0))
            self._check_owned(change.ref, parsed.stamp, context)
            existing_uuid = parsed.uuid
        xml_text = lx.build_network(
            resource.manifest, uuid=existing_uuid, stamp=make_stamp(resource, context)
        )
        net = self.conn.networkDefineXML(xml_text)
        if not net.isActive():
            net.create()
        net.setAutostart(1 if resource.manifest.spec.autostart else 0)
        return "defined and started" if change.action is not Action.UPDATE else "updated"

    # templates

    def _apply_template(
        self, change: Change, resource: Resource | None, context: ApplyContext
    ) -> str:
        if change.action in (Action.DELETE, Action.REPLACE):
            obs = context.observation.objects.get(change.ref)
            if obs is not None and obs.stamp is not None:
                pool_name = str(obs.fields["pool"])
                pool = _lookup(self.conn.storagePoolLookupByName, pool_name)
                if pool is not None:
                    vol = _lookup(
                        pool.storageVolLookupByName,
                        lx.template_volume_name(change.ref.name, str(obs.fields["format"])),
                    )
                    if vol is not None:
                        vol.delete(0)
                    self._set_template_stamp(pool_name, change.ref.name, None)
            if change.action is Action.DELETE:
                return "image deleted"
        assert resource is not None and isinstance(resource.manifest, Template)
        spec = resource.manifest.spec
        source = Path(spec.source.file.path)
        if not source.is_absolute():
            source = Path(resource.file).parent / source
        size = _verify_sha256(source, spec.source.file.sha256)
        pool = self.conn.storagePoolLookupByName(spec.pool)
        vol_name = lx.template_volume_name(resource.ref.name, spec.format)
        vol = _lookup(pool.storageVolLookupByName, vol_name)
        note = ""
        if vol is None:
            fmt = "qcow2" if spec.format == "qcow2" else "raw"
            vol = pool.createXML(lx.build_volume(vol_name, capacity=size, fmt=fmt), 0)
            if self.capabilities.get("volume-upload"):
                _upload(self.conn, vol, source, size)
            else:
                note = " (this host keeps no volume contents: image not uploaded)"
        self._set_template_stamp(spec.pool, resource.ref.name, make_stamp(resource, context))
        return ("image created" if change.action is not Action.UPDATE else "updated") + note

    # guests

    def _guest_volumes(self, resource: Resource) -> dict[str, lx.DiskVolume]:
        """Create what is missing: each disk's volume (with its template as backing file)."""
        manifest = resource.manifest
        out: dict[str, lx.DiskVolume] = {}
        wanted: list[tuple[str, str, int, str | None, str]] = []
        if isinstance(manifest, VirtualMachine):
            for disk in manifest.spec.disks:
                wanted.append((disk.name, disk.pool, disk.size, disk.template, disk.format))
        elif isinstance(manifest, Container):
            wanted.append(("root", manifest.spec.disk.pool, manifest.spec.disk.size, None, "raw"))
        for disk_name, pool_name, size, template, fmt in wanted:
            pool = self.conn.storagePoolLookupByName(pool_name)
            vol_name = lx.volume_name(resource.ref.name, disk_name, fmt)
            vol = _lookup(pool.storageVolLookupByName, vol_name)
            if vol is None:
                backing = self._template_volume(template) if template else None
                vol = pool.createXML(
                    lx.build_volume(vol_name, capacity=size, fmt=fmt, backing=backing), 0
                )
            else:
                capacity = vol.info()[1]
                if size > capacity:
                    vol.resize(size, 0)
            out[disk_name] = lx.DiskVolume(pool_name, vol_name, vol.path(), fmt)
        return out

    def _template_volume(self, template: str) -> lx.DiskVolume:
        for pool in self.conn.listAllStoragePools(0):
            parsed = lx.parse_pool(self._pool_xml(pool))
            if template in parsed.templates:
                vol_name = lx.template_volume_name(template, "qcow2")
                vol = pool.storageVolLookupByName(vol_name)
                return lx.DiskVolume(parsed.name, vol_name, vol.path(), "qcow2")
        raise ProviderError(f"Template/{template} has no image on the host")

    def _delete_guest(
        self,
        dom: libvirt.virDomain,
        resource_name: str,
        delete_volumes: bool,
        only_disks: set[str] | None = None,
    ) -> None:
        parsed = lx.parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        if dom.isActive():
            dom.destroy()
        flags = libvirt.VIR_DOMAIN_UNDEFINE_NVRAM if self.driver in ("qemu", "kvm") else 0
        dom.undefine() if flags == 0 else dom.undefineFlags(flags)
        if not delete_volumes and only_disks is None:
            return
        for disk, path in parsed.disk_paths.items():
            if only_disks is not None and disk not in only_disks:
                continue
            try:
                self.conn.storageVolLookupByPath(path).delete(0)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                    raise

    def _apply_guest(self, change: Change, resource: Resource | None, context: ApplyContext) -> str:
        dom = _lookup(self.conn.lookupByName, change.ref.name)
        if change.action is Action.DELETE:
            if dom is None:
                return "already gone"
            self._check_owned(change.ref, lx.parse_domain(dom.XMLDesc(0)).stamp, context)
            self._delete_guest(dom, change.ref.name, context.delete_volumes)
            return "deleted" + (
                " with its volumes" if context.delete_volumes else " (volumes kept)"
            )
        assert resource is not None
        manifest = resource.manifest
        assert isinstance(manifest, VirtualMachine | Container)
        existing_uuid: str | None = None
        if dom is not None:
            parsed = lx.parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            if change.action is not Action.CREATE or parsed.stamp is None:
                self._check_owned(change.ref, parsed.stamp, context)
            existing_uuid = parsed.uuid
            if change.action is Action.REPLACE:
                # Disks whose identity changed (template, pool, format) are rebuilt.
                rebuilt = {
                    f.path.split("]")[0].removeprefix("disks[")
                    for f in change.fields
                    if f.disruption is Disruption.REPLACE and f.path.startswith("disks[")
                }
                if any(f.path in ("template", "disk.pool") for f in change.fields):
                    rebuilt.add("root")
                self._delete_guest(dom, change.ref.name, False, rebuilt)
                dom, existing_uuid = None, None
        uuid = manifest.spec.uuid or existing_uuid or str(uuidlib.uuid4())
        volumes = self._guest_volumes(resource)
        stamp = make_stamp(resource, context)
        was_running = dom is not None and bool(dom.isActive())
        dom = self.conn.defineXML(
            lx.build_domain(manifest, uuid=uuid, stamp=stamp, volumes=volumes, driver=self.driver)
        )
        notes: list[str] = []
        if was_running:
            notes += self._live_changes(dom, change, manifest)
        dom.setAutostart(1 if manifest.spec.autostart else 0)
        want_running = manifest.spec.state == "Running"
        if was_running and change.disruption is Disruption.RESTART and want_running:
            self._shutdown(dom, context)
            dom.create()
            notes.append("restarted")
        elif want_running and not dom.isActive():
            dom.create()
            notes.append("started")
        elif not want_running and dom.isActive():
            self._shutdown(dom, context)
            notes.append("stopped")
        if dom.isActive():
            notes += self._guest_settings(dom, resource, change)
        verb = {Action.CREATE: "defined", Action.REPLACE: "replaced"}.get(change.action, "updated")
        return ", ".join([verb, *notes])

    def _live_changes(
        self, dom: libvirt.virDomain, change: Change, manifest: VirtualMachine | Container
    ) -> list[str]:
        notes = []
        for f in change.fields:
            if f.disruption is not Disruption.LIVE:
                continue
            if f.path == "memory":
                kib = manifest.spec.memory // 1024
                dom.setMemoryFlags(kib, LIVE)
                got = lx.parse_domain(dom.XMLDesc(0)).memory_bytes
                if got != manifest.spec.memory:
                    raise ProviderError(
                        f"memory: the host reports {format_quantity(got)} "
                        f"after asking for {format_quantity(manifest.spec.memory)}"
                    )
                notes.append(f"memory {f.before} -> {f.after} live")
            elif f.path == "cpus":
                dom.setVcpusFlags(manifest.spec.cpus, LIVE)
                got_cpus = lx.parse_domain(dom.XMLDesc(0)).fields.get("cpus")
                if got_cpus != manifest.spec.cpus:
                    raise ProviderError(
                        f"cpus: the host reports {got_cpus} after asking for {manifest.spec.cpus}"
                    )
                notes.append(f"cpus {f.before} -> {f.after} live")
        return notes

    def _guest_settings(
        self, dom: libvirt.virDomain, resource: Resource, change: Change
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
            if not self.capabilities.get("guest-password"):
                notes.append(f"password of {user.name} not set: this host has no guest agent")
                continue
            value = resolve_secret(user.password, Path(resource.file).parent)
            try:
                dom.setUserPassword(user.name, value, 0)
            except libvirt.libvirtError as exc:
                # The message can never contain the value: libvirt does not echo it.
                raise ProviderError(
                    f"setting the password of {user.name} failed: {exc.get_error_message()}"
                ) from None
            notes.append(f"password of {user.name} set")
        return notes

    def _shutdown(self, dom: libvirt.virDomain, context: ApplyContext) -> None:
        """Clean shutdown first; forced off after the timeout, and said so."""
        with suppress(libvirt.libvirtError):
            dom.shutdown()
        deadline = time.monotonic() + context.shutdown_timeout
        while dom.isActive() and time.monotonic() < deadline:
            time.sleep(0.2)
        if dom.isActive():
            context.progress(
                f"{dom.name()}: no clean shutdown after "
                f"{context.shutdown_timeout:.0f}s; forcing it off"
            )
            dom.destroy()

    def _apply_host_policy(
        self, change: Change, resource: Resource | None, context: ApplyContext
    ) -> str:
        raise UnsupportedError("KSM settings are not supported by this host")


def _verify_sha256(path: Path, expected: str) -> int:
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
    except OSError as exc:
        raise ProviderError(f"cannot read template image {path}: {exc.strerror}") from None
    if digest.hexdigest() != expected:
        raise ProviderError(
            f"template image {path} does not match its sha256",
            "update spec.source.file.sha256, or restore the file",
        )
    return size


def _upload(conn: libvirt.virConnect, vol: libvirt.virStorageVol, path: Path, size: int) -> None:
    stream = conn.newStream(0)
    vol.upload(stream, 0, size, 0)
    with path.open("rb") as fh:

        def reader(_stream: Any, nbytes: int, _opaque: Any) -> bytes:
            return fh.read(nbytes)

        stream.sendAll(reader, None)
    stream.finish()
