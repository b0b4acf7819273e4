"""A VM's guest tools, through the QEMU guest agent (agent.py carries the calls): its settings
applied inside the guest (hostname, users created if missing, ssh authorized keys,
passwords) and read back (hostname, keys), what only the guest can tell (addresses, OS, the
agent's state), a command run inside it, and the host commands that attach to its serial
console.

On the test driver nothing runs inside a guest: only a password reaches it
(setUserPassword, which the driver records); the rest is recorded in recon's stamp only.
"""

from __future__ import annotations

from typing import Any

import libvirt

from reconciler.model.kinds import VirtualMachine
from reconciler.model.plan import Action, Change
from reconciler.model.resource import Resource
from reconciler.providers.base import (
    AGENT_UNKNOWN,
    ApplyContext,
    ExecResult,
    GuestNotRunning,
    Observed,
    ProviderError,
    UnsupportedError,
)
from reconciler.providers.libvirt.common import Host, forget_applied
from reconciler.providers.libvirt.guests import agent

# The agent's states as status shows them.
AGENT_CONNECTED = "connected"
AGENT_UNRESPONSIVE = "unresponsive"
AGENT_NONE = "none"

# Run inside the guest with the value as $1 (never spliced into the script): the name
# for the next boot, and the running kernel's.
_SET_HOSTNAME = 'printf "%s\\n" "$1" > /etc/hostname && hostname "$1"'
_ADD_USER = 'id -u "$1" >/dev/null 2>&1 && exit 0; useradd -m -s /bin/bash "$1" && echo created'


def _keys_key(user: str) -> str:
    return f"guest.users[{user}].sshAuthorizedKeys"


def exec_in_vm(host: Host, dom: libvirt.virDomain, argv: list[str], timeout: float) -> ExecResult:
    _need_agent(host, dom, "run a command inside it")
    return agent.run(dom, argv, timeout)


def console_argv(host: Host, dom: libvirt.virDomain) -> list[str]:
    """`virsh console` on the VM's serial port (every VM recon defines on QEMU has one)."""
    name = dom.name()
    if not dom.isActive():
        raise GuestNotRunning(f"{name} is not running: no console to attach to", "start it first")
    if host.driver not in ("qemu", "kvm"):
        raise UnsupportedError(
            f"{name}: the {host.driver} driver has no serial console to attach to"
        )
    if "<serial" not in dom.XMLDesc(0):
        raise ProviderError(
            f"{name} has no serial port",
            "recon gives one to the VMs it defines; a VM defined by an older recon gets "
            "it at its next apply and restart",
        )
    return ["virsh", "-c", host.uri, "console", "--force", name]


def _need_agent(host: Host, dom: libvirt.virDomain, doing: str) -> None:
    name = dom.name()
    if not dom.isActive():
        raise GuestNotRunning(f"{name} is not running: cannot {doing}", "start it first")
    if not host.capabilities.get("guest-agent"):
        raise UnsupportedError(
            f"{name}: cannot {doing}: "
            + (
                "the test driver executes nothing inside its guests"
                if host.driver == "test"
                else f"recon reaches no guest agent through the {host.driver} driver"
            ),
            "use a real host (--connect qemu:///system)",
        )


def vm_settings(
    host: Host,
    dom: libvirt.virDomain,
    resource: Resource,
    change: Change,
    started: bool,
    context: ApplyContext,
) -> list[str]:
    """The guest's settings that are new or changed, applied inside it: hostname, its users
    (created if missing), their ssh authorized keys and passwords. A guest recon has just
    started is waited for (agent.BOOT_WAIT) until its agent answers. What did not reach the
    guest is dropped from the stamp, so the next plan still has it."""
    manifest = resource.manifest
    if not isinstance(manifest, VirtualMachine) or manifest.spec.guest is None:
        return []
    guest = manifest.spec.guest
    paths = {f.path for f in change.fields}
    every = change.action in (Action.CREATE, Action.REPLACE) or started or "state" in paths

    def wanted(prefix: str) -> bool:
        return every or any(p.startswith(prefix) for p in paths)

    hostname = guest.hostname if guest.hostname and wanted("guest.hostname") else None
    users = [u for u in guest.users if wanted(f"guest.users[{u.name}]")]
    if hostname is None and not users:
        return []
    if not host.capabilities.get("guest-agent"):
        return _recorded_only(host, dom, resource, users, context)
    name = dom.name()
    notes: list[str] = []
    doing = "set " + ", ".join(
        ([f"the hostname {hostname}"] if hostname else []) + [f"user {u.name}" for u in users]
    )
    try:
        # A guest that was just started needs time to boot far enough to run its agent.
        agent.wait_for(dom, agent.BOOT_WAIT if started else agent.SHORT_WAIT)
        if hostname is not None:
            doing = f"set the hostname {hostname}"
            _check(name, doing, _inside(dom, _SET_HOSTNAME, hostname, doing))
            notes.append(f"hostname {hostname} set")
        for user in users:
            doing = f"create the user {user.name}"
            made = _check(name, doing, _inside(dom, _ADD_USER, user.name, doing))
            if made.stdout.strip() == b"created":
                notes.append(f"user {user.name} created")
            if user.ssh_authorized_keys:
                doing = f"set the ssh keys of {user.name}"
                dom.authorizedSSHKeysSet(user.name, list(user.ssh_authorized_keys), 0)
                notes.append(f"ssh keys of {user.name} set")
            if user.password is not None:
                doing = f"set the password of {user.name}"
                value = context.secrets[(resource.ref, f"guest.users[{user.name}].password")]
                dom.setUserPassword(user.name, value, 0)
                notes.append(f"password of {user.name} set")
    except (libvirt.libvirtError, ProviderError) as exc:
        # Not applied: the stamp must not say it was, or no later run would retry.
        forget_applied(dom, "guest.")
        error = exc if isinstance(exc, ProviderError) else agent.agent_error(name, exc, doing)
        done = f" (done before it: {', '.join(notes)})" if notes else ""
        raise ProviderError(f"{error}{done}", error.hint or "the next apply tries again") from None
    return notes


