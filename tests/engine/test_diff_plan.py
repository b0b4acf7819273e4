"""diff and plan, pure: manifests against hand-built observations (no host, no I/O).

An observation is what a provider would report: the host's facts and, per object, the fields
the host shows plus recon's stamp (what it applied last).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from reconciler.engine.diff import diff
from reconciler.engine.plan import AdmissionError, PlanOptions, PlanRefused, make_plan
from reconciler.model.fields import spec_hash
from reconciler.model.kinds import KINDS
from reconciler.model.plan import Action, Change, Disruption, FieldChange, Plan
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.providers.base import HostFacts, Observation, Observed, Stamp

GiB = 1024**3
MiB = 1024**2
# Everything a guest can take live, and storage that grows: a capable host.
CAPABLE = {
    "live-memory": True,
    "memory-hotplug": True,
    "live-vcpus": True,
    "volume-resize": True,
}


def resource(kind: str, name: str, spec: dict[str, Any], file: str = "m.yaml") -> Resource:
    manifest = KINDS[kind].model_validate(
        {"apiVersion": "reconciler/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}
    )
    return Resource(manifest, file, 1)


def vm(name: str = "web-1", **spec: Any) -> Resource:
    base: dict[str, Any] = {
        "cpus": 2,
        "maxCpus": 4,
        "memory": "1Gi",
        "maxMemory": "4Gi",
        "disks": [{"name": "root", "pool": "default", "size": "10Gi", "template": "base"}],
        "interfaces": [{"network": "lan"}],
        "state": "Running",
    }
    base.update(spec)
    return resource("VirtualMachine", name, base, f"vms/{name}.yaml")


def container(name: str = "cache-1", **spec: Any) -> Resource:
    base: dict[str, Any] = {
        "template": "minimal",
        "cpus": 1,
        "memory": "512Mi",
        "disk": {"pool": "default", "size": "5Gi"},
        "state": "Running",
    }
    base.update(spec)
    return resource("Container", name, base, f"cts/{name}.yaml")


def pool(name: str = "default") -> Resource:
    return resource("StoragePool", name, {"path": f"/srv/{name}"}, "storage.yaml")


def network(name: str = "lan") -> Resource:
    return resource("Network", name, {"mode": "nat", "bridge": "br-lan"}, "network.yaml")


def template(name: str = "base") -> Resource:
    return resource(
        "Template",
        name,
        {
            "osName": "debian",
            "version": "12",
            "format": "qcow2",
            "pool": "default",
            "source": {"file": {"path": "base.qcow2", "sha256": "0" * 64}},
        },
        "templates.yaml",
    )


def policy(**spec: Any) -> Resource:
    return resource("HostPolicy", "host", spec, "host-policy.yaml")


def stamp(res: Resource, set_name: str = "default") -> Stamp:
    fields = res.desired_fields()
    return Stamp(file=res.file, spec_hash=spec_hash(fields), applied=fields, set_name=set_name)


def as_applied(
    res: Resource,
    *,
    running: bool | None = None,
    owned: bool = True,
    set_name: str = "default",
    **host_shows: Any,
) -> Observed:
    """The object as the host would show it after recon applied `res`, changed by host_shows
    (drift). Guests are running unless said otherwise."""
    fields = dict(res.desired_fields())
    fields.update(host_shows)
    guest = res.ref.kind in ("VirtualMachine", "Container")
    if guest and running is None:
        running = True
    if guest:
        fields["state"] = "Running" if running else "Stopped"
    return Observed(
        res.ref,
        fields,
        stamp(res, set_name) if owned else None,
        uuid="6b1f4a8e-0d5c-4c3e-9a51-0123456789ab",
        running=running,
    )


def observation(
    *objects: Observed,
    memory: int = 16 * GiB,
    capabilities: dict[str, bool] | None = None,
    complete: bool = True,
) -> Observation:
    host = HostFacts(
        uri="test:///host.xml",
        hostname="host",
        driver="test",
        memory_bytes=memory,
        cpus=8,
        capabilities=CAPABLE if capabilities is None else capabilities,
    )
    return Observation(host=host, objects={o.ref: o for o in objects}, complete=complete)


def plan_for(
    resources: list[Resource], obs: Observation, **options: Any
) -> tuple[Plan, dict[ResourceRef, Change]]:
    plan = make_plan(resources, obs, PlanOptions(**options))
    return plan, {c.ref: c for c in plan.changes}


def field(change: Change, path: str) -> FieldChange:
    matches = [f for f in change.fields if f.path == path]
    assert len(matches) == 1, f"{path} not in {[f.path for f in change.fields]}"
    return matches[0]


def the_change(res: Resource, obs: Observation) -> Change:
    result = diff([res], obs)
    assert len(result.changes) == 1, result
    return result.changes[0]


# --- what is compared -------------------------------------------------------------------------


def test_missing_object_is_created_with_every_field_the_manifest_sets() -> None:
    web = vm()
    result = diff([web], observation())
    [change] = result.changes
    assert change.action is Action.CREATE
    assert change.reason == "not on the host"
    assert field(change, "memory").after == "1Gi"
    assert field(change, "disks[root].template").after == "base"
    assert all(f.before is None for f in change.fields)


def test_object_matching_its_manifest_and_stamp_is_unchanged() -> None:
    web = vm()
    result = diff([web], observation(as_applied(web)))
    assert result.changes == []
    assert result.unchanged == [web.ref]


def test_same_fields_with_a_stale_stamp_update_only_the_stamp() -> None:
    web = vm()
    seen = as_applied(web)
    assert seen.stamp is not None
    seen.stamp = Stamp(seen.stamp.file, "0" * 64, seen.stamp.applied)
    change = the_change(web, observation(seen))
    assert change.action is Action.UPDATE
    assert change.fields == ()
    assert change.reason == "stamp"


def test_fields_the_manifest_does_not_set_are_not_drift() -> None:
    # The host reports a NIC model, a disk bus and a firmware; the manifest sets none of them.
    web = vm()
    host_adds: dict[str, Any] = {
        "interfaces[0].model": "e1000",
        "disks[root].bus": "sata",
        "firmware": "efi",
    }
    seen = as_applied(web, **host_adds)
    result = diff([web], observation(seen))
    assert result.changes == []


def test_a_field_the_manifest_sets_is_drift_when_the_host_differs() -> None:
    web = vm()
    change = the_change(web, observation(as_applied(web, cpus=3)))
    assert (field(change, "cpus").before, field(change, "cpus").after) == (3, 2)


def test_a_field_removed_from_the_manifest_goes_back_to_its_default() -> None:
    before = vm(autostart=True)
    seen = as_applied(before)  # applied with autostart: true, and the host has it
    after = vm()  # the line is deleted from the manifest
    change = the_change(after, observation(seen))
    autostart = field(change, "autostart")
    assert (autostart.before, autostart.after) == (True, False)
    assert autostart.disruption is Disruption.LIVE


def test_fields_the_host_cannot_show_are_compared_with_what_was_applied() -> None:
    # guest.hostname lives only in the stamp; the host never reports it.
    before = vm(guest={"hostname": "old.example"})
    seen = as_applied(before)
    del seen.fields["guest.hostname"]
    change = the_change(vm(guest={"hostname": "new.example"}), observation(seen))
    hostname = field(change, "guest.hostname")
    assert (hostname.before, hostname.after) == ("old.example", "new.example")


# --- disruption classes -------------------------------------------------------------------------


def test_memory_shrink_on_a_running_vm_is_live_by_balloon() -> None:
    change = the_change(vm(memory="512Mi"), observation(as_applied(vm())))
    assert change.action is Action.UPDATE
    assert field(change, "memory").disruption is Disruption.LIVE
    assert change.disruption is Disruption.LIVE


def test_memory_growth_within_max_memory_is_live_where_the_host_hotplugs_memory() -> None:
    change = the_change(vm(memory="2Gi"), observation(as_applied(vm())))
    assert field(change, "memory").disruption is Disruption.LIVE


def test_memory_growth_is_a_restart_where_the_host_cannot_hotplug_memory() -> None:
    caps = {**CAPABLE, "memory-hotplug": False}
    change = the_change(vm(memory="2Gi"), observation(as_applied(vm()), capabilities=caps))
    assert field(change, "memory").disruption is Disruption.RESTART
    assert change.disruption is Disruption.RESTART


def test_memory_above_max_memory_is_a_restart() -> None:
    change = the_change(vm(memory="5Gi", maxMemory="8Gi"), observation(as_applied(vm())))
    # The ceiling itself changes too: both need a restart.
    assert field(change, "memory").disruption is Disruption.RESTART
    assert field(change, "maxMemory").disruption is Disruption.RESTART


def test_memory_beyond_the_unchanged_ceiling_is_a_restart() -> None:
    # maxMemory stays 4Gi on the host and in the manifest, memory asks for more.
    web = vm(memory="3Gi", maxMemory="4Gi")
    seen = as_applied(vm(), maxMemory="2Gi")
    change = the_change(web, observation(seen))
    assert field(change, "memory").disruption is Disruption.RESTART


def test_memory_change_on_a_stopped_vm_disturbs_nothing() -> None:
    stopped = vm(state="Stopped")
    change = the_change(
        vm(state="Stopped", memory="8Gi", maxMemory="8Gi"),
        observation(as_applied(stopped, running=False)),
    )
    assert {f.path: f.disruption for f in change.fields} == {
        "memory": Disruption.NONE,
        "maxMemory": Disruption.NONE,
    }
    assert change.disruption is Disruption.NONE


def test_cpus_within_max_cpus_is_live() -> None:
    change = the_change(vm(cpus=4), observation(as_applied(vm())))
    assert field(change, "cpus").disruption is Disruption.LIVE


def test_cpus_above_max_cpus_is_a_restart() -> None:
    change = the_change(vm(cpus=6, maxCpus=8), observation(as_applied(vm())))
    assert field(change, "cpus").disruption is Disruption.RESTART


def test_cpus_are_a_restart_where_the_host_cannot_add_vcpus_live() -> None:
    caps = {**CAPABLE, "live-vcpus": False}
    change = the_change(vm(cpus=3), observation(as_applied(vm()), capabilities=caps))
    assert field(change, "cpus").disruption is Disruption.RESTART


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"firmware": "efi"}, "firmware"),
        ({"bootOrder": ["network", "disk"]}, "bootOrder"),
        ({"interfaces": [{"network": "lan", "model": "e1000"}]}, "interfaces[0].model"),
    ],
)
def test_changes_a_running_guest_only_takes_at_boot_are_a_restart(
    spec: dict[str, Any], path: str
) -> None:
    change = the_change(vm(**spec), observation(as_applied(vm())))
    assert change.action is Action.UPDATE
    assert field(change, path).disruption is Disruption.RESTART
    assert change.disruption is Disruption.RESTART


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"uuid": "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"}, "uuid"),
        (
            {"disks": [{"name": "root", "pool": "default", "size": "10Gi", "template": "other"}]},
            "disks[root].template",
        ),
        (
            {"disks": [{"name": "root", "pool": "fast", "size": "10Gi", "template": "base"}]},
            "disks[root].pool",
        ),
    ],
)
def test_identity_changes_replace_the_guest(spec: dict[str, Any], path: str) -> None:
    seen = as_applied(vm(), uuid="6b1f4a8e-0d5c-4c3e-9a51-0123456789ab")
    change = the_change(vm(**spec), observation(seen))
    assert change.action is Action.REPLACE
    assert change.disruption is Disruption.REPLACE
    assert field(change, path).disruption is Disruption.REPLACE


def test_container_template_change_replaces_it() -> None:
    change = the_change(container(template="other"), observation(as_applied(container())))
    assert change.action is Action.REPLACE


@pytest.mark.parametrize("capable", [True, False], ids=["resizable", "no-volume-resize"])
def test_disk_shrink_is_a_replace_never_an_in_place_change(capable: bool) -> None:
    caps = {**CAPABLE, "volume-resize": capable}
    smaller = vm(disks=[{"name": "root", "pool": "default", "size": "5Gi", "template": "base"}])
    result = diff([smaller], observation(as_applied(vm()), capabilities=caps))
    [change] = result.changes
    assert change.action is Action.REPLACE
    assert field(change, "disks[root].size").disruption is Disruption.REPLACE
    assert result.unsupported == []


def test_disk_growth_is_live_where_volumes_resize() -> None:
    bigger = vm(disks=[{"name": "root", "pool": "default", "size": "20Gi", "template": "base"}])
    change = the_change(bigger, observation(as_applied(vm())))
    assert change.action is Action.UPDATE
    assert field(change, "disks[root].size").disruption is Disruption.LIVE


def test_a_new_disk_is_added_at_the_next_start_not_by_replacing_the_guest() -> None:
    disks = [
        {"name": "root", "pool": "default", "size": "10Gi", "template": "base"},
        {"name": "data", "pool": "default", "size": "50Gi"},
    ]
    caps = {**CAPABLE, "volume-resize": False}
    result = diff([vm(disks=disks)], observation(as_applied(vm()), capabilities=caps))
    [change] = result.changes
    assert change.action is Action.UPDATE
    assert {f.path: f.disruption for f in change.fields} == {
        "disks[data].pool": Disruption.RESTART,
        "disks[data].size": Disruption.RESTART,
    }
    assert result.unsupported == []  # creating a volume is not resizing one


@pytest.mark.parametrize(
    ("spec", "path"), [({"autostart": True}, "autostart"), ({"state": "Stopped"}, "state")]
)
def test_autostart_and_run_state_are_live(spec: dict[str, Any], path: str) -> None:
    change = the_change(vm(**spec), observation(as_applied(vm())))
    assert field(change, path).disruption is Disruption.LIVE
    assert change.disruption is Disruption.LIVE


def test_starting_a_stopped_guest_disturbs_nothing() -> None:
    seen = as_applied(vm(), running=False)
    change = the_change(vm(), observation(seen))
    state = field(change, "state")
    assert (state.before, state.after, state.disruption) == ("Stopped", "Running", Disruption.NONE)


def test_the_worst_field_sets_the_class_of_the_change() -> None:
    change = the_change(vm(autostart=True, firmware="efi"), observation(as_applied(vm())))
    assert field(change, "autostart").disruption is Disruption.LIVE
    assert change.disruption is Disruption.RESTART


# --- changes a host cannot make -----------------------------------------------------------------


def test_disk_growth_on_a_host_without_volume_resize_is_a_warning_not_a_change() -> None:
    caps = {**CAPABLE, "volume-resize": False}
    bigger = vm(disks=[{"name": "root", "pool": "default", "size": "20Gi", "template": "base"}])
    plan, _ = plan_for([bigger], observation(as_applied(vm()), capabilities=caps))
    assert plan.empty
    assert plan.unchanged == [bigger.ref]
    assert any("disks[root].size" in w and "volume-resize" in w for w in plan.warnings)


def test_ksm_on_a_host_without_ksm_is_a_warning_and_the_policy_still_applies() -> None:
    host = policy(ksm={"enabled": True})
    plan, _ = plan_for([host], observation())
    assert plan.empty
    assert any("ksm" in w for w in plan.warnings)


# --- ownership ----------------------------------------------------------------------------------


def test_a_foreign_object_with_a_wanted_name_refuses_the_plan_and_hints_adopt() -> None:
    foreign = as_applied(vm(), owned=False)
    with pytest.raises(PlanRefused) as refused:
        make_plan([vm()], observation(foreign))
    assert "VirtualMachine/web-1" in str(refused.value)
    assert "not created by recon" in str(refused.value)
    assert refused.value.hint is not None and "--adopt" in refused.value.hint


def test_adopt_takes_a_foreign_object_over_with_an_update() -> None:
    foreign = as_applied(vm(), owned=False, cpus=1)
    _, changes = plan_for([vm()], observation(foreign), adopt=True)
    change = changes[vm().ref]
    assert change.action is Action.UPDATE
    assert change.reason == "adopt"
    assert field(change, "cpus").after == 2


def test_adopting_a_foreign_object_that_already_matches_still_stamps_it() -> None:
    _, changes = plan_for([vm()], observation(as_applied(vm(), owned=False)), adopt=True)
    change = changes[vm().ref]
    assert (change.action, change.fields, change.reason) == (Action.UPDATE, (), "adopt")


# --- order --------------------------------------------------------------------------------------


def test_creates_run_pools_and_networks_then_templates_then_guests() -> None:
    resources = [
        container(),
        vm("db-1"),
        template("minimal"),
        template(),
        vm("web-1"),
        network(),
        pool(),
    ]
    plan, _ = plan_for(resources, observation())
    order = [str(c.ref) for c in plan.changes]
    assert order == [
        "StoragePool/default",
        "Network/lan",
        "Template/base",
        "Template/minimal",
        "VirtualMachine/db-1",
        "VirtualMachine/web-1",
        "Container/cache-1",
    ]


def test_plan_is_the_same_whatever_the_order_of_the_manifests() -> None:
    resources = [pool(), network(), template(), template("minimal"), vm("db-1"), container()]
    forward, _ = plan_for(resources, observation())
    backward, _ = plan_for(list(reversed(resources)), observation())
    assert [c.ref for c in forward.changes] == [c.ref for c in backward.changes]


# --- prune --------------------------------------------------------------------------------------


def everything() -> list[Resource]:
    return [
        pool(),
        network(),
        template(),
        template("minimal"),
        vm("db-1"),
        vm("web-1"),
        container(),
    ]


def test_prune_deletes_only_recons_objects_of_the_set_guests_first() -> None:
    kept = [vm("web-1")]
    seen = [as_applied(r) for r in everything()]
    foreign = as_applied(vm("legacy"), owned=False)
    other_set = as_applied(vm("batch"), set_name="batch")
    plan, changes = plan_for(
        kept, observation(*seen, foreign, other_set), prune=True, allow_empty=False
    )
    deleted = [str(c.ref) for c in plan.changes if c.action is Action.DELETE]
    assert deleted == [
        "Container/cache-1",
        "VirtualMachine/db-1",
        "Template/minimal",
        "Template/base",
        "Network/lan",
        "StoragePool/default",
    ]
    assert all(changes[c].reason == "no manifest names it (prune)" for c in changes)
    assert vm("legacy").ref not in changes
    assert vm("batch").ref not in changes
    assert vm("web-1").ref not in changes


def test_prune_of_another_set_deletes_only_that_sets_objects() -> None:
    # The batch set names its template (stamped by it: another set's would be refused).
    seen = [as_applied(r) for r in everything() if r.ref != template().ref]
    ours = [as_applied(template(), set_name="batch"), as_applied(vm("batch"), set_name="batch")]
    plan, _ = plan_for([template()], observation(*seen, *ours), prune=True, set_name="batch")
    assert [str(c.ref) for c in plan.changes] == ["VirtualMachine/batch"]


def test_prune_never_deletes_the_host_policy() -> None:
    host = policy(memoryReserve="1Gi")
    seen = as_applied(host)
    plan, changes = plan_for([vm()], observation(as_applied(vm()), seen), prune=True)
    assert host.ref not in changes
    assert plan.empty


def test_without_prune_nothing_is_deleted() -> None:
    seen = [as_applied(r) for r in everything()]
    plan, _ = plan_for([vm("web-1")], observation(*seen))
    assert plan.empty


def test_prune_is_refused_when_the_host_was_only_partly_observed() -> None:
    seen = [as_applied(r) for r in everything()]
    with pytest.raises(PlanRefused, match="partly observed"):
        make_plan([vm("web-1")], observation(*seen, complete=False), PlanOptions(prune=True))


def test_an_empty_desired_set_is_refused_unless_allowed() -> None:
    seen = [as_applied(r) for r in everything()]
    with pytest.raises(PlanRefused, match="empty") as refused:
        make_plan([], observation(*seen), PlanOptions(prune=True))
    assert refused.value.hint is not None and "--allow-empty" in refused.value.hint

    plan, changes = plan_for([], observation(*seen), prune=True, allow_empty=True)
    assert {c.action for c in plan.changes} == {Action.DELETE}
    assert set(changes) == {r.ref for r in everything()}


# --- memory admission ---------------------------------------------------------------------------


def unmanaged_guest(name: str, memory: int, guaranteed: int, running: bool = True) -> Observed:
    ref = ResourceRef("VirtualMachine", name)
    return Observed(
        ref,
        {"memory": f"{memory // MiB}Mi"},
        None,
        running=running,
        guaranteed_bytes=guaranteed,
        memory_bytes=memory,
    )


def test_guarantees_beyond_ram_minus_reserve_are_refused_naming_every_holder() -> None:
    # 16Gi host, 2Gi reserve: 14Gi to promise. 8Gi + 4Gi desired + 3Gi unmanaged = 15Gi.
    resources = [
        policy(memoryReserve="2Gi"),
        vm("db-1", memory="8Gi", maxMemory="8Gi", memoryGuarantee="100%"),
        vm("web-1", memory="8Gi", maxMemory="8Gi", memoryGuarantee="50%"),
    ]
    other = unmanaged_guest("legacy", 4 * GiB, 3 * GiB)
    with pytest.raises(AdmissionError) as refused:
        make_plan(resources, observation(other))
    err = refused.value
    assert (err.capacity, err.promised) == (14 * GiB, 15 * GiB)
    holders = {h.ref: (h.managed, h.guaranteed) for h in err.holders}
    assert holders == {
        "VirtualMachine/db-1": (True, 8 * GiB),
        "VirtualMachine/web-1": (True, 4 * GiB),
        "VirtualMachine/legacy": (False, 3 * GiB),
    }


def test_guarantees_that_fit_are_admitted() -> None:
    resources = [
        policy(memoryReserve="2Gi"),
        vm("db-1", memory="8Gi", maxMemory="8Gi", memoryGuarantee="100%"),
        vm("web-1", memory="8Gi", maxMemory="8Gi", memoryGuarantee="50%"),
    ]
    plan, _ = plan_for(resources, observation(unmanaged_guest("legacy", 4 * GiB, 2 * GiB)))
    assert len(plan.changes) == 2
    assert not any("guarantee" in w for w in plan.warnings)


def test_stopped_guests_hold_no_guarantee() -> None:
    resources = [
        policy(memoryReserve="2Gi"),
        vm("db-1", memory="8Gi", maxMemory="8Gi", memoryGuarantee="100%"),
        vm("web-1", memory="8Gi", maxMemory="8Gi", memoryGuarantee="100%", state="Stopped"),
    ]
    stopped = unmanaged_guest("legacy", 8 * GiB, 8 * GiB, running=False)
    plan, _ = plan_for(resources, observation(stopped))
    assert len(plan.changes) == 2


def test_guarantees_of_pruned_guests_are_released() -> None:
    old = vm("old", memory="8Gi", maxMemory="8Gi", memoryGuarantee="100%")
    seen = as_applied(old)
    seen.guaranteed_bytes = seen.memory_bytes = 8 * GiB
    wanted = [
        policy(memoryReserve="2Gi"),
        vm("new", memory="8Gi", maxMemory="8Gi", memoryGuarantee="100%"),
    ]
    with pytest.raises(AdmissionError):
        make_plan(wanted, observation(seen))
    _, changes = plan_for(wanted, observation(seen), prune=True)
    assert changes[old.ref].action is Action.DELETE


def test_overcommit_warn_turns_the_refusal_into_a_warning() -> None:
    resources = [
        policy(memoryReserve="2Gi", guaranteeOvercommit="Warn"),
        vm("db-1", memory="16Gi", maxMemory="16Gi", memoryGuarantee="100%"),
    ]
    plan, changes = plan_for(resources, observation())
    assert changes[vm("db-1").ref].action is Action.CREATE
    assert any("guaranteeOvercommit: Warn" in w for w in plan.warnings)


def test_without_a_host_policy_the_whole_ram_can_be_promised_and_no_more() -> None:
    fits = [vm("db-1", memory="16Gi", maxMemory="16Gi", memoryGuarantee="100%")]
    assert len(make_plan(fits, observation()).changes) == 1
    too_much = [vm("db-1", memory="17Gi", maxMemory="17Gi", memoryGuarantee="100%")]
    with pytest.raises(AdmissionError):
        make_plan(too_much, observation())


def _through(res: Resource, via: str, set_name: str = "default") -> Observed:
    obs = as_applied(res, set_name=set_name)
    assert obs.stamp is not None
    obs.stamp = dataclasses.replace(obs.stamp, record={"via": via})
    return obs


def _on(uri: str, *objects: Observed) -> Observation:
    found = observation(*objects)
    found.host = dataclasses.replace(found.host, uri=uri)
    return found


def test_one_set_claiming_a_host_wide_object_through_both_drivers_is_said() -> None:
    lan, base = network(), pool()
    # The network was applied through qemu:///system; this plan goes through lxc:///system.
    seen = _on("lxc:///system", _through(lan, "qemu:///system"), _through(base, "lxc:///system"))
    plan, changes = plan_for([lan, base], seen)
    assert not changes  # nothing to change: it is said, not acted on
    (said,) = [w for w in plan.warnings if "as well" in w]
    assert said.startswith("Network/lan belongs to set default through qemu:///system as well")
    assert "these manifests name it too through lxc:///system" in said
    # Pruned through the other connection: said too.
    plan, _ = plan_for([base], seen, prune=True)
    assert any("Network/lan" in w and "this plan prunes it" in w for w in plan.warnings)


def test_the_same_connection_another_set_or_the_embedded_host_says_nothing_of_it() -> None:
    lan = network()
    for seen in (
        _on("qemu:///system", _through(lan, "qemu:///system")),
        _on("test:///host.xml", _through(lan, "qemu:///system")),
    ):
        plan, _ = plan_for([lan], seen)
        assert not [w for w in plan.warnings if "as well" in w]
    other = _on("lxc:///system", _through(lan, "qemu:///system", set_name="team-b"))
    with pytest.raises(PlanRefused):  # another set's: refused as such, not this warning
        plan_for([lan], other, set_name="default")
