"""Guest tools, by driver: a container's (its namespaces on the host: container_tools.py runs
commands, container_guest.py its settings) or a VM's (its QEMU guest agent and serial console:
vm_tools.py). One entry point per thing
recon does inside a guest: apply its settings, read them back, run a command, enter it,
attach to its console, say what only it knows.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import libvirt

from reconciler.model.plan import Change
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.providers.base import (
    ApplyContext,
    ExecResult,
    Observed,
    ProviderError,
    UnsupportedError,
)
from reconciler.providers.libvirt.common import Host, lookup
from reconciler.providers.libvirt.guests import container_guest, container_tools, vm_tools

# Guests whose agents are asked at once during an observation: an agent that hangs costs
# libvirt's agent timeout (5 s), and guests do not wait for each other.
_PARALLEL = 8


def _is_container(host: Host) -> bool:
    return host.driver == "lxc"


def domain(host: Host, ref: ResourceRef) -> libvirt.virDomain:
    """The guest's domain, or ProviderError naming it when the host has no such guest. Only
    the name is looked up (a guest's name is unique on a host); its tools are the driver's."""
    dom = lookup(host.conn.lookupByName, ref.name)
    if dom is None:
        raise ProviderError(
            f"{ref.name}: no such guest on {host.uri}", "`recon get` lists the guests there"
        )
    return dom


def guest_settings(
    host: Host,
    dom: libvirt.virDomain,
    resource: Resource,
    change: Change,
    started: bool,
    context: ApplyContext,
) -> list[str]:
    if _is_container(host):
        return container_guest.container_settings(host, dom, resource, change, started, context)
    return vm_tools.vm_settings(host, dom, resource, change, started, context)


def observe_guests(host: Host, objects: dict[ResourceRef, Observed]) -> None:
    """The settings inside each running guest that has some recorded, read back into its
    fields (see vm_tools.observe_vm_guest), several guests at a time."""
    if _is_container(host):
        asked = [
            obs
            for obs in objects.values()
            if obs.ref.kind == "Container" and container_guest.reads_back(host, obs)
        ]
    else:
        asked = [
            obs
            for obs in objects.values()
            if obs.ref.kind == "VirtualMachine" and vm_tools.reads_back(host, obs)
        ]
    if not asked:
        return

    def read(obs: Observed) -> None:
        dom = lookup(host.conn.lookupByName, obs.ref.name)
        if dom is None:
            return
        if _is_container(host):
            obs.fields.update(container_guest.observe_container_guest(host, dom, obs))
        else:
            vm_tools.observe_vm_guest(host, dom, obs)

    with ThreadPoolExecutor(min(_PARALLEL, len(asked))) as pool:
        list(pool.map(read, asked))


def exec_in(host: Host, ref: ResourceRef, argv: list[str], timeout: float) -> ExecResult:
    dom = domain(host, ref)
    if _is_container(host):
        return container_tools.exec_in_container(host, dom, argv, timeout)
    return vm_tools.exec_in_vm(host, dom, argv, timeout)


def enter_argv(host: Host, ref: ResourceRef, argv: list[str]) -> list[str]:
    dom = domain(host, ref)
    if _is_container(host):
        return container_tools.enter_argv(host, dom, argv)
    if argv:
        raise UnsupportedError(
            f"{ref.name}: a VM is entered through its serial console, which runs no command",
            f"run it with `recon exec {ref.name} -- {' '.join(argv)}`",
        )
    return vm_tools.console_argv(host, dom)


def console_argv(host: Host, ref: ResourceRef) -> list[str]:
    dom = domain(host, ref)
    if _is_container(host):
        # The container's console: its init's /dev/console, the pty libvirt gives it.
        return ["virsh", "-c", host.uri, "console", "--force", ref.name]
    return vm_tools.console_argv(host, dom)


def guest_status(host: Host, refs: list[ResourceRef]) -> dict[ResourceRef, dict[str, Any]]:
    if _is_container(host):
        return {}
    out: dict[ResourceRef, dict[str, Any]] = {}
    for ref in refs:
        if ref.kind != "VirtualMachine":
            continue
        dom = lookup(host.conn.lookupByName, ref.name)
        if dom is not None:
            found = vm_tools.guest_status(host, dom)
            if found:
                out[ref] = found
    return out
