"""Drift policy, pure: which changes of a plan are drift (the host moved, the manifest did not),
and what to do with them: heal (apply), warn (report only) or ignore."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from reconciler.model.plan import Action, Change, Plan
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.providers.base import Observation

DRIFT_ANNOTATION = "recon.dev/drift"
SUSPEND_ANNOTATION = "recon.dev/suspend"
RESTART_ANNOTATION = "recon.dev/allow-restart"
POLICIES = ("heal", "warn", "ignore")


@dataclass(slots=True)
class Split:
    plan: Plan
    drift: list[tuple[Change, str]] = field(default_factory=list)  # (change, policy)
    suspended: list[ResourceRef] = field(default_factory=list)


def policy_of(resource: Resource, default: str) -> str:
    value = resource.manifest.metadata.annotations.get(DRIFT_ANNOTATION, default)
    return value if value in POLICIES else default


def is_suspended(resource: Resource) -> bool:
    return resource.manifest.metadata.annotations.get(SUSPEND_ANNOTATION, "") == "true"


def allows_restart(resource: Resource | None) -> bool:
    """The resource's own consent to a loop restarting it (`recon.dev/allow-restart: "true"`)."""
    if resource is None:
        return False
    return resource.manifest.metadata.annotations.get(RESTART_ANNOTATION, "") == "true"


def is_drift(
    change: Change,
    resource: Resource | None,
    observation: Observation,
    previously_applied: set[str],
) -> bool:
    if resource is None or change.action is Action.DELETE:
        return False
    if change.action is Action.CREATE:
        return str(change.ref) in previously_applied  # it was there; someone removed it
    observed = observation.objects.get(change.ref)
    if observed is None or observed.stamp is None:
        return False
    return observed.stamp.spec_hash == resource.desired_hash()


def split_plan(
    plan: Plan,
    resources: Sequence[Resource],
    observation: Observation,
    default_policy: str,
    previously_applied: set[str],
) -> Split:
    by_ref = {r.ref: r for r in resources}
    keep: list[Change] = []
    out = Split(plan)
    for change in plan.changes:
        resource = by_ref.get(change.ref)
        if resource is not None and is_suspended(resource):
            out.suspended.append(change.ref)
            continue
        if is_drift(change, resource, observation, previously_applied):
            assert resource is not None
            policy = policy_of(resource, default_policy)
            out.drift.append((change, policy))
            if policy != "heal":
                continue
        keep.append(change)
    out.plan = Plan(
        changes=keep,
        unchanged=plan.unchanged,
        fingerprint=plan.fingerprint,
        revision=plan.revision,
        host=plan.host,
        warnings=plan.warnings,
    )
    return out
