"""The Provider protocol: how the engine reads and changes a host without knowing which one.

A provider observes the whole host in one bulk read, and applies one Change at a time. It
reports what the host cannot do as UnsupportedError, never pretends.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from reconciler.model.errors import ReconError
from reconciler.model.fields import Fields
from reconciler.model.plan import Change
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.model.secrets import SecretValues

MANAGED_BY = "recon"


@dataclass(frozen=True, slots=True)
class Stamp:
    """recon's mark on an object it owns, kept on the host with the object."""

    file: str
    spec_hash: str
    applied: Fields
    revision: str | None = None
    set_name: str = "default"
    managed_by: str = MANAGED_BY
    # The manifest's metadata, for `get -o yaml` and label selectors: not part of the spec
    # hash (a label is not a change to the object itself), compared on their own.
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    # What the provider made beyond the spec, for the record (a built template's artifact:
    # its image volume, digest, build time, packages). Not compared.
    record: Mapping[str, Any] = field(default_factory=dict)
    # Salted digests (model/secrets.py) of the secret values applied, by flat key, and their
    # salt: a new value behind the same reference is a change. Never a value.
    salt: str | None = None
    secrets: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Observed:
    """One object as the host has it. fields uses the keys of reconciler.model.fields."""

    ref: ResourceRef
    fields: Fields
    stamp: Stamp | None
    uuid: str | None = None
    running: bool | None = None
    # Bytes of RAM the host promises this guest (guests only), whoever manages it.
    guaranteed_bytes: int = 0
    memory_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    # A running guest's saved (persistent) definition, where it differs from what the guest
    # runs now (fields holds the latter): what its next boot would get. Empty otherwise.
    saved: Fields = field(default_factory=dict)
    # Paths of what on the host still needs this object (a pool's volumes, the volumes backed
    # by a template's image): a prune leaves it alone while any is left.
    in_use_by: tuple[str, ...] = ()
    # Paths of the volumes a delete with --delete-volumes removes with it (a guest's disks).
    volumes: tuple[str, ...] = ()

    @property
    def owned(self) -> bool:
        return self.stamp is not None and self.stamp.managed_by == MANAGED_BY


@dataclass(frozen=True, slots=True)
class InotifyUse:
    """fs.inotify.max_user_instances and the inotify instances root holds now, on a local
    LXC host: each systemd container holds a few against root's limit, and a container whose
    init cannot get its own stops right after its start."""

    limit: int
    in_use: int
    # What one systemd container holds against root (measured on debian-12-minimal:
    # systemd 5, logind 1, agetty 1; its dbus-daemon's counts against its own user).
    per_container: int = 7

    def room(self) -> int:
        """How many more containers fit."""
        return max(self.limit - self.in_use, 0) // self.per_container

    def needed(self, containers: int) -> int:
        """Instances in use once that many more containers run."""
        return self.in_use + containers * self.per_container

    def near(self) -> bool:
        """Too close to the limit for two more containers: a container's init that stopped
        right after its start most likely found none left."""
        return self.room() < 2

    def suggested(self, containers: int = 0) -> int:
        """A limit to raise it to: 1024, or a power of two twice what is needed."""
        value = 1024
        while value < 2 * self.needed(containers):
            value *= 2
        return value


@dataclass(slots=True)
class HostFacts:
    uri: str
    hostname: str
    driver: str
    memory_bytes: int
    cpus: int
    # Capabilities of this host, by name (e.g. "live-memory", "ksm"): False means the host
    # cannot do it and recon says so rather than pretending.
    capabilities: dict[str, bool] = field(default_factory=dict)
    # A local LXC host's inotify limit and use (None elsewhere, and in an export).
    inotify: InotifyUse | None = None


@dataclass(slots=True)
class Observation:
    host: HostFacts
    objects: dict[ResourceRef, Observed]
    # False when part of the host could not be read: the planner then refuses to prune.
    complete: bool = True
    # What the other driver of the same libvirtd uses (`file:PATH`, `network:NAME`, ...) ->
    # its domains: host-wide objects a connection cannot see the users of otherwise.
    shared: dict[str, list[str]] = field(default_factory=dict)
    _users: dict[str, list[ResourceRef]] | None = field(default=None, repr=False, compare=False)

    def users_of(self, path: str) -> list[ResourceRef]:
        """The guests whose disks or filesystems are the file at path (from each guest's
        extra["sources"]), whoever manages them."""
        if self._users is None:
            users: dict[str, list[ResourceRef]] = {}
            for ref, obs in self.objects.items():
                for source in obs.extra.get("sources", ()):
                    users.setdefault(source, []).append(ref)
            self._users = users
        return self._users.get(path, [])

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for ref in sorted(self.objects):
            obs = self.objects[ref]
            h.update(
                json.dumps(
                    [
                        str(ref),
                        obs.fields,
                        obs.running,
                        obs.uuid,
                        obs.stamp.spec_hash if obs.stamp else None,
                        *([obs.saved] if obs.saved else []),
                    ],
                    sort_keys=True,
                    default=str,
                ).encode()
            )
        return h.hexdigest()


