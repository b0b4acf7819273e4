"""The libvirt provider: observe a host in bulk, apply one change at a time, idempotently.

Every step looks at the host before it acts (does the volume exist? is the domain defined?
running?), so an apply killed half way is finished by the next run rather than repeated.
"""

from __future__ import annotations

import hashlib
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import libvirt

from reconciler.model.capabilities import CAPABILITIES, family
from reconciler.model.fields import spec_hash
from reconciler.model.kinds import (
    Container,
    HostPolicy,
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
from reconciler.providers.libvirt import host as lh
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
# DIMM sizes QEMU accepts on x86 without libvirt rounding them up: growing by anything else
# would leave the guest with more memory than the manifest says.
_DIMM_ALIGN = 2 * 1024 * 1024
# What the test driver keeps only in a running guest's definition.
_DEFINITION_ONLY = ("memoryGuarantee", "swap")
# How long an unanswered guest agent is waited for after a start: a guest OS takes this long
# to boot far enough to run qemu-guest-agent.
_AGENT_WAIT = 30.0


@contextmanager
def _host_errors(what: str) -> Iterator[None]:
    try:
        yield
    except libvirt.libvirtError as exc:
        code = exc.get_error_code()
        message = f"{what}: {exc.get_error_message() or exc}"
        if code == libvirt.VIR_ERR_NO_SUPPORT:
            raise UnsupportedError(message) from None
        if exc.get_error_domain() == libvirt.VIR_FROM_RPC:
            # Said in the message itself: an apply's summary shows the message only.
            raise ProviderError(
                f"{message} (the connection to libvirtd was lost: start libvirtd again "
                "and rerun; it continues from where the host is)"
            ) from None
        raise ProviderError(message) from None


@contextmanager
def _undefine_on_error(obj: Any) -> Iterator[None]:
    """A network or pool recon has just defined and cannot start is undefined again: left
    defined and inactive, it would look done to the next run, which would never start it."""
    try:
        yield
    except libvirt.libvirtError:
        if obj is not None:
            with suppress(libvirt.libvirtError):
                obj.undefine()
        raise


_GONE = (
    libvirt.VIR_ERR_NO_DOMAIN,
    libvirt.VIR_ERR_NO_NETWORK,
    libvirt.VIR_ERR_NO_STORAGE_POOL,
    libvirt.VIR_ERR_NO_STORAGE_VOL,
)


@contextmanager
def _unless_vanished() -> Iterator[None]:
    """Skip an object deleted by someone else between the bulk list and its own read: on a
    host others use, that happens, and it is not an error of the observation."""
    try:
        yield
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in _GONE:
            raise


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


@dataclass(frozen=True, slots=True)
class _DomainRead:
    definition_text: str
    definition: lx.ParsedDomain
    live_text: str  # "" when the domain does not run
    live: lx.ParsedDomain | None


# Domains parsed by the last observation of a reusing provider in this process, by the text of
# their XML (parse_domain depends on nothing else). A loop that opens the embedded host again,
# because another process wrote it, then parses only the domains whose XML differs.
_RECENT_PARSES: dict[str, lx.ParsedDomain] = {}


def _leaves_storage(change: Change) -> bool:
    """Whether a change cannot have touched a pool, volume or network: a guest's update
    that changes none of its disks (a missing volume shows as a disk change too)."""
    return (
        change.ref.kind in ("VirtualMachine", "Container")
        and change.action is Action.UPDATE
        and not any(f.path.startswith(("disks[", "disk.")) for f in change.fields)
    )


def make_stamp(resource: Resource, context: ApplyContext) -> Stamp:
    fields = resource.desired_fields()
    return Stamp(
        file=resource.file,
        spec_hash=resource.desired_hash(),
        applied=fields,
        revision=context.revision,
        set_name=context.set_name,
    )


class LibvirtProvider:
    name = "libvirt"

    def __init__(
        self, uri: str | None = None, home: Path | None = None, *, reuse: bool = False
    ) -> None:
        """`reuse`: this provider serves many passes (a control loop) rather than one command.
        On the embedded host it then keeps the domains it parsed between observations: the
        test driver runs inside this process, so a domain's definition changes only through
        this provider's own apply, which marks it to be read again."""
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
        self.local = self.embedded is None and lh.is_local(self.uri)
        # name -> what the last observation read of it.
        self._parsed: dict[str, _DomainRead] | None = (
            {} if reuse and self.embedded is not None else None
        )
        self._touched: set[str] | None = set()  # None: any domain may have changed
        # pool name -> its volumes, as last observed; emptied by any change that may
        # create, resize or delete a volume.
        self._volumes: dict[str, list[lx.ParsedVolume]] | None = (
            {} if reuse and self.embedded is not None else None
        )
        with _host_errors(f"cannot read the capabilities of {self.uri}"):
            self.driver, self._caps = self._driver_and_capabilities()

    def _driver_and_capabilities(self) -> tuple[str, dict[str, bool]]:
        name = str(self.conn.getType())
        kind = _DRIVERS.get(name.upper(), name.lower())
        caps = dict(CAPABILITIES.get(family(kind), {}))
        if kind == "qemu":
            # KVM only when libvirt says QEMU can use it: /dev/kvm existing is not enough
            # (QEMU runs as another user, who may not be allowed to open it).
            domcaps = self._domain_capabilities("kvm")
            if domcaps is not None and domcaps.virttype == "kvm":
                kind = "kvm"
            else:
                domcaps = self._domain_capabilities("qemu")
            caps["efi-firmware"] = domcaps is not None and domcaps.efi
        if caps.get("ksm"):
            caps["ksm"] = self._ksm_parameters() is not None
        return kind, caps

    def _domain_capabilities(self, virttype: str) -> lx.DomainCapabilities | None:
        try:
            text = self.conn.getDomainCapabilities(None, None, None, virttype, 0)
        except libvirt.libvirtError:
            return None  # libvirt's way of saying this virttype cannot run here
        return lx.parse_domain_capabilities(text)

    def _ksm_parameters(self) -> dict[str, Any] | None:
        try:
            params: dict[str, Any] = self.conn.getMemoryParameters(0)
        except libvirt.libvirtError:
            return None
        return params if "shm_pages_to_scan" in params else None

    @property
    def capabilities(self) -> dict[str, bool]:
        return dict(self._caps)

    def subscribe(self, notify: Callable[[str], None]) -> Callable[[], None]:
        """Call notify (from another thread) when the host changes; returns a stop function."""
        if self.embedded is not None:
            return events.watch_node_file(self.embedded.path, notify)
        return events.watch_libvirt(self.uri, notify)

    def current(self) -> bool:
        if self.embedded is not None:
            return self.embedded.current()
        try:
            return bool(self.conn.isAlive())
        except libvirt.libvirtError:
            return False

    def flush(self) -> None:
        if self.embedded is not None:
            with _host_errors("cannot save the embedded host"):
                self.embedded.flush(self.conn)

    def close(self) -> None:
        self.flush()
        # A daemon that died under an apply has already been reported as that change's
        # failure; closing its dead connection must not turn into a second, raw error.
        with suppress(libvirt.libvirtError):
            self.conn.close()

    # --- observe -----------------------------------------------------------------------------

    def observe(self) -> Observation:
        with _host_errors("cannot read the host"):
            info = self.conn.getInfo()
            stats = self._memory_stats()
            host = HostFacts(
                uri=self.uri,
                hostname=self.conn.getHostname(),
                driver=self.driver,
                # The kernel's MemTotal where libvirt reports it: getInfo() adds up the NUMA
                # nodes' memory, which misses memory a VM host added later (seen here: 4.8 GiB
                # in node0 of a machine with 23.5 GiB).
                memory_bytes=int(stats["total"]) * 1024 if "total" in stats else info[1] << 20,
                cpus=info[2],
                capabilities=self.capabilities,
            )
            objects: dict[ResourceRef, Observed] = {}
            volumes = self._observe_pools(objects)
            self._observe_networks(objects)
            self._observe_domains(objects, volumes)
            objects[HOST_POLICY] = self._observe_host(stats)
        return Observation(host=host, objects=objects)

    def _memory_stats(self) -> dict[str, int]:
        """Node memory in KiB (total, free, buffers, cached); empty on the test driver."""
        try:
            stats: dict[str, int] = self.conn.getMemoryStats(
                libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0
            )
        except libvirt.libvirtError:
            return {}
        return stats

    def _observe_host(self, stats: dict[str, int] | None = None) -> Observed:
        """The host itself: its KSM settings (compared with a HostPolicy) and, for
        `recon get -o wide`, the memory available now."""
        fields: dict[str, Any] = {}
        params = self._ksm_parameters() if self._caps.get("ksm") else None
        if params is not None:
            fields["ksm.pagesToScan"] = int(params["shm_pages_to_scan"])
            fields["ksm.sleepMillisecs"] = int(params["shm_sleep_millisecs"])
            if "shm_merge_across_nodes" in params:
                fields["ksm.mergeAcrossNodes"] = bool(params["shm_merge_across_nodes"])
            enabled = lh.ksm_enabled() if self.local else None
            if enabled is not None:
                fields["ksm.enabled"] = enabled
        extra: dict[str, Any] = {}
        stats = self._memory_stats() if stats is None else stats
        if "free" in stats:
            kib = sum(int(stats.get(k, 0)) for k in ("free", "buffers", "cached"))
            extra["memory_available"] = kib * 1024
        return Observed(HOST_POLICY, fields, None, extra=extra)

    def _observe_pools(
        self, objects: dict[ResourceRef, Observed]
    ) -> dict[str, tuple[str, lx.ParsedVolume]]:
        """Pools, their volumes (by path), and the Templates recorded in pool stamps."""
        by_path: dict[str, tuple[str, lx.ParsedVolume]] = {}
        for pool in self.conn.listAllStoragePools(0):
            with _unless_vanished():
                self._observe_pool(pool, objects, by_path)
        return by_path

    def _observe_pool(
        self,
        pool: libvirt.virStoragePool,
        objects: dict[ResourceRef, Observed],
        by_path: dict[str, tuple[str, lx.ParsedVolume]],
    ) -> None:
        parsed = lx.parse_pool(self._pool_xml(pool))
        fields = dict(parsed.fields)
        fields["autostart"] = bool(pool.autostart())
        ref = ResourceRef("StoragePool", parsed.name)
        objects[ref] = Observed(
            ref, fields, parsed.stamp, uuid=parsed.uuid, extra={"templates": parsed.templates}
        )
        names: set[str] = set()
        if pool.isActive():
            for pv in self._pool_volumes(pool, parsed.name):
                by_path[pv.path] = (parsed.name, pv)
                names.add(pv.name)
        for tname, tstamp in parsed.templates.items():
            fmt = tstamp.applied.get("format", "qcow2")
            if lx.template_volume_name(tname, fmt) not in names:
                continue  # its image is gone: the Template must be created again
            tref = ResourceRef("Template", tname)
            objects[tref] = Observed(tref, {"pool": parsed.name, "format": fmt}, tstamp)

    def _pool_volumes(self, pool: libvirt.virStoragePool, name: str) -> list[lx.ParsedVolume]:
        kept = self._volumes.get(name) if self._volumes is not None else None
        if kept is not None:
            return kept
        found = []
        for vol in pool.listAllVolumes(0):
            with _unless_vanished():
                found.append(lx.parse_volume(vol.XMLDesc(0)))
        if self._volumes is not None:
            self._volumes[name] = found
        return found

    def _observe_networks(self, objects: dict[ResourceRef, Observed]) -> None:
        for net in self.conn.listAllNetworks(0):
            with _unless_vanished():
                parsed = lx.parse_network(net.XMLDesc(0))
                fields = dict(parsed.fields)
                fields["autostart"] = bool(net.autostart())
                ref = ResourceRef("Network", parsed.name)
                objects[ref] = Observed(ref, fields, parsed.stamp, uuid=parsed.uuid)

    def _observe_domains(
        self, objects: dict[ResourceRef, Observed], volumes: dict[str, tuple[str, lx.ParsedVolume]]
    ) -> None:
        domains = self.conn.listAllDomains(0)
        if self.embedded is not None:
            # In-process, asking each domain costs less than two more lists of them all.
            active = {d.name() for d in domains if d.isActive()}
            autostart = {d.name() for d in domains if d.autostart()}
        else:
            # One round trip each, rather than two per domain.
            flags = (
                libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE,
                libvirt.VIR_CONNECT_LIST_DOMAINS_AUTOSTART,
            )
            active, autostart = ({d.name() for d in self.conn.listAllDomains(f)} for f in flags)
        keep = self._parsed is not None
        reads: dict[str, _DomainRead] = {}
        for dom in domains:
            with _unless_vanished():
                name = dom.name()
                running = name in active
                read = self._read_domain(dom, name, running)
                if keep:
                    reads[name] = read
                self._observe_domain(read, objects, volumes, running, autostart)
        if keep:
            self._parsed, self._touched = reads, set()
            _RECENT_PARSES.clear()
            for read in reads.values():
                _RECENT_PARSES[read.definition_text] = read.definition
                if read.live is not None:
                    _RECENT_PARSES[read.live_text] = read.live

    def _read_domain(self, dom: libvirt.virDomain, name: str, running: bool) -> _DomainRead:
        """A domain's definition and, when it runs, what it runs now: what the guest has,
        not what it will have after a restart. A definition changed without the restart it
        needs (an apply cut short while it waited for the guest to shut down) is still a
        difference, and the rerun restarts it."""
        if self._parsed is not None and self._touched is not None and name not in self._touched:
            kept = self._parsed.get(name)
            if kept is not None and (kept.live is not None) == running:
                return kept
        text = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        if self.embedded is not None:
            self.embedded.remember(name, text)
        live_text = dom.XMLDesc(0) if running else ""
        return _DomainRead(
            text,
            self._parse_domain(text),
            live_text,
            self._parse_domain(live_text) if running else None,
        )

    def _parse_domain(self, text: str) -> lx.ParsedDomain:
        if self._parsed is not None:
            known = _RECENT_PARSES.get(text)
            if known is not None:
                return known
        return lx.parse_domain(text)

    def _observe_domain(
        self,
        read: _DomainRead,
        objects: dict[ResourceRef, Observed],
        volumes: dict[str, tuple[str, lx.ParsedVolume]],
        running: bool,
        autostart: set[str],
    ) -> None:
        parsed, live = read.definition, read.live
        # The stamp stays the definition's: it records what was applied.
        now = live or parsed
        fields = dict(now.fields)
        memory = now.memory_bytes
        if live is not None and self.driver == "test":
            # The test driver changes a running guest's <memtune> only in its definition
            # (it has no live call for it), and that definition is what holds it there.
            for key in _DEFINITION_ONLY:
                if key in parsed.fields:
                    fields[key] = parsed.fields[key]
                else:
                    fields.pop(key, None)
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
        guaranteed, how = self._observe_guarantee(parsed, running, memory, fields)
        objects[ref] = Observed(
            ref,
            fields,
            parsed.stamp,
            uuid=parsed.uuid,
            running=running,
            guaranteed_bytes=guaranteed,
            memory_bytes=memory,
            extra={"guarantee": how},
        )

    def _observe_guarantee(
        self, parsed: lx.ParsedDomain, running: bool, memory: int, fields: dict[str, Any]
    ) -> tuple[int, str]:
        """Bytes the host promises the guest, and how that promise is held. What recon
        promised (its stamp) counts for admission even where nothing enforces it; where a
        cgroup holds it, the cgroup is read back and reported as the guest's memoryGuarantee,
        so a guest restarted behind recon's back (a new cgroup, no limit) shows as drift."""
        promised = parsed.guarantee_bytes
        if parsed.stamp is not None:
            pct = str(parsed.stamp.applied.get("memoryGuarantee", "0%")).rstrip("%")
            promised = memory * int(pct) // 100 if pct.isdigit() else promised
        if self.driver == "test":
            return promised, lh.MIN_GUARANTEE
        if not running:
            how = self._mechanism()
            return promised, how if how == lh.ADMISSION_ONLY else f"{how} when running"
        cgroup = self._memory_cgroup(parsed.name)
        if cgroup is None:
            return promised, lh.ADMISSION_ONLY
        try:
            held = cgroup.read()
        except OSError:
            return promised, lh.ADMISSION_ONLY
        if memory:
            fields["memoryGuarantee"] = f"{round(100 * min(held, memory) / memory)}%"
        return max(held, promised), cgroup.how

    def _can_hold(self) -> bool:
        """Whether this host can hold guarantees in cgroups: a local QEMU or LXC host."""
        return self.local and family(self.driver) in ("qemu", "lxc")

    def _mechanism(self) -> str:
        """How a stopped guest's guarantee will be held once it runs."""
        if not self._can_hold():
            return lh.ADMISSION_ONLY
        found = lh.memory_cgroup_version()
        return {1: lh.CGROUP_V1, 2: lh.CGROUP_V2}.get(found or 0, lh.ADMISSION_ONLY)

    def _memory_cgroup(self, name: str) -> lh.MemoryCgroup | None:
        if not self._can_hold():
            return None
        pid = lh.domain_pid(family(self.driver), name)
        return lh.memory_cgroup(pid) if pid is not None else None

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
        except ValueError as exc:
            # What the XML builder refuses (a container on QEMU, a bad name): the planner
            # refuses these first, so reaching here means a saved plan or a changed host.
            raise ProviderError(f"{change.ref}: {exc}") from None
        finally:
            # Only a guest's own change redefines a domain; pools, networks and templates
            # leave every domain as it was. A host policy may reach into any of them.
            guest = change.ref.kind in ("VirtualMachine", "Container")
            touched = [change.ref.name] if guest else []
            if self._parsed is not None:
                if change.ref.kind == "HostPolicy":
                    self._touched = None
                elif self._touched is not None:
                    self._touched.update(touched)
            storage = not _leaves_storage(change)
            if storage and self._volumes is not None:
                self._volumes.clear()
            if self.embedded is not None:
                self.embedded.changed(self.conn, touched, storage=storage)

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
        new = pool is None
        pool = self._define_pool(xml_text)
        if not pool.isActive():
            with _undefine_on_error(pool if new else None):
                if self.driver != "test":
                    # A dir pool: makes the directory, keeps one that exists with its files.
                    # (NO_OVERWRITE is for pools that format a device; dir pools refuse it.)
                    pool.build(0)
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
        new = net is None
        net = self.conn.networkDefineXML(xml_text)
        if not net.isActive():
            with _undefine_on_error(net if new else None):
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

    def _guest_volumes(self, resource: Resource, context: ApplyContext) -> dict[str, lx.DiskVolume]:
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
                backing = self._template_volume(template, context) if template else None
                root_from = None
                if isinstance(manifest, Container) and self.driver == "lxc":
                    root_from = self._container_template(manifest, context)
                vol = pool.createXML(
                    lx.build_volume(vol_name, capacity=size, fmt=fmt, backing=backing), 0
                )
                if root_from is not None:
                    self._make_root(vol, root_from)
            else:
                capacity = vol.info()[1]
                if size > capacity:
                    vol.resize(size, 0)
            out[disk_name] = lx.DiskVolume(pool_name, vol_name, vol.path(), fmt)
        return out

    def _template_volume(
        self, template: str, context: ApplyContext, fmt: str = "qcow2"
    ) -> lx.DiskVolume:
        """The template's image volume: its manifest names the pool, so one lookup finds it
        (rather than reading every pool's stamp for every disk)."""
        res = context.resources.get(ResourceRef("Template", template))
        vol_name = lx.template_volume_name(template, fmt)
        if res is not None and isinstance(res.manifest, Template):
            pool = _lookup(self.conn.storagePoolLookupByName, res.manifest.spec.pool)
            vol = _lookup(pool.storageVolLookupByName, vol_name) if pool is not None else None
            if vol is not None:
                return lx.DiskVolume(res.manifest.spec.pool, vol_name, vol.path(), fmt)
        raise ProviderError(f"Template/{template} has no image on the host")

    def _container_template(self, manifest: Container, context: ApplyContext) -> Path:
        """The template archive a new container root is made from: on this host's disk,
        since recon makes the root filesystem itself, next to libvirtd."""
        if not self.local:
            raise UnsupportedError(
                f"Container/{manifest.name}: recon makes a container's root filesystem on the "
                "host itself, and this lxc host is remote",
                "run recon on the host (lxc:///system)",
            )
        return Path(self._template_volume(manifest.spec.template, context, "tar").path)

    def _make_root(self, vol: libvirt.virStorageVol, archive: Path) -> None:
        """An ext4 filesystem holding the template, in the new raw root volume (LXC mounts it
        through a loop device). A root that could not be made is deleted again, so that the
        next run makes it rather than starting a container on an empty disk."""
        try:
            lh.make_root_filesystem(Path(vol.path()), archive)
        except lh.HostCommandError as exc:
            with suppress(libvirt.libvirtError):
                vol.delete(0)
            raise ProviderError(f"making the container's root filesystem failed: {exc}") from None

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
        macs: list[str | None] = []
        if dom is not None:
            parsed = lx.parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            if change.action is not Action.CREATE or parsed.stamp is None:
                self._check_owned(change.ref, parsed.stamp, context)
            existing_uuid = parsed.uuid
            macs = [
                parsed.fields.get(f"interfaces[{i}].mac")
                for i in range(len(manifest.spec.interfaces))
            ]
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
                dom, existing_uuid, macs = None, None, []
        uuid = manifest.spec.uuid or existing_uuid or str(uuidlib.uuid4())
        volumes = self._guest_volumes(resource, context)
        stamp = make_stamp(resource, context)
        was_running = dom is not None and bool(dom.isActive())
        dom = self.conn.defineXML(
            lx.build_domain(
                manifest, uuid=uuid, stamp=stamp, volumes=volumes, driver=self.driver, macs=macs
            )
        )
        notes: list[str] = []
        if was_running:
            notes += self._live_changes(dom, change, manifest)
        dom.setAutostart(1 if manifest.spec.autostart else 0)
        want_running = manifest.spec.state == "Running"
        started = False
        if was_running and change.disruption is Disruption.RESTART and want_running:
            notes += self._shutdown(dom, context)
            dom.create()
            notes.append("restarted")
            started = True
        elif want_running and not dom.isActive():
            dom.create()
            notes.append("started")
            started = True
        elif not want_running and dom.isActive():
            notes += self._shutdown(dom, context)
            notes.append("stopped")
        if dom.isActive():
            notes += self._hold_guarantee(dom, manifest)
            notes += self._guest_settings(dom, resource, change, started)
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
                want = manifest.spec.memory
                have = lx.parse_domain(dom.XMLDesc(0)).memory_bytes
                if want > have and family(self.driver) == "qemu":
                    self._hotplug_memory(dom, want - have)
                    how = "by DIMM hotplug"
                else:
                    dom.setMemoryFlags(want // 1024, LIVE)
                    how = "by balloon" if want < have else ""
                got = lx.parse_domain(dom.XMLDesc(0)).memory_bytes
                if got != want:
                    raise ProviderError(
                        f"memory: the host reports {format_quantity(got)} "
                        f"after asking for {format_quantity(want)}",
                        "a balloon needs the guest's virtio_balloon driver; "
                        "or restart the guest to change its memory",
                    )
                notes.append(f"memory {f.before} -> {f.after} live {how}".rstrip())
            elif f.path == "cpus":
                dom.setVcpusFlags(manifest.spec.cpus, LIVE)
                got_cpus = dom.vcpusFlags(LIVE)
                if got_cpus != manifest.spec.cpus:
                    raise ProviderError(
                        f"cpus: the host reports {got_cpus} after asking for {manifest.spec.cpus}"
                    )
                notes.append(f"cpus {f.before} -> {f.after} live")
        return notes

    def _hotplug_memory(self, dom: libvirt.virDomain, nbytes: int) -> None:
        """Grow a running QEMU guest by one DIMM in NUMA cell 0. Live only: the persistent
        definition already carries the new size as boot memory (the define before this), so a
        DIMM there too would count the growth twice at the next start."""
        if nbytes % _DIMM_ALIGN:
            raise ProviderError(
                f"memory: QEMU adds memory in steps of {format_quantity(_DIMM_ALIGN)}; "
                f"{format_quantity(nbytes)} more is not one",
                "grow memory by a multiple of 2Mi, or restart the guest to resize it",
            )
        try:
            dom.attachDeviceFlags(lx.build_dimm(nbytes), LIVE)
        except libvirt.libvirtError as exc:
            raise ProviderError(
                f"memory: the host refused a {format_quantity(nbytes)} DIMM: "
                f"{exc.get_error_message()}",
                "a restart applies the new memory (all 4 DIMM slots may be in use)",
            ) from None

    def _hold_guarantee(
        self, dom: libvirt.virDomain, manifest: VirtualMachine | Container
    ) -> list[str]:
        """Write the guarantee into the running guest's memory cgroup (QEMU refuses
        <min_guarantee>); where recon cannot, say that only admission holds it."""
        if self.driver == "test":
            return []  # <min_guarantee> in the XML holds it there
        pct = manifest.spec.memory_guarantee or 0
        if not self._can_hold():
            return [f"memoryGuarantee {pct}%: {lh.ADMISSION_ONLY} on this host"] if pct else []
        memory = lx.parse_domain(dom.XMLDesc(0)).memory_bytes
        want = memory * pct // 100
        cgroup = self._memory_cgroup(dom.name())
        if cgroup is None:
            if not pct:
                return []
            return [f"memoryGuarantee {pct}%: {lh.ADMISSION_ONLY} (no memory cgroup found)"]
        try:
            if cgroup.read() == want:
                return []
            cgroup.write(want)
            held = cgroup.read()
        except PermissionError:
            return [
                f"memoryGuarantee {pct}%: {lh.ADMISSION_ONLY} (no write access to {cgroup.path})"
            ]
        except OSError as exc:
            raise ProviderError(
                f"memoryGuarantee: cannot write {cgroup.path}: {exc.strerror}"
            ) from None
        # The kernel keeps soft limits in whole pages.
        if abs(held - want) >= 4096:
            raise ProviderError(
                f"memoryGuarantee: {cgroup.path} holds {held} bytes after writing {want}"
            )
        if not pct:
            return [f"memory guarantee removed ({cgroup.how})"]
        return [f"{format_quantity(want)} guaranteed ({cgroup.how})"]

    def _guest_settings(
        self, dom: libvirt.virDomain, resource: Resource, change: Change, started: bool
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
            # A guest that was just started needs time to boot far enough to run its agent.
            deadline = time.monotonic() + (_AGENT_WAIT if started and self.driver != "test" else 0)
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
                    self._forget_applied(dom, "guest.users")
                    # The message can never contain the value: libvirt does not echo it.
                    raise ProviderError(
                        f"setting the password of {user.name} failed: {exc.get_error_message()}",
                        "the guest must run qemu-guest-agent; the next apply tries again",
                    ) from None
            notes.append(f"password of {user.name} set")
        return notes

    def _forget_applied(self, dom: libvirt.virDomain, prefix: str) -> None:
        """Drop fields from the stamp's applied record (what did not reach the guest)."""
        parsed = lx.parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        if parsed.stamp is None or parsed.kind is None:
            return
        applied = {k: v for k, v in parsed.stamp.applied.items() if not k.startswith(prefix)}
        stamp = Stamp(
            file=parsed.stamp.file,
            spec_hash=spec_hash(applied),
            applied=applied,
            revision=parsed.stamp.revision,
            set_name=parsed.stamp.set_name,
        )
        flags = CONFIG | (LIVE if dom.isActive() else 0)
        dom.setMetadata(
            libvirt.VIR_DOMAIN_METADATA_ELEMENT,
            lx.stamp_metadata_xml(stamp, parsed.kind),
            "recon",
            lx.NS,
            flags,
        )

    def _shutdown(self, dom: libvirt.virDomain, context: ApplyContext) -> list[str]:
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

    # host policy

    def _apply_host_policy(
        self, change: Change, resource: Resource | None, context: ApplyContext
    ) -> str:
        """KSM: the scanner's tuning through libvirt's node memory parameters, on/off through
        /sys/kernel/mm/ksm/run (local host only). Read back before it is reported done."""
        assert resource is not None and isinstance(resource.manifest, HostPolicy)
        if not self._caps.get("ksm"):
            raise UnsupportedError("KSM settings are not supported by this host")
        params: dict[str, int] = {}
        enabled: bool | None = None
        for f in change.fields:
            if f.path == "ksm.enabled":
                enabled = bool(f.after)
            elif f.path in _KSM_PARAMS:
                params[_KSM_PARAMS[f.path]] = int(f.after)
        if enabled is not None and not self.local:
            raise UnsupportedError(
                "ksm.enabled: /sys/kernel/mm/ksm/run is reachable only on the host itself",
                "run recon on the host (qemu:///system), or drop ksm.enabled from the manifest",
            )
        if params:
            self.conn.setMemoryParameters(params, 0)
        if enabled is not None:
            try:
                lh.set_ksm_enabled(enabled)
            except OSError as exc:
                raise ProviderError(
                    f"ksm.enabled: cannot write {lh.KSM_RUN}: {exc.strerror}"
                ) from None
        seen = self._observe_host().fields
        wrong = [f.path for f in change.fields if seen.get(f.path) != f.after]
        if wrong:
            raise ProviderError(
                "KSM: the host reports "
                + ", ".join(f"{p} = {seen.get(p)}" for p in wrong)
                + " after the change"
            )
        return "KSM " + ", ".join(
            f"{f.path.removeprefix('ksm.')} {f.before} -> {f.after}" for f in change.fields
        )


_KSM_PARAMS = {
    "ksm.pagesToScan": "shm_pages_to_scan",
    "ksm.sleepMillisecs": "shm_sleep_millisecs",
    "ksm.mergeAcrossNodes": "shm_merge_across_nodes",
}


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
