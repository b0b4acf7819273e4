"""Plan, pure: order the diff by references, add prunes in reverse, check memory admission."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.engine.diff import GUESTS, diff, prune_candidates
from reconciler.engine.kept import kept_volume_problems
from reconciler.engine.notes import HOST, other_connection_warnings
from reconciler.load.graph import creation_order, sort_key
from reconciler.model.capabilities import DRIVERS, family
from reconciler.model.capability_checks import check_manifest
from reconciler.model.diagnostics import format_path
from reconciler.model.errors import ReconError
from reconciler.model.kinds import Container, HostPolicy, VirtualMachine
from reconciler.model.plan import Action, Change, Plan
from reconciler.model.quantity import format_quantity
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.model.secrets import SecretValues
from reconciler.model.selectors import Selector
from reconciler.providers.base import Observation


@dataclass(frozen=True, slots=True)
class PlanOptions:
    prune: bool = False
    set_name: str = "default"
    allow_empty: bool = False
    adopt: bool = False
    revision: str | None = None
    # With prune: the disks of pruned guests go too, so a pool they alone filled can go.
    delete_volumes: bool = False
    # The observation's fingerprint, which a saved plan carries: a control loop applies
    # its plans at once and does not need one.
    fingerprint: bool = True
    # `-l`: the manifests were selected by label; prune only owned objects whose recorded
    # labels match too, not everything else in the set.
    selector: Selector | None = None
    # The values of the secrets the manifests reference (read before planning): a value
    # changed since the last apply is a change. None: not compared (an export's plan).
    secrets: SecretValues | None = None


@dataclass(frozen=True, slots=True)
class Holder:
    ref: str
    managed: bool
    memory: int
    percent: int | None
    guaranteed: int


class PlanRefused(ReconError):
    """The plan cannot be applied as asked; nothing was changed."""


class AdmissionError(PlanRefused):
    """Guarantees would promise more memory than the host has: refused before any action."""

    def __init__(self, capacity: int, promised: int, holders: list[Holder]) -> None:
        self.capacity = capacity
        self.promised = promised
        self.holders = holders
        super().__init__(
            f"memory guarantees would promise {format_quantity(promised)} but the host "
            f"can promise {format_quantity(max(capacity, 0))} (RAM minus the HostPolicy "
            "reserve)",
            "lower memoryGuarantee or memory, stop a guest, or lower HostPolicy memoryReserve",
        )


def _guarantee_of(res: Resource) -> tuple[int, int | None, bool]:
    manifest = res.manifest
    if isinstance(manifest, VirtualMachine | Container):
        pct = manifest.spec.memory_guarantee
        running = manifest.spec.state == "Running"
        return manifest.spec.memory, pct, running
    return 0, None, False


def admission(
    resources: Sequence[Resource], observation: Observation, deleting: set[ResourceRef]
) -> tuple[list[Holder], int, int, str]:
    """Who holds what once the plan is applied, and whether it fits."""
    policy = next((r.manifest for r in resources if isinstance(r.manifest, HostPolicy)), None)
    reserve = policy.spec.memory_reserve if policy else 0
    mode = policy.spec.guarantee_overcommit if policy else "Refuse"
    holders: list[Holder] = []
    wanted = {r.ref for r in resources}
    for res in resources:
        memory, pct, running = _guarantee_of(res)
        if running and pct:
            holders.append(Holder(str(res.ref), True, memory, pct, memory * pct // 100))
    for ref, obs in observation.objects.items():
        if ref.kind not in GUESTS or ref in wanted or ref in deleting:
            continue
        if obs.running and obs.guaranteed_bytes:
            pct = round(100 * obs.guaranteed_bytes / obs.memory_bytes) if obs.memory_bytes else None
            holders.append(Holder(str(ref), obs.owned, obs.memory_bytes, pct, obs.guaranteed_bytes))
    holders += other_driver_holders(observation)
    capacity = observation.host.memory_bytes - reserve
    promised = sum(h.guaranteed for h in holders)
    return holders, capacity, promised, mode


def other_driver_holders(observation: Observation) -> list[Holder]:
    """The running guests with a guarantee of the host's other local driver (LXC beside
    QEMU), which the provider read beside this connection's: they share the same RAM."""
    host = observation.objects.get(HOST)
    other = host.extra.get("otherDriver") if host is not None else None
    if not isinstance(other, dict):
        return []
    out = []
    for guest in other.get("guests", ()):
        promised, memory = int(guest["guaranteed"]), int(guest["memory"])
        if promised:
            pct = round(100 * promised / memory) if memory else None
            ref = f"{guest['resource']} ({other['uri']})"
            out.append(Holder(ref, bool(guest["managed"]), memory, pct, promised))
    return out