def _inside(dom: libvirt.virDomain, script: str, value: str, doing: str) -> ExecResult:
    """A setting's script run by the guest's shell, the value as its $1."""
    return agent.run(dom, ["/bin/sh", "-c", script, "sh", value], 60, doing=doing)


def _check(name: str, doing: str, result: ExecResult) -> ExecResult:
    if result.exit_code != 0:
        said = (result.stderr or result.stdout).decode(errors="replace").strip()[-300:]
        raise ProviderError(
            f"{name}: cannot {doing}: it failed inside the guest (exit {result.exit_code}): "
            + (said or "no output")
        )
    return result


def _recorded_only(
    host: Host,
    dom: libvirt.virDomain,
    resource: Resource,
    users: list[Any],
    context: ApplyContext,
) -> list[str]:
    """No agent (the test driver): passwords through setUserPassword where the driver has
    it; hostname and keys stay recorded in the stamp only (the capability table says so)."""
    notes = []
    for user in users:
        if user.password is None:
            continue
        key = f"guest.users[{user.name}].password"
        if not host.capabilities.get("guest-password"):
            forget_applied(dom, key, fields=False)
            notes.append(f"password of {user.name} not set: this host has no guest agent")
            continue
        try:
            dom.setUserPassword(user.name, context.secrets[(resource.ref, key)], 0)
        except libvirt.libvirtError as exc:
            forget_applied(dom, "guest.users")  # the user's password digest with it
            raise agent.agent_error(dom.name(), exc, f"set the password of {user.name}") from None
        notes.append(f"password of {user.name} set")
    return notes


# --- read back --------------------------------------------------------------------------------


def reads_back(host: Host, obs: Observed) -> bool:
    """Whether observe asks this VM's agent: a running VM recon owns whose stamp records
    guest settings, on a host with an agent. Others cost the observation nothing."""
    if not (host.capabilities.get("guest-agent") and obs.running and obs.owned):
        return False
    assert obs.stamp is not None
    return any(k == "guest.hostname" or k.endswith(".sshAuthorizedKeys") for k in obs.stamp.applied)


def observe_vm_guest(host: Host, dom: libvirt.virDomain, obs: Observed) -> None:
    """The settings recon applied, as the guest has them now (fields `guest.hostname`,
    `guest.users[NAME].sshAuthorizedKeys`), and the agent's state (extra["agent"]). A guest
    whose agent does not answer has them as AGENT_UNKNOWN: a difference, never a match."""
    assert obs.stamp is not None
    applied = obs.stamp.applied
    keys = [
        k for k in applied if k.startswith("guest.users[") and k.endswith("].sshAuthorizedKeys")
    ]
    wanted = (["guest.hostname"] if "guest.hostname" in applied else []) + keys
    try:
        if "guest.hostname" in applied:
            obs.fields["guest.hostname"] = dom.hostname(libvirt.VIR_DOMAIN_GET_HOSTNAME_AGENT)
        for key in keys:
            user = key[len("guest.users[") : key.index("]")]
            try:
                found = dom.authorizedSSHKeysGet(user, 0)
            except libvirt.libvirtError as exc:
                if agent.is_unresponsive(exc):
                    raise
                found = []  # no such user (yet): it has no keys
            obs.fields[key] = [str(k) for k in found]
        obs.extra["agent"] = AGENT_CONNECTED
    except libvirt.libvirtError as exc:
        state = AGENT_UNRESPONSIVE if agent.is_unresponsive(exc) else AGENT_NONE
        obs.extra["agent"] = state
        obs.extra["agentError"] = exc.get_error_message() or str(exc)
        for key in wanted:
            obs.fields[key] = AGENT_UNKNOWN


def guest_status(host: Host, dom: libvirt.virDomain) -> dict[str, Any]:
    """What only the guest can say, for `get -o wide|yaml|json`: its agent's state, its
    addresses (from the agent) and its OS."""
    if not host.capabilities.get("guest-agent") or not dom.isActive():
        return {}
    out: dict[str, Any] = {}
    try:
        ifaces = dom.interfaceAddresses(libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT, 0)
    except libvirt.libvirtError as exc:
        out["agent"] = AGENT_UNRESPONSIVE if agent.is_unresponsive(exc) else AGENT_NONE
        return out
    out["agent"] = AGENT_CONNECTED
    out["addresses"] = sorted(
        f"{a['addr']}/{a['prefix']}"
        for name, iface in (ifaces or {}).items()
        if name != "lo"
        for a in iface.get("addrs") or []
    )
    try:
        info = dom.guestInfo(libvirt.VIR_DOMAIN_GUEST_INFO_OS, 0)
        pretty = info.get("os.pretty-name") or info.get("os.name")
        if pretty:
            out["os"] = str(pretty)
    except libvirt.libvirtError:
        pass  # an older agent: the OS is simply not said
    return out
