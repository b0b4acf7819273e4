"""Apply: the only place that changes a host. One change at a time, in plan order.

Each provider step observes before it acts, so a rerun after a crash or an error picks up
where the host is, not where the last run thought it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from reconciler.engine.failpoints import failpoint
from reconciler.load.graph import references
from reconciler.model.errors import ReconError
from reconciler.model.plan import Action, Change, Disruption, Plan
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.providers.base import ApplyContext, HostUnreachable, Provider


@dataclass(slots=True)
class ApplyResult:
    applied: list[tuple[Change, str]] = field(default_factory=list)
    # Every change that failed, in plan order, with its error.
    failures: list[tuple[Change, str]] = field(default_factory=list)
    # Not attempted: what waits for a failed change (see `waits_for`), or everything left
    # when the apply was asked to stop or lost the host.
    skipped: list[Change] = field(default_factory=list)
    # For a skipped change: the failed change it waits for.
    waits_for: dict[ResourceRef, ResourceRef] = field(default_factory=dict)
    unchanged: int = 0
    # The connection to the host was lost during the apply (what is left was not attempted).
    host_lost: bool = False

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failed(self) -> tuple[Change, str] | None:
        """The first failure (None when there was none)."""
        return self.failures[0] if self.failures else None

    def summary(self) -> dict[str, int]:
        counts = {
            "created": 0,
            "updated live": 0,
            "updated": 0,
            "restarted": 0,
            "stopped": 0,
            "replaced": 0,
            "deleted": 0,
            "unchanged": self.unchanged,
        }
        for change, _ in self.applied:
            if change.action is Action.CREATE:
                counts["created"] += 1
            elif change.action is Action.DELETE:
                counts["deleted"] += 1
            elif change.action is Action.REPLACE:
                counts["replaced"] += 1
            elif _stops(change):
                # Whatever else changed with it, the guest ends stopped, not restarted.
                counts["stopped"] += 1
            elif change.disruption is Disruption.RESTART:
                counts["restarted"] += 1
            elif change.disruption is Disruption.LIVE:
                counts["updated live"] += 1
            else:
                counts["updated"] += 1
        return counts


def _stops(change: Change) -> bool:
    """A change that stops a guest that runs (or is paused, suspended, crashed)."""
    return any(
        f.path == "state" and f.after == "Stopped" and f.before not in (None, "Stopped")
        for f in change.fields
    )


def apply_plan(
    plan: Plan,
    resources: Sequence[Resource],
    provider: Provider,
    context: ApplyContext,
    should_stop: Callable[[], bool] = lambda: False,
) -> ApplyResult:
    """Apply in order, going on past a failure with what does not depend on it.

    A change waits (is not attempted) when its manifest references something whose change
    failed or waits (the graph's edges, so a guest waits for its pool, network and template);
    deletes wait once a delete failed, since what is only on the host has no references to
    follow (a pool's prune follows its guests'). A lost host stops the apply: nothing else
    could work. Asked to stop (a signal), it stops between two changes: the change under way
    always finishes, so nothing is left half done. At the end the provider's checks run
    (ApplyContext.settle: a guest it started that stopped right after fails its change)."""
    by_ref: dict[ResourceRef, Resource] = {r.ref: r for r in resources}
    result = ApplyResult(unchanged=len(plan.unchanged))
    # What failed or waits -> the failed change at the root of it.
    broken: dict[ResourceRef, ResourceRef] = {}
    failed_delete: ResourceRef | None = None
    for index, change in enumerate(plan.changes):
        if should_stop():
            result.skipped.extend(plan.changes[index:])
            break
        blocker = _blocker(change, by_ref.get(change.ref), broken, failed_delete)
        if blocker is not None:
            result.skipped.append(change)
            result.waits_for[change.ref] = blocker
            broken[change.ref] = blocker
            continue
        context.progress(f"{change.action.symbol} {change.ref}: {change.action.value}...")
        try:
            # An injected fault is a host error like any other: reported as this change's
            # failure. One injected after the step stands for a host that acted and then
            # failed to say so; the rerun finds the work done.
            failpoint(f"before {change.action.value} {change.ref}")
            detail = provider.apply(change, by_ref.get(change.ref), context)
            failpoint(f"after {change.action.value} {change.ref}")
        except HostUnreachable as exc:
            result.failures.append((change, str(exc)))
            result.host_lost = True
            result.skipped.extend(plan.changes[index + 1 :])
            break
        except ReconError as exc:
            result.failures.append((change, str(exc)))
            broken[change.ref] = change.ref
            if change.action is Action.DELETE and failed_delete is None:
                failed_delete = change.ref
            continue
        result.applied.append((change, detail))
    _settle(plan, result, context)
    return result


def _settle(plan: Plan, result: ApplyResult, context: ApplyContext) -> None:
    """The provider's checks at the end (a guest it started that stopped right after): a
    check that fails turns its change, reported applied so far, into a failure; a change that
    had failed already gets the check's error first, as the likelier cause. Nothing waits
    for a guest, so nothing else is undone."""
    checks, context.settle[:] = list(context.settle), []
    if result.host_lost:
        return
    for ref, check in checks:
        try:
            check()
        except HostUnreachable as exc:
            result.host_lost = True
            _fail_late(result, ref, str(exc))
            break
        except ReconError as exc:
            _fail_late(result, ref, str(exc))
    order = {c.ref: i for i, c in enumerate(plan.changes)}
    result.failures.sort(key=lambda item: order.get(item[0].ref, len(order)))


def _fail_late(result: ApplyResult, ref: ResourceRef, message: str) -> None:
    for index, (change, _detail) in enumerate(result.applied):
        if change.ref == ref:
            del result.applied[index]
            result.failures.append((change, message))
            return
    for index, (change, earlier) in enumerate(result.failures):
        if change.ref == ref:
            result.failures[index] = (change, f"{message} (then: {earlier})")
            return


def _blocker(
    change: Change,
    resource: Resource | None,
    broken: dict[ResourceRef, ResourceRef],
    failed_delete: ResourceRef | None,
) -> ResourceRef | None:
    """The failed change this one must wait for, if any."""
    if change.action is Action.DELETE:
        return failed_delete
    if resource is None or not broken:
        return None
    for ref in references(resource.manifest):
        if ref in broken:
            return broken[ref]
    return None
