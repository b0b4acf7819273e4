"""Every domain read in one pass: its definition and, when it runs, what it runs now, turned
into the flat fields the diff compares (disks matched to their pool volumes by path)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import libvirt

from reconciler.model.quantity import format_quantity
from reconciler.model.refs import ResourceRef
from reconciler.providers.base import Observed
from reconciler.providers.libvirt import xml as lx
from reconciler.providers.libvirt.common import Host, unless_vanished
from reconciler.providers.libvirt.guests import guarantee
from reconciler.providers.libvirt.parse_cache import ParseCache

# What the test driver keeps only in a running guest's definition.
_DEFINITION_ONLY = ("memoryGuarantee", "swap")


@dataclass(frozen=True, slots=True)
class DomainRead:
    definition_text: str
    definition: lx.ParsedDomain
    live_text: str  # "" when the domain does not run
    live: lx.ParsedDomain | None


# Domains parsed by the last observation of a reusing provider in this process, by the text of
# their XML (parse_domain depends on nothing else). A loop that opens the embedded host again,
# because another process wrote it, then parses only the domains whose XML differs.
_RECENT_PARSES: dict[str, lx.ParsedDomain] = {}


class DomainCache:
    """What a loop's provider keeps of the domains it read, between observations. Only on
    the embedded host: the test driver runs inside this process, so a domain changes only
    through this provider's own apply, which marks it (`touch`) to be read again."""

    def __init__(self) -> None:
        self.reads: dict[str, DomainRead] = {}
        self._touched: set[str] | None = set()  # None: any domain may have changed

    def kept(self, name: str, running: bool) -> DomainRead | None:
        if self._touched is None or name in self._touched:
            return None
        kept = self.reads.get(name)
        return kept if kept is not None and (kept.live is not None) == running else None

    def touch(self, names: list[str]) -> None:
        if self._touched is not None:
            self._touched.update(names)

    def touch_all(self) -> None:
        self._touched = None

    def replace(self, reads: dict[str, DomainRead]) -> None:
        self.reads, self._touched = reads, set()
        _RECENT_PARSES.clear()
        for read in reads.values():
            _RECENT_PARSES[read.definition_text] = read.definition
            if read.live is not None:
                _RECENT_PARSES[read.live_text] = read.live


def observe(
    host: Host,
    objects: dict[ResourceRef, Observed],
    volumes: dict[str, tuple[str, lx.ParsedVolume]],
    cache: DomainCache | None,
    parses: ParseCache | None = None,
) -> None:
    """cache: a loop's parses, kept between its passes; parses: the last command's, kept in
    the state directory (a one-shot observation)."""
    domains = host.conn.listAllDomains(0)
    if host.embedded is not None:
        # In-process, asking each domain costs less than two more lists of them all.
        active = {d.name() for d in domains if d.isActive()}
        autostart = {d.name() for d in domains if d.autostart()}
    else:
        # One round trip each, rather than two per domain.
        flags = (
            libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE,
            libvirt.VIR_CONNECT_LIST_DOMAINS_AUTOSTART,
        )
        active, autostart = ({d.name() for d in host.conn.listAllDomains(f)} for f in flags)
    states = _run_states(host)
    reads: dict[str, DomainRead] = {}
    for dom in domains:
        with unless_vanished():
            name = dom.name()
            running = name in active
            read = _read_domain(host, dom, name, running, cache, parses)
            if cache is not None:
                reads[name] = read
            state = states.get(name)
            if state is None:  # defined after the bulk read of states
                state = tuple(dom.state()[:2])
            _observe_domain(host, read, objects, volumes, running, autostart, state)
    if cache is not None:
        cache.replace(reads)


# libvirt's run states (virDomainState) as recon shows them. Only Running and Stopped can be
# asked for; a Paused or Crashed guest that should run is a difference the apply heals (resume;
# destroy and start). Shut off is "Stopped" whatever the reason, which is said apart (so a
# guest that crashed and stopped is not a difference with `state: Stopped`).
_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: "Running",
    libvirt.VIR_DOMAIN_RUNNING: "Running",
    libvirt.VIR_DOMAIN_BLOCKED: "Running",
    libvirt.VIR_DOMAIN_SHUTDOWN: "Running",  # being shut down: still running
    libvirt.VIR_DOMAIN_PAUSED: "Paused",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "Suspended",
    libvirt.VIR_DOMAIN_CRASHED: "Crashed",
    libvirt.VIR_DOMAIN_SHUTOFF: "Stopped",
}
_PAUSED_REASONS = {
    libvirt.VIR_DOMAIN_PAUSED_USER: "paused by an operator or a tool",
    libvirt.VIR_DOMAIN_PAUSED_IOERROR: "paused by the hypervisor after a disk I/O error",
    libvirt.VIR_DOMAIN_PAUSED_WATCHDOG: "paused by its watchdog",
    libvirt.VIR_DOMAIN_PAUSED_CRASHED: "paused after a crash",
    libvirt.VIR_DOMAIN_PAUSED_MIGRATION: "paused for a migration",
    libvirt.VIR_DOMAIN_PAUSED_SAVE: "paused for a save",
    libvirt.VIR_DOMAIN_PAUSED_DUMP: "paused for a core dump",
    libvirt.VIR_DOMAIN_PAUSED_SNAPSHOT: "paused for a snapshot",
    libvirt.VIR_DOMAIN_PAUSED_SHUTTING_DOWN: "paused while shutting down",
    libvirt.VIR_DOMAIN_PAUSED_STARTING_UP: "paused while starting",
}
_SHUTOFF_REASONS = {
    libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN: "shut down (by the guest or a shutdown request)",
    libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED: "forced off (destroyed)",
    libvirt.VIR_DOMAIN_SHUTOFF_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_SHUTOFF_FAILED: "failed to start",
    libvirt.VIR_DOMAIN_SHUTOFF_SAVED: "saved to a file",
    libvirt.VIR_DOMAIN_SHUTOFF_MIGRATED: "migrated away",
    libvirt.VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT: "reverted to a snapshot",
}


