"""What every kind's module shares: the open host, libvirt's errors turned into recon's,
lookups that tolerate a missing object, and recon's stamp and ownership rule.

A kind module (storage, networks, templates, guests, host_policy) is a set of functions over
a `Host`; it never keeps state of its own between calls. What a loop keeps between passes
(parsed domains, volumes) belongs to `LibvirtProvider` and is handed in.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import libvirt

from reconciler.model.fields import spec_hash
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.model.secrets import secret_digest, secret_fields
from reconciler.providers.base import (
    ApplyContext,
    HostUnreachable,
    NotOwnedError,
    ProviderError,
    Stamp,
    UnsupportedError,
)
from reconciler.providers.libvirt import xml as lx
from reconciler.providers.libvirt.embedded import EmbeddedHost
from reconciler.providers.libvirt.host import RootTrees

T = TypeVar("T")

LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE
CONFIG = libvirt.VIR_DOMAIN_AFFECT_CONFIG

_GONE = (
    libvirt.VIR_ERR_NO_DOMAIN,
    libvirt.VIR_ERR_NO_NETWORK,
    libvirt.VIR_ERR_NO_STORAGE_POOL,
    libvirt.VIR_ERR_NO_STORAGE_VOL,
)


@dataclass(frozen=True, slots=True)
class Host:
    """An open connection and what recon learned about it when it opened it."""

    conn: libvirt.virConnect
    uri: str
    # test, qemu, kvm, lxc or vz: "kvm" when QEMU can use KVM here.
    driver: str
    capabilities: dict[str, bool]
    # Whether recon runs on the machine libvirtd runs on (cgroups, KSM's switch, root files).
    local: bool
    embedded: EmbeddedHost | None
    # recon's home: where built templates wait to be uploaded ($RECON_HOME/templates).
    home: Path | None = None
    # Template archives extracted for the container roots this provider makes.
    trees: RootTrees | None = None
    # Volume records not yet written into their pools' stamps: pool -> volume name -> record
    # (None: forget it). Written once per pool when the provider flushes, not once per volume
    # (on the test driver a pool redefinition rewrites every volume of the pool).
    pending_volumes: dict[str, dict[str, dict[str, str] | None]] = field(default_factory=dict)


@contextmanager
def host_errors(what: str) -> Iterator[None]:
    """libvirt's errors as recon's: UnsupportedError for what the host cannot do at all,
    ProviderError (with what to do) for the rest."""
    try:
        yield
    except libvirt.libvirtError as exc:
        code = exc.get_error_code()
        message = f"{what}: {exc.get_error_message() or exc}"
        if code == libvirt.VIR_ERR_NO_SUPPORT:
            raise UnsupportedError(message) from None
        if exc.get_error_domain() == libvirt.VIR_FROM_RPC:
            # Said in the message itself: an apply's summary shows the message only.
            raise HostUnreachable(
                f"{message} (the connection to libvirtd was lost: start libvirtd again "
                "and rerun; it continues from where the host is)"
            ) from None
        raise ProviderError(message) from None


@contextmanager
def undefine_on_error(obj: Any) -> Iterator[None]:
    """A network or pool recon has just defined and cannot start is undefined again: left
    defined and inactive, it would look done to the next run, which would never start it."""
    try:
        yield
    except libvirt.libvirtError:
        if obj is not None:
            with suppress(libvirt.libvirtError):
                obj.undefine()
        raise


@contextmanager
def unless_vanished() -> Iterator[None]:
    """Skip an object deleted by someone else between the bulk list and its own read: on a
    host others use, that happens, and it is not an error of the observation."""
    try:
        yield
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in _GONE:
            raise


def lookup(fn: Callable[[str], T], name: str) -> T | None:
    """fn(name), or None when the host has no such object."""
    try:
        return fn(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() in _GONE:
            return None
        raise


def via(host: Host) -> str | None:
    """The connection to record in a host-wide object's stamp: a local libvirtd's URI (its
    other driver sees the same object), nothing for the embedded or a remote host."""
    return host.uri if host.local and host.embedded is None else None


def make_stamp(resource: Resource, context: ApplyContext, via: str | None = None) -> Stamp:
    """The stamp an apply writes. `via`: the connection a host-wide object (pool, network,
    template image) is applied through, recorded so that a plan through the other local
    driver says the set claims it from both."""
    fields = resource.desired_fields()
    # A fresh salt at each apply; the digests of the values this apply uses (read before
    # the first action: a value missing here is a bug, never silently "applied").
    salt = secrets.token_hex(16)
    digests = {}
    for key, _path, _ref in secret_fields(resource.manifest):
        value = context.secrets.get((resource.ref, key))
        if value is None:
            raise ProviderError(
                f"{resource.ref}: {key}: the secret was not read before the apply; "
                "nothing was changed for it"
            )
        digests[key] = secret_digest(value, salt)
    return Stamp(
        file=resource.file,
        spec_hash=resource.desired_hash(),
        applied=fields,
        revision=context.revision,
        set_name=context.set_name,
        labels=dict(resource.manifest.metadata.labels),
        annotations=dict(resource.manifest.metadata.annotations),
        salt=salt if digests else None,
        secrets=digests,
        record={"via": via} if via else {},
    )


def check_owned(ref: ResourceRef, stamp: Stamp | None, context: ApplyContext) -> None:
    """recon changes only what it created, or what the plan adopts (--adopt)."""
    obs = context.observation.objects.get(ref)
    adopting = obs is not None and not obs.owned
    if stamp is None and not adopting:
        raise NotOwnedError(
            f"{ref} exists on the host but was not created by recon",
            "take it over with --adopt, or remove it yourself",
        )


def forget_applied(dom: libvirt.virDomain, prefix: str, *, fields: bool = True) -> None:
    """Drop fields (unless fields=False) and secret digests from a guest's stamp: what did not
    reach the guest (so the next apply tries again)."""
    parsed = lx.parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    if parsed.stamp is None or parsed.kind is None:
        return
    applied = {
        k: v for k, v in parsed.stamp.applied.items() if not (fields and k.startswith(prefix))
    }
    digests = {k: v for k, v in parsed.stamp.secrets.items() if not k.startswith(prefix)}
    stamp = replace(parsed.stamp, spec_hash=spec_hash(applied), applied=applied, secrets=digests)
    flags = CONFIG | (LIVE if dom.isActive() else 0)
    dom.setMetadata(
        libvirt.VIR_DOMAIN_METADATA_ELEMENT,
        lx.stamp_metadata_xml(stamp, parsed.kind),
        "recon",
        lx.NS,
        flags,
    )
