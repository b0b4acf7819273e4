"""The drift policy, pure: plans made by the real planner from manifests and hand-built
observations (what a provider would report), then split into what to apply and what is drift."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.control.drift import is_suspended, policy_of, split_plan
from reconciler.engine.plan import PlanOptions, make_plan
from reconciler.model.fields import spec_hash
from reconciler.model.kinds import KINDS
from reconciler.model.plan import Action, Plan
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.providers.base import HostFacts, Observation, Observed, Stamp

WEB = ResourceRef("VirtualMachine", "web-1")


def vm(name: str = "web-1", annotations: dict[str, str] | None = None, **spec: Any) -> Resource:
    body: dict[str, Any] = {"cpus": 2, "memory": "1Gi", "state": "Running"}
    body.update(spec)
    manifest = KINDS["VirtualMachine"].model_validate(
        {
            "apiVersion": "reconciler/v1",
            "kind": "VirtualMachine",
            "metadata": {"name": name, "annotations": annotations or {}},
            "spec": body,
        }
    )
    return Resource(manifest, f"vms/{name}.yaml", 1)


def applied(res: Resource, *, running: bool = True, **host_shows: Any) -> Observed:
    """`res` as the host shows it after recon applied it, then changed on the host."""
    fields = dict(res.desired_fields())
    fields["state"] = "Running" if running else "Stopped"
    fields.update(host_shows)
    applied_fields = res.desired_fields()
    stamp = Stamp(file=res.file, spec_hash=spec_hash(applied_fields), applied=applied_fields)
    return Observed(res.ref, fields, stamp, uuid="0" * 32, running=running)


def observation(*objects: Observed) -> Observation:
    host = HostFacts("test:///host.xml", "host", "test", 16 * 1024**3, 8, {"live-vcpus": True})
    return Observation(host, {o.ref: o for o in objects})


def plan(resources: list[Resource], obs: Observation, prune: bool = False) -> Plan:
    return make_plan(resources, obs, PlanOptions(prune=prune))


@pytest.mark.parametrize(("policy", "applied_changes"), [("heal", 1), ("warn", 0), ("ignore", 0)])
def test_a_guest_stopped_on_the_host_is_drift_under_each_policy(
    policy: str, applied_changes: int
) -> None:
    web = vm()
    obs = observation(applied(web, running=False))
    full = plan([web], obs)
    assert [c.ref for c in full.changes] == [WEB]
    split = split_plan(full, [web], obs, policy, previously_applied=set())
    assert [(c.ref, p) for c, p in split.drift] == [(WEB, policy)]
    assert len(split.plan.changes) == applied_changes
    assert split.suspended == []


def test_a_manifest_change_is_applied_whatever_the_policy() -> None:
    # The host shows what recon applied; the manifest moved on (cpus 2 -> 3): not drift.
    before = vm()
    after = vm(cpus=3)
    obs = observation(applied(before))
    full = plan([after], obs)
    for policy in ("heal", "warn", "ignore"):
        split = split_plan(full, [after], obs, policy, previously_applied=set())
        assert split.drift == []
        assert [c.ref for c in split.plan.changes] == [WEB]


def test_a_manifest_change_on_a_drifted_guest_is_applied_too() -> None:
    # Stopped on the host *and* edited: the manifest wins, with warn as with heal.
    obs = observation(applied(vm(), running=False))
    edited = vm(cpus=3)
    split = split_plan(plan([edited], obs), [edited], obs, "warn", previously_applied=set())
    assert split.drift == []
    [change] = split.plan.changes
    assert {f.path for f in change.fields} >= {"cpus", "state"}


def test_the_annotation_overrides_the_default_policy() -> None:
    web = vm(annotations={"recon.dev/drift": "warn"})
    db = vm("db-1", annotations={"recon.dev/drift": "heal"})
    cache = vm("cache-1")
    resources = [web, db, cache]
    obs = observation(*(applied(r, running=False) for r in resources))
    split = split_plan(plan(resources, obs), resources, obs, "ignore", previously_applied=set())
    assert {str(c.ref): p for c, p in split.drift} == {
        "VirtualMachine/web-1": "warn",
        "VirtualMachine/db-1": "heal",
        "VirtualMachine/cache-1": "ignore",
    }
    assert [str(c.ref) for c in split.plan.changes] == ["VirtualMachine/db-1"]


def test_an_unknown_annotation_value_falls_back_to_the_default() -> None:
    web = vm(annotations={"recon.dev/drift": "sometimes"})
    assert policy_of(web, "warn") == "warn"
    assert policy_of(vm(annotations={"recon.dev/drift": "ignore"}), "heal") == "ignore"


def test_a_suspended_resource_is_left_alone_drift_or_manifest_change() -> None:
    annotations = {"recon.dev/suspend": "true"}
    edited = vm(annotations=annotations, cpus=3)
    assert is_suspended(edited)
    assert not is_suspended(vm(annotations={"recon.dev/suspend": "false"}))
    obs = observation(applied(vm(), running=False))
    split = split_plan(plan([edited], obs), [edited], obs, "heal", previously_applied={str(WEB)})
    assert split.suspended == [WEB]
    assert split.plan.changes == []
    assert split.drift == []


def test_an_object_deleted_on_the_host_is_drift_only_if_it_had_been_applied() -> None:
    web = vm()
    empty = observation()
    full = plan([web], empty)
    assert [c.action for c in full.changes] == [Action.CREATE]
    new = split_plan(full, [web], empty, "warn", previously_applied=set())
    assert new.drift == []
    assert len(new.plan.changes) == 1  # a new manifest: created
    gone = split_plan(full, [web], empty, "warn", previously_applied={str(WEB)})
    assert [(c.ref, p) for c, p in gone.drift] == [(WEB, "warn")]
    assert gone.plan.changes == []


def test_a_stale_stamp_is_not_drift() -> None:
    # Same fields, but the stamp is of an older spec (a field the manifest dropped): an
    # ordinary update of the stamp, applied under any policy.
    web = vm()
    seen = applied(web)
    assert seen.stamp is not None
    seen.stamp = Stamp(seen.stamp.file, "0" * 64, seen.stamp.applied)
    obs = observation(seen)
    split = split_plan(plan([web], obs), [web], obs, "ignore", previously_applied=set())
    assert split.drift == []
    assert len(split.plan.changes) == 1


def test_prunes_are_never_drift() -> None:
    web, old = vm(), vm("old-1")
    obs = observation(applied(web), applied(old))
    full = plan([web], obs, prune=True)
    assert [(str(c.ref), c.action) for c in full.changes] == [
        ("VirtualMachine/old-1", Action.DELETE)
    ]
    split = split_plan(full, [web], obs, "ignore", previously_applied={"VirtualMachine/old-1"})
    assert split.drift == []
    assert [c.action for c in split.plan.changes] == [Action.DELETE]


def test_the_split_keeps_the_plan_details() -> None:
    web = vm()
    obs = observation(applied(web, running=False))
    full = plan([web], obs)
    split = split_plan(full, [web], obs, "warn", previously_applied=set())
    assert split.plan is not full
    assert (split.plan.fingerprint, split.plan.host, split.plan.unchanged) == (
        full.fingerprint,
        full.host,
        full.unchanged,
    )
    assert len(full.changes) == 1  # the original plan is not changed
