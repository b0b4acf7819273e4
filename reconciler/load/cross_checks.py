"""Checks across fields and documents: references that must resolve, values that must be
unique on a host (UUID, MAC), limits that involve two fields, one HostPolicy.

They run on validated Resources, either of one run (validate_documents) or of files validated
one by one and joined (join_results); each diagnostic is placed through the resource's _Context.
"""

from __future__ import annotations

import difflib
import ipaddress
import posixpath
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from reconciler.load.document_checks import _Context
from reconciler.model.diagnostics import Diagnostic, FieldPath
from reconciler.model.kinds import (
    Container,
    Guest,
    HostPolicy,
    Manifest,
    Network,
    StoragePool,
    Template,
    VirtualMachine,
)
from reconciler.model.quantity import format_quantity
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource

MIN_MEMORY = 16 * 1024 * 1024

# --- checks across fields and documents --------------------------------------------------------

Check = Callable[[Manifest, "_Index"], Iterable[tuple[FieldPath, str, str | None]]]


@dataclass
class _Index:
    names: dict[str, set[str]]
    templates: dict[str, Template]


def _ref(
    index: _Index, kind: str, name: str | None, path: FieldPath
) -> Iterable[tuple[FieldPath, str, str | None]]:
    if name is None or name in index.names.get(kind, set()):
        return
    known = sorted(index.names.get(kind, set()))
    close = difflib.get_close_matches(name, known, n=1)
    hint = (
        f"did you mean '{close[0]}'?"
        if close
        else f"define a {kind} named '{name}'"
        + (f" (defined: {', '.join(known[:10])})" if known else "")
    )
    yield path, f"refers to {kind} '{name}', {NO_MANIFEST_DEFINES}", hint


NO_MANIFEST_DEFINES = "which no manifest defines"
_DANGLING = re.compile(rf"refers to (\w+) '([^']*)', {NO_MANIFEST_DEFINES}")


def dangling_ref(diag: Diagnostic) -> ResourceRef | None:
    """The object a dangling-reference diagnostic names; None for any other diagnostic. Lets
    `apply -f ONE-FILE` look for it among what recon owns on the host, and `validate
    --allow-host-refs` report it as a note."""
    match = _DANGLING.fullmatch(diag.message)
    return ResourceRef(match[1], match[2]) if match else None


def _template_format(
    index: _Index, name: str | None, wanted: str, path: FieldPath
) -> Iterable[tuple[FieldPath, str, str | None]]:
    template = index.templates.get(name or "")
    if template is not None and template.spec.format != wanted:
        use = "a VM disk" if wanted == "qcow2" else "a container"
        yield (
            path,
            f"Template '{name}' has format '{template.spec.format}'; {use} needs format '{wanted}'",
            None,
        )


def _check_vm(m: Manifest, index: _Index) -> Iterable[tuple[FieldPath, str, str | None]]:
    assert isinstance(m, VirtualMachine)
    s = m.spec
    if s.max_memory is not None and s.memory > s.max_memory:
        yield (
            ("spec", "memory"),
            "memory is larger than maxMemory",
            "raise maxMemory (the hotplug ceiling) or lower memory",
        )
    if s.memory < MIN_MEMORY:
        yield ("spec", "memory"), "memory must be at least 16Mi", None
    if s.max_cpus is not None and s.cpus > s.max_cpus:
        yield ("spec", "cpus"), "cpus is larger than maxCpus", "raise maxCpus or lower cpus"
    seen: set[str] = set()
    for i, disk in enumerate(s.disks):
        if disk.name in seen:
            yield ("spec", "disks", i, "name"), f"duplicate disk name '{disk.name}'", None
        seen.add(disk.name)
        yield from _ref(index, "StoragePool", disk.pool, ("spec", "disks", i, "pool"))
        yield from _ref(index, "Template", disk.template, ("spec", "disks", i, "template"))
        yield from _template_format(index, disk.template, "qcow2", ("spec", "disks", i, "template"))
        built = index.templates.get(disk.template or "")
        if built is not None and built.spec.source.build is not None:
            floor = built.spec.source.build.disk_size
            if disk.size < floor:
                yield (
                    ("spec", "disks", i, "size"),
                    f"the disk is smaller than Template '{disk.template}' "
                    f"({format_quantity(floor)}, its diskSize)",
                    f"make it at least {format_quantity(floor)}, or lower the template's diskSize",
                )
    for i, iface in enumerate(s.interfaces):
        yield from _ref(index, "Network", iface.network, ("spec", "interfaces", i, "network"))
    if s.guest:
        yield from _check_users(s.guest)


