"""A guest recon has just started is looked at once more at the end of the apply: one that
stopped right after its start fails its change, with the likely cause, instead of being
counted as created. Its stamp stays as the define wrote it: its state is observed, so the
next plan has `state: Stopped -> Running` and the next apply starts it again.

All the checks of an apply run together at its end (engine/apply.py), so they cost about one
wait per apply, not one per guest. On a local LXC host a container's init is given up to
LXC_SETTLE seconds from its start to fork (a systemd that forked got past setting itself up,
where it stops when the host has no inotify instance left for it); a container started early
in a long apply has long since done so. Elsewhere the state is read as it is then.
"""

from __future__ import annotations

import time

import libvirt

from reconciler.model.refs import ResourceRef
from reconciler.providers.base import ApplyContext, InotifyUse, ProviderError
from reconciler.providers.libvirt import host as lh
from reconciler.providers.libvirt.common import Host
from reconciler.providers.libvirt.guests import observe

# Seconds from a container's start its init is given to fork; systemd here forks its
# generators 0.2-0.5 s after the start (longer on a loaded host).
LXC_SETTLE = 3.0
_POLL = 0.05


def after_start(
    host: Host, dom: libvirt.virDomain, ref: ResourceRef, context: ApplyContext
) -> None:
    """dom was just started for ref's change: check it still runs at the end of the apply."""
    started = time.monotonic()
    context.settle.append((ref, lambda: check_running(host, dom, ref, started)))


def check_running(host: Host, dom: libvirt.virDomain, ref: ResourceRef, started: float) -> None:
    """ProviderError when the guest started at `started` (time.monotonic) is no longer
    running; a guest that is running, paused or gone (deleted by then) passes."""
    name = dom.name()
    try:
        if host.driver == "lxc" and host.local:
            deadline = started + LXC_SETTLE
            while dom.isActive() and time.monotonic() < deadline:
                pid = lh.domain_pid("lxc", name)
                if pid is not None and lh.container_init_forked(pid):
                    break
                time.sleep(_POLL)
        state, reason = dom.state()[:2]
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return
        raise
    word, why = observe.run_state(state, reason)
    if word not in ("Stopped", "Crashed"):
        return
    use = lh.inotify_use() if host.driver == "lxc" and host.local else None
    message, hint = stopped_message(ref, host.driver, why, use)
    raise ProviderError(message, hint)


def stopped_message(
    ref: ResourceRef, driver: str, why: str | None, use: InotifyUse | None
) -> tuple[str, str]:
    """What a guest that stopped right after its start is told with: the likely cause and
    what to do, in the message itself (an apply's summary shows only that)."""
    name = ref.name
    said = f", libvirt says {why}" if why else ""
    family = "lxc" if driver == "lxc" else "qemu"
    log = f"/var/log/libvirt/{family}/{name}.log"
    if use is not None and use.near():
        hint = (
            f"fs.inotify.max_user_instances={use.limit} is used up ({use.in_use} in use): "
            f"raise it (sysctl -w fs.inotify.max_user_instances={use.suggested()}); "
            "the next apply starts it again"
        )
        cause = "most likely its init found no inotify instance left"
    elif driver == "lxc":
        hint = (
            f"see {log} and the container's init (its template's /sbin/init); "
            "the next apply starts it again"
        )
        cause = "its init exited"
    else:
        hint = f"see {log}; the next apply starts it again"
        cause = "it shut down or its hypervisor exited"
    return f"{ref}: stopped right after it was started: {cause}{said}; {hint}", hint
