"""The libvirt provider: open a host, observe it in bulk, hand each change to its kind.

What each kind of object is and does on a host lives in its own module (storage, networks,
templates, guests, host_policy); this one opens the connection, learns the driver and its
capabilities, runs one bulk observation across the kinds, dispatches each `Change`, and keeps
what a control loop may reuse between passes. Every step of an apply looks at the host before
it acts, so an apply killed half way is finished by the next run rather than repeated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import libvirt

from reconciler.model.capabilities import CAPABILITIES, family
from reconciler.model.plan import Action, Change
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.providers import ahead
from reconciler.providers.base import (
    ApplyContext,
    ExecResult,
    HostFacts,
    Observation,
    Observed,
    ProviderError,
)
from reconciler.providers.libvirt import (
    events,
    host_policy,
    neighbours,
    networks,
    sharing,
    storage,
    templates,
)
from reconciler.providers.libvirt import host as lh
from reconciler.providers.libvirt import xml as lx
from reconciler.providers.libvirt.common import Host, host_errors
from reconciler.providers.libvirt.embedded import EmbeddedHost
from reconciler.providers.libvirt.guests import apply as guest_apply
from reconciler.providers.libvirt.guests import disks as guest_disks
from reconciler.providers.libvirt.guests import guarantee
from reconciler.providers.libvirt.guests import observe as guest_observe
from reconciler.providers.libvirt.guests import tools as guest_tools
from reconciler.providers.libvirt.parse_cache import ParseCache, cache_file

_DRIVERS = {"TEST": "test", "QEMU": "qemu", "LXC": "lxc", "VZ": "vz", "PARALLELS": "vz"}

_APPLY = {
    "StoragePool": storage.apply_pool,
    # Not a kind of manifest: `recon delete volume POOL/NAME` (kept volumes).
    "Volume": storage.apply_volume,
    "Network": networks.apply_network,
    "Template": templates.apply_template,
    "VirtualMachine": guest_apply.apply_guest,
    "Container": guest_apply.apply_guest,
    "HostPolicy": host_policy.apply_host_policy,
}


def _leaves_storage(change: Change) -> bool:
    """Whether a change cannot have touched a pool, volume or network: a guest's update
    that changes none of its disks (a missing volume shows as a disk change too)."""
    return (
        change.ref.kind in ("VirtualMachine", "Container")
        and change.action is Action.UPDATE
        and not any(f.path.startswith(("disks[", "disk.")) for f in change.fields)
    )


class LibvirtProvider:
    name = "libvirt"

    def __init__(
        self,
        uri: str | None = None,
        home: Path | None = None,
        *,
        reuse: bool = False,
        read_only: bool = False,
    ) -> None:
        """`reuse`: this provider serves many passes (a control loop) rather than one command.
        On the embedded host it then keeps the domains it parsed and the pools' volumes
        between observations (see `guest_observe.DomainCache`). `read_only`: it is opened to
        observe; the embedded host keeps no definition for a save (one would read them all)."""
        from reconciler.providers.home import default_home

        self.embedded: EmbeddedHost | None = None
        with host_errors(f"cannot connect to {uri or 'the embedded host'}"):
            if uri is None:
                self.embedded = EmbeddedHost(
                    (home or default_home()) / "host.xml", remember=not read_only
                )
                self.conn = self.embedded.open()
                self.uri = self.embedded.uri
            else:
                opened = ahead.take(uri)  # opened while the command imported (recon diff)
                self.conn = opened[0] if opened is not None else libvirt.open(uri)
                self.uri = uri
        self.local = self.embedded is None and lh.is_local(self.uri)
        keep = reuse and self.embedded is not None
        self._domains = guest_observe.DomainCache() if keep else None
        # pool name -> its volumes, as last observed; emptied by any change that may
        # create, resize or delete a volume.
        self._volumes: storage.VolumeCache | None = {} if keep else None
        # Running guests whose guarantee a cgroup holds: name -> (memory, what it held at the
        # last observation), for host_settings_changed.
        self._held: dict[str, tuple[int, str]] = {}
        with host_errors(f"cannot read the capabilities of {self.uri}"):
            self.driver, self._caps = self._driver_and_capabilities()
        self.host = Host(
            self.conn,
            self.uri,
            self.driver,
            self._caps,
            self.local,
            self.embedded,
            home or default_home(),
            lh.RootTrees((home or default_home()) / "trees"),
        )

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
        if kind == "lxc":
            # Set inside a container with nsenter on the host itself (guests/container_tools).
            caps["guest-password"] = self.local
        if caps.get("ksm"):
            caps["ksm"] = host_policy.ksm_parameters(self.conn) is not None
        return kind, caps

    def _domain_capabilities(self, virttype: str) -> lx.DomainCapabilities | None:
        try:
            text = self.conn.getDomainCapabilities(None, None, None, virttype, 0)
        except libvirt.libvirtError:
            return None  # libvirt's way of saying this virttype cannot run here
        return lx.parse_domain_capabilities(text)

    @property
    def capabilities(self) -> dict[str, bool]:
        return dict(self._caps)

    def subscribe(
        self,
        notify: Callable[[str], None],
        connection: Callable[[bool, str], None] | None = None,
    ) -> Callable[[], None]:
        """Call notify (from another thread) when the host changes, connection(up, why) when
        the events' connection is lost or back (a real host only: the embedded host is a
        file); returns a stop function."""
        if self.embedded is not None:
            return events.watch_node_file(self.embedded.path, notify)
        with host_errors(f"cannot subscribe to the events of {self.uri}"):
            return events.watch_libvirt(self.uri, notify, connection)

    def current(self) -> bool:
        if self.embedded is not None:
            return self.embedded.current()
        try:
            return bool(self.conn.isAlive())
        except libvirt.libvirtError:
            return False

    def flush(self) -> None:
        if self.host.trees is not None:
            self.host.trees.clear()
        if self.host.pending_volumes:
            with host_errors("cannot record volumes in their pools"):
                storage.write_volume_records(self.host)
            if self.embedded is not None:
                self.embedded.changed(self.conn, [], storage=True)
        if self.embedded is not None:
            with host_errors("cannot save the embedded host"):
                self.embedded.flush(self.conn)

    def close(self) -> None:
        self.flush()
        if self.embedded is not None:
            # Saved: what it kept for the next save goes now, not after the driver has freed
            # the host (0.4 s at 10,000 domains, while `diff` already plans beside it).
            self.embedded.forget()
        # A daemon that died under an apply has already been reported as that change's
        # failure; closing its dead connection must not turn into a second, raw error.
        with suppress(libvirt.libvirtError):
            self.conn.close()

    def observe(self) -> Observation:
        """The whole host in one pass: pools and their volumes, the templates recorded in
        them, networks, every domain, and the host's own policy and memory."""
        with host_errors("cannot read the host"):
            info = self.conn.getInfo()
            stats = host_policy.memory_stats(self.conn)
            facts = HostFacts(
                uri=self.uri,
                hostname=self.conn.getHostname(),
                driver=self.driver,
                # The kernel's MemTotal where libvirt reports it: getInfo() adds up the NUMA
                # nodes' memory, which misses memory a VM host added later (seen here: 4.8 GiB
                # in node0 of a machine with 23.5 GiB).
                memory_bytes=int(stats["total"]) * 1024 if "total" in stats else info[1] << 20,
                cpus=info[2],
                capabilities=self.capabilities,
                # What the plan's warning about starting many containers needs (0.1-0.3 s
                # with 20,000 files open): only where containers take this kernel's instances.
                inotify=lh.inotify_use() if self.driver == "lxc" and self.local else None,
            )
            objects: dict[ResourceRef, Observed] = {}
            # A one-shot observation takes the last one's parses from the state directory; a
            # loop's provider keeps its own between passes (_volumes, _domains).
            parses = (
                ParseCache(cache_file(self.host.home, self.uri))
                if self._domains is None and self.host.home is not None
                else None
            )
            seen = storage.observe(self.host, objects, self._volumes, parses)
            templates.observe(seen, objects, self.host.home)
            networks.observe(self.host, objects)
            guest_observe.observe(self.host, objects, seen.by_path, self._domains, parses)
            if parses is not None:
                parses.save()
            guest_tools.observe_guests(self.host, objects)
            guest_disks.note_recorded(objects, seen.by_path)
            # The other local driver of this libvirtd, read-only, once: what its guests use
            # of the host-wide objects, and the RAM they hold (counted by admission).
            peer = sharing.open_peer(self.host)
            try:
                shared = sharing.other_driver_users(self.host, peer)
                beside = neighbours.observe(self.host, peer)
            finally:
                if peer is not None and not isinstance(peer[1], str):
                    with suppress(libvirt.libvirtError):
                        peer[1].close()
            sharing.network_users(objects, shared)
            sharing.template_users(objects, shared)
            sharing.mark_off_bridge(self.host, objects)
            objects[host_policy.HOST_POLICY] = host_policy.observe(self.host, stats)
            if beside is not None:
                objects[host_policy.HOST_POLICY].extra["otherDriver"] = beside
        self._held = {
            ref.name: (obs.memory_bytes, str(obs.fields["memoryGuarantee"]))
            for ref, obs in objects.items()
            if obs.running
            and obs.stamp is not None
            and "memoryGuarantee" in obs.stamp.applied
            and obs.extra.get("guarantee") in (lh.CGROUP_V1, lh.CGROUP_V2)
            and "memoryGuarantee" in obs.fields
        }
        return Observation(host=facts, objects=objects, shared=shared)

    # --- inside a guest (guests/tools.py dispatches by driver) ---------------------------------

    def exec(self, ref: ResourceRef, argv: list[str], timeout: float) -> ExecResult:
        with host_errors(f"{ref.name}: running {argv[0] if argv else 'a command'}"):
            return guest_tools.exec_in(self.host, ref, argv, timeout)

    def enter_argv(self, ref: ResourceRef, argv: list[str]) -> list[str]:
        with host_errors(f"{ref.name}: entering it"):
            return guest_tools.enter_argv(self.host, ref, argv)

    def console_argv(self, ref: ResourceRef) -> list[str]:
        with host_errors(f"{ref.name}: its console"):
            return guest_tools.console_argv(self.host, ref)

    def guest_status(self, refs: Sequence[ResourceRef]) -> dict[ResourceRef, dict[str, Any]]:
        with host_errors("reading the guests' status"):
            return guest_tools.guest_status(self.host, list(refs))

    def host_settings_changed(self) -> list[str]:
        return [
            name
            for name, (memory, held) in self._held.items()
            if guarantee.held_now(self.host, name, memory) != held
        ]

    def apply(self, change: Change, resource: Resource | None, context: ApplyContext) -> str:
        try:
            with host_errors(f"{change.ref}"):
                return _APPLY[change.ref.kind](self.host, change, resource, context)
        except ValueError as exc:
            # What the XML builder refuses (a container on QEMU, a bad name): the planner
            # refuses these first, so reaching here means a saved plan or a changed host.
            raise ProviderError(f"{change.ref}: {exc}") from None
        finally:
            self._forget(change)

    def _forget(self, change: Change) -> None:
        """Drop what a change may have made stale. Only a guest's own change redefines a
        domain; pools, networks and templates leave every domain as it was. A host policy
        may reach into any of them."""
        guest = change.ref.kind in ("VirtualMachine", "Container")
        touched = [change.ref.name] if guest else []
        if self._domains is not None:
            if change.ref.kind == "HostPolicy":
                self._domains.touch_all()
            else:
                self._domains.touch(touched)
        storage_touched = not _leaves_storage(change)
        if storage_touched and self._volumes is not None:
            self._volumes.clear()
        if self.embedded is not None:
            self.embedded.changed(self.conn, touched, storage=storage_touched)
