"""Apply: the only place that changes a host. One change at a time, in plan order.

Each provider step observes before it acts, so a rerun after a crash or an error picks up
where the host is, not where the last run thought it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from reconciler.engine.failpoints import failpoint
from reconciler.model.errors import ReconError
from reconciler.model.plan import Action, Change, Disruption, Plan
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.providers.base import ApplyContext, Provider


@dataclass(slots=True)
class ApplyResult:
    applied: list[tuple[Change, str]] = field(default_factory=list)
    failed: tuple[Change, str] | None = None
    skipped: list[Change] = field(default_factory=list)
    unchanged: int = 0

    @property
    def ok(self) -> bool:
        return self.failed is None

    def summary(self) -> dict[str, int]:
        counts = {
            "created": 0,
            "updated live": 0,
            "updated": 0,
            "restarted": 0,
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
            elif change.disruption is Disruption.RESTART:
                counts["restarted"] += 1
            elif change.disruption is Disruption.LIVE:
                counts["updated live"] += 1
            else:
                counts["updated"] += 1
        return counts


def apply_plan(
    plan: Plan,
    resources: Sequence[Resource],
    provider: Provider,
    context: ApplyContext,
    should_stop: Callable[[], bool] = lambda: False,
) -> ApplyResult:
    """Apply in order; stop at the first failure, or between two changes when asked to (a
    signal): the change under way always finishes, so nothing is left half done."""
    by_ref: dict[ResourceRef, Resource] = {r.ref: r for r in resources}
    result = ApplyResult(unchanged=len(plan.unchanged))
    for index, change in enumerate(plan.changes):
        if should_stop():
            result.skipped = plan.changes[index:]
            break
        context.progress(f"{change.action.symbol} {change.ref}: {change.action.value}...")
        try:
            # An injected fault is a host error like any other: reported as this change's
            # failure, with the rest not attempted. One injected after the step stands for a
            # host that acted and then failed to say so; the rerun finds the work done.
            failpoint(f"before {change.action.value} {change.ref}")
            detail = provider.apply(change, by_ref.get(change.ref), context)
            failpoint(f"after {change.action.value} {change.ref}")
        except ReconError as exc:
            result.failed = (change, str(exc))
            result.skipped = plan.changes[index + 1 :]
            break
        result.applied.append((change, detail))
    return result