def _check_users(guest: Guest) -> Iterable[tuple[FieldPath, str, str | None]]:
    users = [u.name for u in guest.users]
    for i, user in enumerate(users):
        if user in users[:i]:
            yield ("spec", "guest", "users", i, "name"), f"duplicate user '{user}'", None


def _check_container(m: Manifest, index: _Index) -> Iterable[tuple[FieldPath, str, str | None]]:
    assert isinstance(m, Container)
    s = m.spec
    if s.memory < MIN_MEMORY:
        yield ("spec", "memory"), "memory must be at least 16Mi", None
    yield from _ref(index, "Template", s.template, ("spec", "template"))
    yield from _template_format(index, s.template, "tar", ("spec", "template"))
    template = index.templates.get(s.template)
    if template is not None and template.spec.type == "application":
        yield (
            ("spec", "template"),
            f"Template '{s.template}' is an application template",
            f"name its OS template ('{template.spec.base}') and list it under applications",
        )
    for i, app in enumerate(s.applications):
        path = ("spec", "applications", i)
        if app in s.applications[:i]:
            yield path, f"application '{app}' is listed twice", None
            continue
        yield from _ref(index, "Template", app, path)
        found = index.templates.get(app)
        if found is not None and (
            found.spec.type != "application" or found.spec.base != s.template
        ):
            yield (
                path,
                f"Template '{app}' is not an application template of '{s.template}'",
                f"an application template with base: {s.template}",
            )
    yield from _ref(index, "StoragePool", s.disk.pool, ("spec", "disk", "pool"))
    for i, iface in enumerate(s.interfaces):
        yield from _ref(index, "Network", iface.network, ("spec", "interfaces", i, "network"))
    if s.guest:
        if s.guest.hostname is not None and s.hostname is not None:
            yield (
                ("spec", "guest", "hostname"),
                "the hostname is given twice (spec.hostname and spec.guest.hostname)",
                "keep one of the two",
            )
        yield from _check_users(s.guest)


def _check_template(m: Manifest, index: _Index) -> Iterable[tuple[FieldPath, str, str | None]]:
    assert isinstance(m, Template)
    s = m.spec
    yield from _ref(index, "StoragePool", s.pool, ("spec", "pool"))
    if s.type == "os":
        if s.base is not None:
            yield ("spec", "base"), "only an application template has a base", None
        return
    if s.format != "tar" or s.source.build is None:
        yield (
            ("spec", "type"),
            "an application template is built (source.build) in format 'tar'",
            "it layers packages on a container template; VM images take packages directly",
        )
    if s.base is None:
        yield ("spec", "base"), "an application template names the OS template it layers on", None
        return
    yield from _ref(index, "Template", s.base, ("spec", "base"))
    base = index.templates.get(s.base)
    if base is not None and (
        base.spec.type != "os" or base.spec.format != "tar" or base.spec.source.build is None
    ):
        yield (
            ("spec", "base"),
            f"Template '{s.base}' is not a built OS template in format 'tar'",
            None,
        )


def _check_network(m: Manifest, index: _Index) -> Iterable[tuple[FieldPath, str, str | None]]:
    assert isinstance(m, Network)
    s = m.spec
    if s.mode == "bridge":
        if s.bridge is None:
            yield (
                ("spec", "bridge"),
                "mode 'bridge' needs the name of an existing host bridge",
                None,
            )
        if s.ipv4 is not None:
            yield (
                ("spec", "ipv4"),
                "mode 'bridge' takes no ipv4: the host bridge has its own addressing",
                None,
            )
        return
    if s.ipv4 is None:
        return
    net = ipaddress.ip_interface(s.ipv4.address).network
    if not isinstance(net, ipaddress.IPv4Network):
        yield ("spec", "ipv4", "address"), "expected an IPv4 address", None
        return
    if s.ipv4.dhcp is not None:
        start = ipaddress.ip_address(s.ipv4.dhcp.start)
        end = ipaddress.ip_address(s.ipv4.dhcp.end)
        for part, addr in (("start", start), ("end", end)):
            if addr not in net:
                yield ("spec", "ipv4", "dhcp", part), f"outside the network {net}", None
        if start.version == end.version and int(start) > int(end):
            yield ("spec", "ipv4", "dhcp", "end"), "dhcp end comes before start", None


