"""The HostPolicy: KSM's settings, observed and applied, and the host's free memory.

The scanner's tuning goes through libvirt's node memory parameters; KSM on/off through
/sys/kernel/mm/ksm/run, which only a recon running on the host itself can reach.
"""

from __future__ import annotations

from typing import Any

import libvirt

from reconciler.model.kinds import HostPolicy
from reconciler.model.plan import Action, Change
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.providers.base import ApplyContext, Observed, ProviderError, UnsupportedError
from reconciler.providers.libvirt import host as lh
from reconciler.providers.libvirt.common import Host

HOST_POLICY = ResourceRef("HostPolicy", "")

_KSM_PARAMS = {
    "ksm.pagesToScan": "shm_pages_to_scan",
    "ksm.sleepMillisecs": "shm_sleep_millisecs",
    "ksm.mergeAcrossNodes": "shm_merge_across_nodes",
}


def ksm_parameters(conn: libvirt.virConnect) -> dict[str, Any] | None:
    """The node's KSM parameters, or None where libvirt has none (the test driver)."""
    try:
        params: dict[str, Any] = conn.getMemoryParameters(0)
    except libvirt.libvirtError:
        return None
    return params if "shm_pages_to_scan" in params else None


def memory_stats(conn: libvirt.virConnect) -> dict[str, int]:
    """Node memory in KiB (total, free, buffers, cached); empty on the test driver."""
    try:
        stats: dict[str, int] = conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0)
    except libvirt.libvirtError:
        return {}
    return stats


def observe(host: Host, stats: dict[str, int] | None = None) -> Observed:
    """The host itself: its KSM settings (compared with a HostPolicy) and, for
    `recon get -o wide`, the memory available now."""
    fields: dict[str, Any] = {}
    params = ksm_parameters(host.conn) if host.capabilities.get("ksm") else None
    if params is not None:
        fields["ksm.pagesToScan"] = int(params["shm_pages_to_scan"])
        fields["ksm.sleepMillisecs"] = int(params["shm_sleep_millisecs"])
        if "shm_merge_across_nodes" in params:
            fields["ksm.mergeAcrossNodes"] = bool(params["shm_merge_across_nodes"])
        enabled = lh.ksm_enabled() if host.local else None
        if enabled is not None:
            fields["ksm.enabled"] = enabled
    extra: dict[str, Any] = {}
    recorded = lh.read_host_record() if host.local and params is not None else None
    if recorded is not None:
        # What the host had before recon's policy first changed it: what a delete puts back.
        extra["recorded"] = recorded
    stats = memory_stats(host.conn) if stats is None else stats
    if "free" in stats:
        kib = sum(int(stats.get(k, 0)) for k in ("free", "buffers", "cached"))
        extra["memory_available"] = kib * 1024
    return Observed(HOST_POLICY, fields, None, extra=extra)


def apply_host_policy(
    host: Host, change: Change, resource: Resource | None, context: ApplyContext
) -> str:
    """Read back before it is reported done. The first change recon makes records what the
    host had (on the host itself); a delete puts that back and drops the record."""
    if not host.capabilities.get("ksm"):
        raise UnsupportedError("KSM settings are not supported by this host")
    if change.action is Action.DELETE:
        return _restore(host, change)
    assert resource is not None and isinstance(resource.manifest, HostPolicy)
    if host.local and lh.read_host_record() is None:
        had = {k: v for k, v in observe(host).fields.items() if k.startswith("ksm.")}
        try:
            lh.write_host_record(had)
        except OSError as exc:
            raise ProviderError(
                f"KSM: cannot record the host's settings before changing them in "
                f"{lh.host_record_path()}: {exc.strerror}; nothing was changed",
                "run recon as root on the host",
            ) from None
    _set(host, change)
    return "KSM " + ", ".join(
        f"{f.path.removeprefix('ksm.')} {f.before} -> {f.after}" for f in change.fields
    )


def _restore(host: Host, change: Change) -> str:
    recorded = lh.read_host_record() if host.local else None
    if recorded is None:
        return "nothing recorded: KSM left as it is"
    _set(host, change)
    lh.drop_host_record()
    done = ", ".join(
        f"{f.path.removeprefix('ksm.')} {f.before} -> {f.after}" for f in change.fields
    )
    return f"KSM restored to what the host had before recon ({done or 'already so'})"


def _set(host: Host, change: Change) -> None:
    params: dict[str, int] = {}
    enabled: bool | None = None
    for f in change.fields:
        if f.path == "ksm.enabled":
            enabled = bool(f.after)
        elif f.path in _KSM_PARAMS:
            params[_KSM_PARAMS[f.path]] = int(f.after)
    if enabled is not None and not host.local:
        raise UnsupportedError(
            "ksm.enabled: /sys/kernel/mm/ksm/run is reachable only on the host itself",
            "run recon on the host (qemu:///system), or drop ksm.enabled from the manifest",
        )
    if params:
        host.conn.setMemoryParameters(params, 0)
    if enabled is not None:
        try:
            lh.set_ksm_enabled(enabled)
        except OSError as exc:
            raise ProviderError(f"ksm.enabled: cannot write {lh.KSM_RUN}: {exc.strerror}") from None
    seen = observe(host).fields
    wrong = [f.path for f in change.fields if seen.get(f.path) != f.after]
    if wrong:
        raise ProviderError(
            "KSM: the host reports "
            + ", ".join(f"{p} = {seen.get(p)}" for p in wrong)
            + " after the change"
        )
