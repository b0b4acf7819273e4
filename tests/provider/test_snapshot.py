"""The read-only provider behind `diff --host-state`: an Observation survives the export with
its fingerprint, and nothing can be applied through it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.model.plan import Action, Change, Disruption
from reconciler.model.refs import ResourceRef
from reconciler.providers.base import ApplyContext, HostFacts, Observation, Observed, Stamp
from reconciler.providers.snapshot import (
    HostStateError,
    SnapshotProvider,
    dump_host_state,
    parse_host_state,
    write_host_state,
)

STAMP = Stamp("vms/a.yaml", "ab" * 32, {"memory": "1Gi", "tags": ["x"]}, "c0ffee", "blue")


def observation() -> Observation:
    host = HostFacts("test:///h.xml", "h", "test", 16 * 1024**3, 8, {"live-vcpus": True})
    pool = Observed(
        ResourceRef("StoragePool", "p"),
        {"path": "/p"},
        STAMP,
        uuid="u-1",
        extra={"templates": {"t": STAMP}, "pair": (1, 2)},
    )
    vm = Observed(
        ResourceRef("VirtualMachine", "a"),
        {"memory": "1Gi", "disks[root].size": "10Gi", "cpus": 2, "autostart": True},
        STAMP,
        uuid="u-2",
        running=True,
        guaranteed_bytes=512 * 1024**2,
        memory_bytes=1024**3,
    )
    policy = Observed(ResourceRef("HostPolicy", ""), {}, None)
    return Observation(host, {o.ref: o for o in (pool, vm, policy)}, complete=False)


def test_an_observation_survives_the_export() -> None:
    original = observation()
    loaded, document = parse_host_state(dump_host_state(original), "x.json")
    assert loaded.fingerprint() == original.fingerprint() == document.fingerprint
    assert loaded.host == original.host
    assert loaded.complete is False
    vm = loaded.objects[ResourceRef("VirtualMachine", "a")]
    assert vm == original.objects[vm.ref]
    pool = loaded.objects[ResourceRef("StoragePool", "p")]
    # What is only informational comes back as plain JSON.
    assert pool.extra == {"templates": {"t": json.loads(json.dumps(_stamp_doc()))}, "pair": [1, 2]}
    assert loaded.objects[ResourceRef("HostPolicy", "")].stamp is None


def _stamp_doc() -> dict[str, object]:
    return {
        "file": "vms/a.yaml",
        "specHash": "ab" * 32,
        "applied": {"memory": "1Gi", "tags": ["x"]},
        "revision": "c0ffee",
        "set": "blue",
        "managedBy": "recon",
        "labels": {},
        "annotations": {},
    }


def test_the_provider_serves_the_export_and_refuses_to_apply(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    write_host_state(path, observation(), when)
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    provider = SnapshotProvider.load(path)
    assert provider.observed_at == when
    assert provider.observe().fingerprint() == observation().fingerprint()
    assert provider.current() is True
    change = Change(ResourceRef("VirtualMachine", "a"), Action.UPDATE, Disruption.LIVE)
    context = ApplyContext(resources={}, observation=provider.observe())
    with pytest.raises(HostStateError, match="cannot be changed"):
        provider.apply(change, None, context)
    # Nothing runs in an export: no command, no terminal, no word from a guest.
    vm = ResourceRef("VirtualMachine", "a")
    with pytest.raises(HostStateError, match="nothing runs in it"):
        provider.exec(vm, ["hostname"], 10)
    with pytest.raises(HostStateError, match="nothing runs in it"):
        provider.enter_argv(vm, [])
    with pytest.raises(HostStateError, match="nothing runs in it"):
        provider.console_argv(vm)
    assert provider.guest_status([vm]) == {}


def test_a_duplicate_object_is_refused() -> None:
    data = json.loads(dump_host_state(observation()))
    data["objects"].append(data["objects"][0])
    with pytest.raises(HostStateError, match="listed twice"):
        parse_host_state(json.dumps(data), "x.json")


def test_a_time_without_a_zone_is_refused() -> None:
    data = json.loads(dump_host_state(observation()))
    data["observedAt"] = "2026-01-02T03:04:05"
    with pytest.raises(HostStateError, match="observedAt"):
        parse_host_state(json.dumps(data), "x.json")