def host_refusals(resources: Sequence[Resource], observation: Observation) -> list[str]:
    """What the observed host can never do in these manifests (a container on QEMU, EFI
    without OVMF): refused before any action rather than failing half way through an apply."""
    driver = observation.host.driver
    if family(driver) not in DRIVERS:
        return []
    out = []
    for res in resources:
        for problem in check_manifest(res.manifest, driver, observation.host.capabilities):
            if problem.error:
                out.append(
                    f"{res.file}:{res.line}: {res.ref}: {format_path(problem.path)}: "
                    f"{problem.message}"
                )
    return out


def starts_containers(
    changes: Sequence[Change], resources: Sequence[Resource], observation: Observation
) -> list[ResourceRef]:
    """The containers an apply of changes starts that do not run now (a restart or a replace
    of a running one gives back what it takes)."""
    wanted = {r.ref: r.manifest for r in resources}
    out = []
    for change in changes:
        manifest = wanted.get(change.ref)
        if not isinstance(manifest, Container) or manifest.spec.state != "Running":
            continue
        observed = observation.objects.get(change.ref)
        if observed is None or not observed.running:
            out.append(change.ref)
    return out


def inotify_warning(
    changes: Sequence[Change], resources: Sequence[Resource], observation: Observation
) -> str | None:
    """On a local LXC host: the containers the plan starts will not all find the inotify
    instances their init needs (root's fs.inotify.max_user_instances), and those that do
    not stop right after their start."""
    use = observation.host.inotify
    if use is None or family(observation.host.driver) != "lxc":
        return None
    starting = starts_containers(changes, resources, observation)
    if not starting or use.needed(len(starting)) <= use.limit:
        return None
    left = max(len(starting) - use.room(), 0)
    return (
        f"{len(starting)} containers to start need about {len(starting) * use.per_container} "
        f"inotify instances ({use.per_container} each for systemd), but "
        f"fs.inotify.max_user_instances={use.limit} has {max(use.limit - use.in_use, 0)} "
        f"left ({use.in_use} in use): about {left} of them would stop right after their "
        f"start; raise it first (sysctl -w fs.inotify.max_user_instances="
        f"{use.suggested(len(starting))})"
    )


def make_plan(
    resources: Sequence[Resource], observation: Observation, options: PlanOptions = PlanOptions()
) -> Plan:
    if not resources and not options.allow_empty:
        raise PlanRefused(
            "the desired set is empty", "pass --allow-empty if you really mean to remove everything"
        )
    result = diff(
        resources,
        observation,
        adopt=options.adopt,
        secrets=options.secrets,
        set_name=options.set_name,
    )
    if result.not_owned:
        names = ", ".join(str(r) for r in result.not_owned)
        raise PlanRefused(
            f"{names}: exists on the host but was not created by recon; it is left untouched",
            "rename the manifest, remove the object yourself, or take it over with --adopt",
        )
    if result.other_set:
        # Ownership never moves silently: the other set's prune would then delete what its
        # own manifests name, and two loops would fight over the object forever.
        names = ", ".join(f"{ref} (set {theirs})" for ref, theirs in result.other_set)
        sets = sorted({theirs for _, theirs in result.other_set})
        raise PlanRefused(
            f"{names}: owned by another set of manifests, not '{options.set_name}'; "
            "it is left untouched",
            "apply them with "
            + " / ".join(f"--set {name}" for name in sets)
            + f", or move them to '{options.set_name}' with --adopt (the other set then "
            "no longer changes or prunes them)",
        )
    refused = host_refusals(resources, observation)
    if refused:
        raise PlanRefused(
            f"this host ({observation.host.driver}) cannot do what the manifests ask; "
            "nothing was done:\n  " + "\n  ".join(refused),
            f"`recon validate --driver {family(observation.host.driver)} -f ...` lists them "
            "offline; see docs/real-hosts.md for what each driver supports",
        )
    kept_refused, kept_unmet = kept_volume_problems(resources, observation)
    if kept_refused:
        raise PlanRefused(
            "a disk would get back a kept volume larger than it asks; nothing was done:\n  "
            + "\n  ".join(kept_refused),
            "`recon get volumes` lists the volumes recon kept",
        )
    changes = result.changes
    deletes: list[Change] = []
    spared: list[str] = []
    if options.prune:
        if not observation.complete:
            raise PlanRefused(
                "the host was only partly observed; refusing to prune",
                "fix the observation errors above and run again",
            )
        deletes = prune_candidates(resources, observation, options.set_name)
        if options.selector is not None:
            selector = options.selector
            deletes = [d for d in deletes if selector.matches(_labels(observation, d.ref))]
        deletes, spared = _spare_in_use(deletes, observation, options.delete_volumes)
    # Ordered among themselves: what does not change is already on the host.
    changing = {c.ref for c in changes}
    order = {
        ref: i for i, ref in enumerate(creation_order([r for r in resources if r.ref in changing]))
    }
    changes.sort(key=lambda c: order.get(c.ref, len(order)))
    deletes.sort(key=lambda c: sort_key(c.ref), reverse=True)
    holders, capacity, promised, mode = admission(resources, observation, {c.ref for c in deletes})
    warnings = list(result.unsupported) + kept_unmet + spared
    warnings += other_connection_warnings(
        {r.ref for r in resources}, deletes, observation, options.set_name
    )
    too_many = inotify_warning(changes, resources, observation)
    if too_many:
        warnings.append(too_many)
    if promised > capacity:
        if mode == "Refuse":
            raise AdmissionError(capacity, promised, holders)
        warnings.append(
            f"memory guarantees promise {format_quantity(promised)}, more than "
            f"the {format_quantity(max(capacity, 0))} the host can promise "
            "(guaranteeOvercommit: Warn)"
        )
    return Plan(
        changes=changes + deletes,
        unchanged=sorted(result.unchanged, key=sort_key),
        fingerprint=observation.fingerprint() if options.fingerprint else "",
        revision=options.revision,
        host=observation.host.uri,
        warnings=warnings,
        unmet=list(result.unmet) + kept_unmet,
    )