class ProviderError(ReconError):
    """A host refused or failed an operation."""


class HostUnreachable(ProviderError):
    """The connection to the host is gone (libvirtd stopped, restarted, or unreachable):
    nothing more can be done until it is back, and then everything can be tried again."""

    temporary = True


class UnsupportedError(ProviderError):
    """The host cannot do this at all (not a transient failure)."""


class NotOwnedError(ProviderError):
    """An object with a wanted name exists on the host and recon did not create it."""


class GuestNotRunning(ProviderError):
    """The guest is not running: nothing inside it can be reached."""


class AgentUnresponsive(ProviderError):
    """The guest runs, but its agent does not answer (not installed, not started yet, hung)."""


class ExecTimeout(ProviderError):
    """A command inside the guest did not finish in time (it may still run there)."""


# What a provider observes for a setting inside a guest it could not ask (its agent does not
# answer): a value no manifest can hold, so that diff shows a difference, never a match.
AGENT_UNKNOWN = "(unknown: the guest agent does not answer)"


Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ExecResult:
    """A command run inside a guest (its agent, or a container's namespaces): what it printed
    and how it ended."""

    exit_code: int
    stdout: bytes
    stderr: bytes


class Provider(Protocol):
    name: str

    def observe(self) -> Observation: ...

    def apply(self, change: Change, resource: Resource | None, context: ApplyContext) -> str: ...

    def subscribe(
        self,
        notify: Callable[[str], None],
        connection: Callable[[bool, str], None] | None = None,
    ) -> Callable[[], None]:
        """Call notify(why) (from another thread) when the host changes, and connection(up,
        why) when the connection events come over is lost or back; returns a stop function
        that never raises."""
        ...

    def current(self) -> bool:
        """Whether this open provider still sees the host as it is: a long-running loop
        reuses it across passes while this is true, and opens a new one when not."""
        ...

    def flush(self) -> None:
        """Make every change so far durable (the end of a loop's pass)."""
        ...

    def exec(self, ref: ResourceRef, argv: list[str], timeout: float) -> ExecResult:
        """argv run inside the guest (a VM's agent, a container's namespaces), waited for
        up to timeout seconds. GuestNotRunning, AgentUnresponsive, ExecTimeout,
        UnsupportedError, or ProviderError when the guest is not there."""
        ...

    def enter_argv(self, ref: ResourceRef, argv: list[str]) -> list[str]:
        """The host command that gives a terminal inside the guest (argv, or its shell, in a
        container; the serial console of a VM); the caller replaces itself with it."""
        ...

    def console_argv(self, ref: ResourceRef) -> list[str]:
        """The host command that attaches a terminal to the guest's console."""
        ...

    def guest_status(self, refs: Sequence[ResourceRef]) -> dict[ResourceRef, dict[str, Any]]:
        """What only the running guests among refs can say (agent state, addresses, OS),
        asked one by one: for `get`, not for the bulk observation."""
        ...

    def host_settings_changed(self) -> list[str]:
        """The guests whose host-side settings (the memory cgroup holding a guarantee) differ
        now from what the last observe() read, which no host event reports. Cheap (files
        only, no call to the host's daemon), so that a loop can ask often."""
        ...

    def close(self) -> None: ...


@dataclass(slots=True)
class ApplyContext:
    """What an apply needs beyond the change itself."""

    resources: Mapping[ResourceRef, Resource]
    observation: Observation
    revision: str | None = None
    set_name: str = "default"
    delete_volumes: bool = False
    # --adopt: take over objects with wanted names recon did not create, volumes included.
    adopt: bool = False
    shutdown_timeout: float = 60.0
    progress: Progress = lambda message: None
    # "Template/NAME" (or "Container/NAME" for an application cache) -> why its build failed
    # (reconciler.build, before the apply): that change fails with it, and what needs it is
    # not attempted.
    build_errors: Mapping[str, str] = field(default_factory=dict)
    # Every secret the plan's resources reference, read before the first action.
    secrets: SecretValues = field(default_factory=dict)
    # Checks a provider leaves for the end of the apply, in the order it left them (a guest it
    # started still runs a moment later): each raises a ReconError that fails its change.
    settle: list[tuple[ResourceRef, Callable[[], None]]] = field(default_factory=list)