def run_state(state: int, reason: int) -> tuple[str, str | None]:
    """recon's state word for a libvirt (state, reason), and why it is in it (None when
    there is nothing to say)."""
    word = _STATES.get(state, "Running")
    if word == "Paused":
        return word, _PAUSED_REASONS.get(reason, "paused")
    if word == "Stopped":
        return word, _SHUTOFF_REASONS.get(reason)
    if word == "Crashed":
        return word, "crashed (the hypervisor kept it)"
    if word == "Suspended":
        return word, "suspended by the guest (power management)"
    return word, None


def _run_states(host: Host) -> dict[str, tuple[int, int]]:
    """Every domain's (state, reason), in one call where the driver has it."""
    try:
        stats = host.conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE, 0)
    except libvirt.libvirtError:
        return {}  # asked per domain instead
    out: dict[str, tuple[int, int]] = {}
    for dom, values in stats:
        with unless_vanished():
            out[dom.name()] = (int(values["state.state"]), int(values["state.reason"]))
    return out


def _read_domain(
    host: Host,
    dom: libvirt.virDomain,
    name: str,
    running: bool,
    cache: DomainCache | None,
    parses: ParseCache | None,
) -> DomainRead:
    """A domain's definition and, when it runs, what it runs now: what the guest has,
    not what it will have after a restart. A definition changed without the restart it
    needs (an apply cut short while it waited for the guest to shut down) is still a
    difference, and the rerun restarts it."""
    if cache is not None:
        kept = cache.kept(name, running)
        if kept is not None:
            return kept
    text = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    if host.embedded is not None:
        host.embedded.remember(name, text)
    live_text = dom.XMLDesc(0) if running else ""
    definition = _parse_domain(text, cache, parses)
    live: lx.ParsedDomain | None = None
    if running:
        live = (
            definition if _same_but_id(text, live_text) else _parse_domain(live_text, cache, parses)
        )
    return DomainRead(text, definition, live_text, live)


_RUN_ID = re.compile(r" id='\d+'")


def _same_but_id(definition: str, live: str) -> bool:
    """Whether what runs is the definition but for the run id on <domain> (the test driver's
    live XML, and any guest with nothing assigned at start): one parse then serves both,
    since nothing parse_domain reads is in that attribute."""
    end = live.find(">")
    return end > 0 and _RUN_ID.sub("", live[:end], count=1) + live[end:] == definition


def _parse_domain(
    text: str, cache: DomainCache | None, parses: ParseCache | None
) -> lx.ParsedDomain:
    if cache is not None:
        known = _RECENT_PARSES.get(text)
        if known is not None:
            return known
    if parses is not None:
        return parses.domain(text)
    return lx.parse_domain(text)


def _observe_domain(
    host: Host,
    read: DomainRead,
    objects: dict[ResourceRef, Observed],
    volumes: dict[str, tuple[str, lx.ParsedVolume]],
    running: bool,
    autostart: set[str],
    state: tuple[int, ...],
) -> None:
    parsed, live = read.definition, read.live
    # The stamp stays the definition's: it records what was applied.
    now = live or parsed
    fields: dict[str, Any] = dict(now.fields)
    memory = now.memory_bytes
    if live is not None and host.driver == "test":
        # The test driver changes a running guest's <memtune> only in its definition
        # (it has no live call for it), and that definition is what holds it there.
        for key in _DEFINITION_ONLY:
            if key in parsed.fields:
                fields[key] = parsed.fields[key]
            else:
                fields.pop(key, None)
    # What the next boot gets, where it differs from what runs (a `virsh define` of a running
    # guest, or a change saved for the next boot); both texts are read for running guests only.
    saved = (
        {k: v for k, v in parsed.fields.items() if k in fields and fields[k] != v}
        if live is not None
        else {}
    )
    word, why = run_state(state[0], state[1]) if len(state) >= 2 else ("Running", None)
    fields["state"] = word if running else "Stopped"
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
    guaranteed, how = guarantee.observe(host, parsed, running, memory, fields)
    objects[ref] = Observed(
        ref,
        fields,
        parsed.stamp,
        uuid=parsed.uuid,
        running=running,
        guaranteed_bytes=guaranteed,
        memory_bytes=memory,
        extra={
            "guarantee": how,
            # A file both the definition and the running guest name is one use of it.
            "sources": tuple(dict.fromkeys(parsed.sources + (live.sources if live else ()))),
            "taps": live.taps if live else (),
            "stateReason": why,
        },
        volumes=tuple(parsed.disk_paths.values()),
        saved=saved,
    )