def _spare_in_use(
    deletes: list[Change], observation: Observation, delete_volumes: bool
) -> tuple[list[Change], list[str]]:
    """A prune leaves alone what the host still needs: a pool that holds volumes, a template
    whose image backs a volume. The plan says so instead of failing, and the rest goes on.
    What the plan's own deletes take with them does not count: a pruned template's image,
    and the disks of pruned guests with --delete-volumes."""
    kept: list[Change] = []
    notes: list[str] = []
    freed: set[str] = set()
    rank = {"VirtualMachine": 0, "Container": 0, "Template": 1, "Network": 1, "StoragePool": 2}
    pruned = {c.ref for c in deletes}
    for change in sorted(deletes, key=lambda c: rank.get(c.ref.kind, 0)):
        obs = observation.objects[change.ref]
        left = [p for p in obs.in_use_by if p not in freed]
        if left:
            notes.append(_in_use_note(change.ref, left, observation, pruned))
            continue
        kept.append(change)
        if change.ref.kind in GUESTS:
            freed.add(str(change.ref))  # its interfaces go with it
        if change.ref.kind not in GUESTS or delete_volumes:
            freed.update(obs.volumes)
    return kept, notes


def _in_use_note(
    ref: ResourceRef, paths: list[str], observation: Observation, pruned: set[ResourceRef]
) -> str:
    def named(path: str) -> str:
        # Whose disk it is: a guest that stays, one this prune deletes (its disk kept), none.
        users = observation.users_of(path)
        staying = [str(u) for u in users if u not in pruned]
        if staying:
            whose = ", ".join(staying)
        elif users:
            whose = f"kept after {', '.join(str(u) for u in users)} is pruned"
        else:
            whose = "kept, no guest"
        return f"{path.rsplit('/', 1)[-1]} ({whose})"

    names = ", ".join(named(p) for p in paths[:3])
    if len(paths) > 3:
        names += f" and {len(paths) - 3} more"
    if ref.kind == "Network":
        return (
            f"{ref} is not pruned: it is in use by {', '.join(paths[:3])}"
            + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
            + "; remove their interfaces on it first"
        )
    if ref.kind == "Template" and not all(p.startswith("/") for p in paths):
        return f"{ref} is not pruned: it is in use by {', '.join(paths[:3])}" + (
            f" and {len(paths) - 3} more" if len(paths) > 3 else ""
        )
    if ref.kind == "Template":
        return (
            f"{ref} is not pruned: its image is the backing file of {names}; "
            "delete those disks first (prune their guests with --delete-volumes)"
        )
    return (
        f"{ref} is not pruned: it still holds {names}; "
        "prune with --delete-volumes to delete the disks of pruned guests"
    )


def _labels(observation: Observation, ref: ResourceRef) -> Mapping[str, str]:
    stamp = observation.objects[ref].stamp
    return stamp.labels if stamp is not None else {}


def count_by_action(plan: Plan) -> dict[str, int]:
    counts = {a.value: 0 for a in Action}
    for change in plan.changes:
        counts[change.action.value] += 1
    return counts