_CHECKS: dict[str, Check] = {
    "VirtualMachine": _check_vm,
    "Container": _check_container,
    "Template": _check_template,
    "Network": _check_network,
}


def _unique_across(
    resources: Sequence[Resource],
    contexts: dict[ResourceRef, _Context],
    values: Callable[[Manifest], Iterable[tuple[FieldPath, str]]],
    what: str,
) -> list[Diagnostic]:
    """One diagnostic per repeat of a value that must be unique on a host (UUID, MAC)."""
    first: dict[str, tuple[ResourceRef, FieldPath]] = {}
    out: list[Diagnostic] = []
    for res in resources:
        for path, value in values(res.manifest):
            key = value.lower()
            if key in first:
                owner, _ = first[key]
                out.append(contexts[res.ref].diag(path, f"{what} is also used by {owner}"))
            else:
                first[key] = (res.ref, path)
    return out


def _uuids(m: Manifest) -> Iterable[tuple[FieldPath, str]]:
    uuid = getattr(m.spec, "uuid", None)  # type: ignore[attr-defined]
    if uuid:
        yield ("spec", "uuid"), uuid


def _macs(m: Manifest) -> Iterable[tuple[FieldPath, str]]:
    for i, iface in enumerate(getattr(m.spec, "interfaces", [])):  # type: ignore[attr-defined]
        if getattr(iface, "mac", None):
            yield ("spec", "interfaces", i, "mac"), iface.mac


def _pool_paths(m: Manifest) -> Iterable[tuple[FieldPath, str]]:
    if isinstance(m, StoragePool):
        # One directory however it is spelled: a trailing "/" or "a/../b" is the same pool.
        yield ("spec", "path"), posixpath.normpath(m.spec.path)


def _bridges(m: Manifest) -> Iterable[tuple[FieldPath, str]]:
    if isinstance(m, Network) and m.spec.bridge:
        yield ("spec", "bridge"), m.spec.bridge


def _overlapping_subnets(
    resources: Sequence[Resource], contexts: dict[ResourceRef, _Context]
) -> list[Diagnostic]:
    """Two networks routing one address range: the host cannot tell them apart."""
    seen: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ResourceRef]] = []
    out: list[Diagnostic] = []
    for res in resources:
        m = res.manifest
        if not isinstance(m, Network) or m.spec.ipv4 is None:
            continue
        subnet = ipaddress.ip_interface(str(m.spec.ipv4.address)).network
        for other, owner in seen:
            if subnet.overlaps(other):
                out.append(
                    contexts[res.ref].diag(
                        ("spec", "ipv4", "address"),
                        f"subnet {subnet} overlaps {owner}'s {other}",
                        "give each network its own address range",
                    )
                )
                break
        seen.append((subnet, res.ref))
    return out


def cross_check(
    resources: Sequence[Resource], contexts: dict[ResourceRef, _Context]
) -> list[Diagnostic]:
    names: dict[str, set[str]] = {}
    for res in resources:
        names.setdefault(res.ref.kind, set()).add(res.ref.name)
    index = _Index(
        names,
        {r.ref.name: r.manifest for r in resources if isinstance(r.manifest, Template)},
    )
    out: list[Diagnostic] = []
    for res in resources:
        check = _CHECKS.get(res.ref.kind)
        if check is None:
            continue
        ctx = contexts[res.ref]
        out += [ctx.diag(path, msg, hint) for path, msg, hint in check(res.manifest, index)]
    out += _unique_across(resources, contexts, _uuids, "uuid")
    out += _unique_across(resources, contexts, _macs, "MAC address")
    out += _unique_across(resources, contexts, _pool_paths, "pool directory")
    out += _unique_across(resources, contexts, _bridges, "bridge")
    out += _overlapping_subnets(resources, contexts)
    policies = [r for r in resources if isinstance(r.manifest, HostPolicy)]
    for extra in policies[1:]:
        out.append(
            contexts[extra.ref].diag(
                ("metadata", "name"),
                f"a second HostPolicy; {policies[0].ref} already sets the host's policy",
                "keep one HostPolicy per host",
            )
        )
    return out
