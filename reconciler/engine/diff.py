"""Diff, pure: desired resources against an observation -> changes with disruption classes.

Only the fields a manifest sets are compared (defaults a hypervisor adds are not drift). Fields
the host cannot show (guest settings, template package lists) are compared with what recon
applied last, kept in the object's stamp.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.engine.notes import (
    HOST,
    SAVED_DEFINITION_NOTE,
    host_wide_note,
    shrink_note,
)
from reconciler.model.fields import Fields
from reconciler.model.kinds import Container, HostPolicy, VirtualMachine
from reconciler.model.plan import Action, Change, Disruption, FieldChange
from reconciler.model.quantity import parse_quantity
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.model.secrets import SecretValues, secret_digest, secret_fields
from reconciler.providers.base import Observation, Observed

GUESTS = ("VirtualMachine", "Container")
# What a plan shows for a secret's value: never the value, nor its digest.
SECRET_APPLIED = "(the value applied last)"
SECRET_UNKNOWN = "(not recorded as applied)"
SECRET_NEW = "(a new value)"


def _base(path: str) -> str:
    """`disks[root].size` -> `disks[].size`: the shape a rule is written for."""
    return re.sub(r"\[[^\]]*\]", "[]", path)


# Fields whose change recreates the object, per kind.
_REPLACE: dict[str, set[str]] = {
    "VirtualMachine": {"uuid", "disks[].template", "disks[].pool", "disks[].format"},
    "Container": {"uuid", "template", "disk.pool", "applications"},
    "StoragePool": {"type", "path"},
    "Network": {"mode", "bridge", "ipv4.address", "ipv4.dhcp.start", "ipv4.dhcp.end"},
    "Template": {"format", "pool", "source.file.path", "source.file.sha256"},
}
# Fields a running guest takes without a reboot (when the host can do it).
_LIVE = {
    "state",
    "autostart",
    "memoryGuarantee",
    "cpus",
    "memory",
    "disks[].size",
    "disk.size",
    "swap",
    # A container's hostname (a VM's is guest.hostname) and resolver: set inside it, live.
    "hostname",
    "dns.nameservers",
    "dns.search",
    "guest.users[].password.valueFrom.env",
    "guest.users[].password.valueFrom.file",
    "guest.users[].sshAuthorizedKeys",
}
# Fields a provider always reports when the host has them: for these, absence on the host is
# a difference, never "as recorded in the stamp".
OBSERVED: dict[str, set[str]] = {
    "VirtualMachine": {
        "cpus",
        "maxCpus",
        "memory",
        "maxMemory",
        "firmware",
        "bootOrder",
        "disks[].size",
        "disks[].pool",
        "disks[].format",
        "disks[].bus",
        "interfaces[].network",
        "interfaces[].mac",
        "interfaces[].model",
        "state",
        "autostart",
        "uuid",
    },
    "Container": {
        "cpus",
        "memory",
        "swap",
        "disk.size",
        "disk.pool",
        "interfaces[].network",
        "interfaces[].mac",
        "interfaces[].ipAddresses",
        "interfaces[].gateway",
        "state",
        "autostart",
        "uuid",
    },
    "StoragePool": {"type", "path", "autostart"},
    "Network": {"mode", "ipv4.address", "ipv4.dhcp.start", "ipv4.dhcp.end", "autostart"},
}
# The host capability a live change needs; without it the change waits for a restart.
LIVE_NEEDS = {"memory": "live-memory", "cpus": "live-vcpus"}
# Changes a host cannot make at all: reported, never pretended.
NEEDS = {
    "virtualization": "virt-type",
    "disks[].size": "volume-resize",
    "disk.size": "volume-resize",
    "ksm.enabled": "ksm",
    "ksm.pagesToScan": "ksm",
    "ksm.sleepMillisecs": "ksm",
    "ksm.mergeAcrossNodes": "ksm",
}


def _quantity(value: Any) -> int | None:
    try:
        return parse_quantity(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _grows(before: Any, after: Any) -> bool:
    old, new = _quantity(before), _quantity(after)
    return old is not None and new is not None and new > old


_DISK = re.compile(r"^disks\[[^\]]*\]\.")


def _new_disk(path: str, observed: Observed, applied: Fields) -> bool:
    """A disk the guest does not have yet (neither the host nor the last apply knows it):
    adding one is not changing the identity of an existing one."""
    found = _DISK.match(path)
    if found is None:
        return False
    prefix = found.group(0)
    return not any(key.startswith(prefix) for key in (*observed.fields, *applied))


@dataclass(slots=True)
class DiffResult:
    changes: list[Change] = field(default_factory=list)
    unchanged: list[ResourceRef] = field(default_factory=list)
    not_owned: list[ResourceRef] = field(default_factory=list)
    # Owned by recon, but stamped by another `--set`: (resource, that set).
    other_set: list[tuple[ResourceRef, str]] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    # What of unsupported the manifests still ask of a guest: the host does not match.
    unmet: list[str] = field(default_factory=list)


def _item_gone(path: str, desired: Fields) -> bool:
    """Whether the list item a field belongs to is gone from the manifest (every field of it
    is None), rather than one field of it dropped (a disk that loses its `template`)."""
    item = path[: path.index("]") + 1]
    return not any(k.startswith(item) and v is not None for k, v in desired.items())


def classify(
    kind: str,
    path: str,
    before: Any,
    after: Any,
    desired: Fields,
    observed: Observed,
    capabilities: dict[str, bool],
) -> Disruption:
    base = _base(path)
    if after is None and base.startswith(("disks[]", "interfaces[]")) and _item_gone(path, desired):
        # A disk or interface removed: detached at the next start; its volume is kept.
        return Disruption.RESTART if observed.running else Disruption.NONE
    if before is None and base in ("disks[].size", "disks[].pool"):
        # The guest has the disk but its volume is gone: the volume is made again where the
        # guest expects it; nothing about the guest's identity changes.
        return Disruption.NONE
    if base in _REPLACE.get(kind, set()):
        return Disruption.REPLACE
    if kind not in GUESTS:
        # Pools, networks and templates have no running guest to disturb; KSM is live.
        return Disruption.LIVE if base.startswith("ksm.") else Disruption.NONE
    if base in ("disks[].size", "disk.size"):
        old, new = _quantity(before), _quantity(after)
        if old is not None and new is not None and new < old:
            return Disruption.REPLACE  # a disk never shrinks in place: that loses data
    if not observed.running:
        return Disruption.NONE
    if base in ("memory", "cpus"):
        ceiling_key = "maxMemory" if base == "memory" else "maxCpus"
        ceiling = desired.get(ceiling_key, observed.fields.get(ceiling_key))
        if ceiling is None or observed.fields.get(ceiling_key) != ceiling:
            return Disruption.RESTART  # no hotplug ceiling on the running guest
        new_value = _quantity(after) if base == "memory" else after
        limit = _quantity(ceiling) if base == "memory" else ceiling
        if new_value is None or limit is None or new_value > limit:
            return Disruption.RESTART
        need = LIVE_NEEDS[base]
        if base == "memory":
            # Growing needs hotplug (DIMMs); shrinking is the balloon's job.
            old = _quantity(before)
            need = "memory-hotplug" if old is None or new_value > old else "live-memory"
        if not capabilities.get(need, False):
            return Disruption.RESTART
        return Disruption.LIVE
    if base in _LIVE or base.startswith("guest."):
        return Disruption.LIVE
    return Disruption.RESTART


def _compare(
    res: Resource,
    observed: Observed,
    applied: Fields,
    capabilities: dict[str, bool],
    unsupported: list[str],
    unmet: list[str] | None = None,
) -> list[FieldChange]:
    desired = res.desired_fields(applied)
    if isinstance(res.manifest, VirtualMachine | Container) and "state" not in desired:
        # A guest runs unless its manifest says Stopped: a guest left stopped (an apply
        # killed between its forced off and its start, a guest that shut itself down) is a
        # difference even where the manifest leaves `state` to its default.
        desired["state"] = res.manifest.spec.state
    out: list[FieldChange] = []
    for path, after in desired.items():
        if path in observed.fields:
            before = observed.fields[path]
        elif path in applied and _base(path) not in OBSERVED.get(res.ref.kind, ()):
            before = applied[path]
        else:
            # Missing on a host that would show it (a disk volume deleted behind recon's
            # back): that is a difference, not "as applied".
            before = None
        if before == after and path in observed.saved and observed.saved[path] != after:
            # The running guest has it, its saved definition does not: only the definition
            # is rewritten, nothing running is disturbed.
            out.append(
                FieldChange(
                    path, observed.saved[path], after, Disruption.NONE, SAVED_DEFINITION_NOTE
                )
            )
            continue
        if before == after or (path == "uuid" and after is None):
            continue  # unpinning a uuid keeps the one the guest has
        need = NEEDS.get(_base(path))
        if need == "volume-resize" and not _grows(before, after):
            need = None  # a new disk is created at its size; a shrink is a replace
        if need and not capabilities.get(need, False):
            unsupported.append(
                f"{res.ref}: {path}: this host cannot change it ({need} is not "
                f"supported); left as it is ({before} on the host, {after} asked)"
            )
            if need == "volume-resize" and unmet is not None:
                unmet.append(unsupported[-1])
            continue
        if _new_disk(path, observed, applied):
            # The guest gets the disk at its next start: nothing existing is replaced.
            disruption = Disruption.RESTART if observed.running else Disruption.NONE
        else:
            disruption = classify(
                res.ref.kind, path, before, after, desired, observed, capabilities
            )
        note = shrink_note(res.ref.kind, path, before, after, disruption)
        out.append(FieldChange(path, before, after, disruption, note))
    return out


def _max_disruption(fields: Sequence[FieldChange]) -> Disruption:
    worst = Disruption.NONE
    for f in fields:
        if f.disruption.rank > worst.rank:
            worst = f.disruption
    return worst


def _secret_changes(
    res: Resource,
    observed: Observed,
    secrets: SecretValues,
    capabilities: dict[str, bool],
    unsupported: list[str],
) -> list[FieldChange]:
    """A secret whose value is not the one applied last (its salted digest in the stamp
    differs, or the stamp records none) is a change, shown without either value."""
    out: list[FieldChange] = []
    stamp = observed.stamp
    for key, _path, _ref in secret_fields(res.manifest):
        value = secrets.get((res.ref, key))
        if value is None:
            continue
        recorded = stamp.secrets.get(key) if stamp is not None else None
        salt = stamp.salt if stamp is not None else None
        if recorded is not None and salt is not None and secret_digest(value, salt) == recorded:
            continue
        if not capabilities.get("guest-password", False):
            unsupported.append(
                f"{res.ref}: {key}: this host cannot set it (guest-password is not "
                "supported); left as it is"
            )
            continue
        before = SECRET_APPLIED if recorded is not None else SECRET_UNKNOWN
        disruption = Disruption.LIVE if observed.running else Disruption.NONE
        out.append(FieldChange(key, before, SECRET_NEW, disruption))
    return out


def diff(
    resources: Sequence[Resource],
    observation: Observation,
    *,
    adopt: bool = False,
    secrets: SecretValues | None = None,
    set_name: str | None = None,
) -> DiffResult:
    """secrets: the values of the secrets the resources reference, when known (not when
    planning against an export): a value changed since the last apply is a change.
    set_name: the set these manifests form; an object another set stamped is theirs (in
    other_set) unless adopt moves it to this one."""
    result = DiffResult()
    caps = observation.host.capabilities
    for res in resources:
        observed = observation.objects.get(res.ref)
        if isinstance(res.manifest, HostPolicy):
            # The host is one object, whatever name the manifest gives its policy.
            _diff_host_policy(res, observation.objects.get(HOST), caps, result)
            continue
        if observed is None:
            desired = res.desired_fields()
            result.changes.append(
                Change(
                    res.ref,
                    Action.CREATE,
                    Disruption.NONE,
                    tuple(FieldChange(k, None, v, Disruption.NONE) for k, v in desired.items()),
                    "not on the host",
                    res.file,
                )
            )
            continue
        if not observed.owned and not adopt:
            result.not_owned.append(res.ref)
            continue
        theirs = (
            observed.stamp.set_name
            if observed.owned and observed.stamp is not None and set_name is not None
            else None
        )
        moving = theirs is not None and theirs != set_name
        if moving and not adopt:
            assert theirs is not None
            result.other_set.append((res.ref, theirs))
            continue
        warned = len(result.unsupported)
        applied = observed.stamp.applied if observed.stamp else {}
        fields = _compare(res, observed, applied, caps, result.unsupported, result.unmet)
        if secrets is not None:
            fields += _secret_changes(res, observed, secrets, caps, result.unsupported)
        left_alone = len(result.unsupported) > warned
        worst = _max_disruption(fields)
        if fields:
            action = Action.REPLACE if worst is Disruption.REPLACE else Action.UPDATE
            reason = (
                "adopt"
                if not observed.owned
                else f"adopt from the set {theirs}"
                if moving
                else _reason(res, observed, fields)
            )
            result.changes.append(Change(res.ref, action, worst, tuple(fields), reason, res.file))
        elif (
            not observed.owned
            or moving
            or observed.stamp is None
            # A stamp records what was applied: not a change the host could not make.
            or (observed.stamp.spec_hash != res.desired_hash(applied) and not left_alone)
            or _metadata_differs(res, observed)
        ):
            # Same on the host, but the stamp is missing or stale: record the new spec.
            result.changes.append(
                Change(
                    res.ref,
                    Action.UPDATE,
                    Disruption.NONE,
                    (),
                    "adopt"
                    if not observed.owned
                    else f"adopt from the set {theirs}"
                    if moving
                    else "stamp"
                    if observed.stamp is None
                    or observed.stamp.spec_hash != res.desired_hash(applied)
                    else "labels or annotations",
                    res.file,
                )
            )
        else:
            result.unchanged.append(res.ref)
    return result


def _reason(res: Resource, observed: Observed, fields: Sequence[FieldChange]) -> str:
    """Why a change is planned; for a built Template, what happens to the guests."""
    revision = next((f for f in fields if f.path == "revision"), None)
    if res.ref.kind != "Template" or revision is None:
        return "differs from the manifest"
    why = (
        "older than maxAge and the repository moved: rebuilt"
        if str(revision.before).endswith("(rebuilt since)")
        else "spec changed: a new build"
    )
    users = len(observed.in_use_by)
    if users:
        why += f"; new guests get it, {users} existing disk(s) keep the image they were made from"
    return why


def _metadata_differs(res: Resource, observed: Observed) -> bool:
    """Labels and annotations live in the stamp only: a change to them rewrites the stamp."""
    assert observed.stamp is not None
    meta = res.manifest.metadata
    return dict(observed.stamp.labels) != meta.labels or (
        dict(observed.stamp.annotations) != meta.annotations
    )


def _diff_host_policy(
    res: Resource, observed: Observed | None, caps: dict[str, bool], result: DiffResult
) -> None:
    """The host itself always exists; only its KSM settings live on it. The memory reserve and
    overcommit policy are recon's own and act at admission time."""
    assert isinstance(res.manifest, HostPolicy)
    ksm = res.manifest.spec.ksm
    if ksm is None:
        result.unchanged.append(res.ref)
        return
    wanted = {k: v for k, v in res.desired_fields().items() if k.startswith("ksm.")}
    if not caps.get("ksm", False) or observed is None:
        result.unsupported.append(
            f"{res.ref}: ksm: this host does not expose KSM settings; "
            "left as they are (memoryReserve and guaranteeOvercommit "
            "still apply)"
        )
        result.unchanged.append(res.ref)
        return
    fields = tuple(
        FieldChange(k, observed.fields.get(k), v, Disruption.LIVE, host_wide_note(k, v))
        for k, v in wanted.items()
        if observed.fields.get(k) != v
    )
    if fields:
        result.changes.append(
            Change(
                res.ref, Action.UPDATE, Disruption.LIVE, fields, "differs from the host", res.file
            )
        )
    else:
        result.unchanged.append(res.ref)


def prune_candidates(
    resources: Sequence[Resource], observation: Observation, set_name: str
) -> list[Change]:
    """Objects recon owns in this set that no manifest names any more."""
    wanted = {r.ref for r in resources}
    out: list[Change] = []
    for ref, obs in observation.objects.items():
        if ref in wanted or not obs.owned or obs.stamp is None or ref.kind == "HostPolicy":
            continue
        if obs.stamp.set_name != set_name:
            continue
        out.append(
            Change(
                ref,
                Action.DELETE,
                Disruption.REPLACE if ref.kind in GUESTS else Disruption.NONE,
                (),
                "no manifest names it (prune)",
                obs.stamp.file,
            )
        )
    return out
