"""The driver capability table: what `recon validate --driver` flags offline, what a plan
against a host refuses before any action, and that docs/real-hosts.md shows the same table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine.plan import PlanRefused, make_plan
from reconciler.model.capabilities import CAPABILITIES, DRIVERS, FEATURES, family
from reconciler.model.capability_checks import check_manifest, features_markdown
from reconciler.model.kinds import KINDS, Manifest
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.providers.base import HostFacts, Observation

ROOT = Path(__file__).resolve().parents[2]
RECON = str(Path(sys.executable).parent / "recon")


def manifest(kind: str, name: str, spec: dict[str, Any]) -> Manifest:
    return KINDS[kind].model_validate(
        {"apiVersion": "reconciler/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}
    )


VM = manifest("VirtualMachine", "vm", {"cpus": 1, "memory": "128Mi"})
EFI_VM = manifest("VirtualMachine", "efi", {"cpus": 1, "memory": "128Mi", "firmware": "efi"})
CONTAINER = manifest(
    "Container",
    "ct",
    {"template": "t", "cpus": 1, "memory": "128Mi", "disk": {"pool": "p", "size": "1Gi"}},
)


def errors(m: Manifest, driver: str, host: dict[str, bool] | None = None) -> list[str]:
    return [p.message for p in check_manifest(m, driver, host) if p.error]


def test_every_driver_has_capabilities_and_a_cell_in_every_row() -> None:
    assert set(CAPABILITIES) == set(DRIVERS)
    names = {frozenset(caps) for caps in CAPABILITIES.values()}
    assert len(names) == 1, "every driver answers for the same capabilities"
    for feature in FEATURES:
        assert set(feature.drivers) == set(DRIVERS), feature.name


def test_kvm_and_tcg_answer_from_the_qemu_table() -> None:
    assert family("kvm") == family("tcg") == family("QEMU") == "qemu"


@pytest.mark.parametrize("driver", ["qemu", "kvm"])
def test_containers_are_refused_on_qemu(driver: str) -> None:
    (message,) = errors(CONTAINER, driver)
    assert "Container is not supported by the" in message
    assert "lxc:///system" in message
    assert errors(VM, driver) == []


def test_virtual_machines_are_refused_on_lxc() -> None:
    (message,) = errors(VM, "lxc")
    assert "VirtualMachine is not supported by the lxc driver" in message
    assert errors(CONTAINER, "lxc") == []


def test_efi_on_qemu_depends_on_the_host() -> None:
    offline = check_manifest(EFI_VM, "qemu")
    assert [(p.error, p.path) for p in offline] == [(False, ("spec", "firmware"))]
    assert errors(EFI_VM, "qemu", {"efi-firmware": True}) == []
    (message,) = errors(EFI_VM, "qemu", {"efi-firmware": False})
    assert "OVMF" in message
    assert errors(EFI_VM, "test", {}) == []


def test_unknown_drivers_are_an_error() -> None:
    with pytest.raises(ValueError, match="unknown driver"):
        check_manifest(VM, "xen")


def test_docs_show_the_table_as_the_code_has_it() -> None:
    text = (ROOT / "docs" / "real-hosts.md").read_text()
    assert features_markdown() in text, "regenerate the table: features_markdown()"


# --- planning against a host ------------------------------------------------------------------


def observation(driver: str, **caps: bool) -> Observation:
    facts = HostFacts("qemu:///system", "h", driver, 8 << 30, 2, {**CAPABILITIES["qemu"], **caps})
    return Observation(facts, {})


def test_a_plan_against_qemu_refuses_a_container_before_any_action() -> None:
    resources = [Resource(VM, "vm.yaml", 1), Resource(CONTAINER, "ct.yaml", 3)]
    with pytest.raises(PlanRefused) as caught:
        make_plan(resources, observation("kvm"))
    text = str(caught.value)
    assert "ct.yaml:3: Container/ct: kind: Container is not supported by the kvm driver" in text
    assert "vm.yaml" not in text


def test_a_plan_against_qemu_without_ovmf_refuses_efi() -> None:
    resources = [Resource(EFI_VM, "efi.yaml", 1)]
    with pytest.raises(PlanRefused, match=r"efi.yaml:1: VirtualMachine/efi: spec.firmware"):
        make_plan(resources, observation("kvm", **{"efi-firmware": False}))
    plan = make_plan(resources, observation("kvm", **{"efi-firmware": True}))
    assert [c.ref for c in plan.changes] == [ResourceRef("VirtualMachine", "efi")]


# --- recon validate --driver -------------------------------------------------------------------


def validate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RECON, "validate", *args], capture_output=True, text=True, check=False, timeout=60
    )


def test_validate_driver_flags_what_the_driver_cannot_do_at_its_line() -> None:
    result = validate("--driver", "qemu", "-f", str(ROOT / "manifests"))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(
        "error: " + str(ROOT / "manifests/containers/cache-1.yaml") + ":3:7: Container/cache-1: "
        "kind: Container is not supported by the qemu driver"
    )
    # The guest agent applies keys and hostname inside a QEMU guest: nothing to warn about.
    assert "sshAuthorizedKeys" not in result.stderr
    # What a driver accepts but does not apply is a warning, with its own line.
    vz = validate("--driver", "vz", "-f", str(ROOT / "manifests"))
    assert vz.returncode == 0, vz.stderr
    assert "warning: " in vz.stderr and "sshAuthorizedKeys" in vz.stderr


def test_validate_driver_json_separates_errors_from_warnings(tmp_path: Path) -> None:
    (tmp_path / "vm.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: VirtualMachine\nmetadata: {name: vm}\n"
        "spec:\n  cpus: 1\n  memory: 128Mi\n  firmware: efi\n"
    )
    result = validate("--driver", "lxc", "-f", str(tmp_path), "-o", "json")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert [(d["field"], d["line"]) for d in data["diagnostics"]] == [("kind", 2)]
    ok = validate("--driver", "qemu", "-f", str(tmp_path), "-o", "json")
    assert ok.returncode == 0, ok.stderr
    warned = json.loads(ok.stdout)["warnings"]
    assert [(w["field"], w["line"], w["column"]) for w in warned] == [("spec.firmware", 7, 13)]


def test_validate_without_driver_is_unchanged() -> None:
    result = validate("-f", str(ROOT / "manifests"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


GUEST_CONTAINER = manifest(
    "Container",
    "ct",
    {
        "template": "t",
        "cpus": 1,
        "memory": "128Mi",
        "disk": {"pool": "p", "size": "1Gi"},
        "hostname": "ct-1",
        "guest": {"users": [{"name": "ops", "sshAuthorizedKeys": []}]},
    },
)


def test_container_guest_settings_are_done_on_lxc_and_only_recorded_on_test_and_vz() -> None:
    assert check_manifest(GUEST_CONTAINER, "lxc") == []
    for driver in ("test", "vz"):
        found = check_manifest(GUEST_CONTAINER, driver)
        assert {p.path for p in found} == {("spec", "hostname"), ("spec", "guest", "users", 0)}
        assert all(not p.error and "stamp only" in p.message for p in found), found
    # A container without them is not warned about.
    assert check_manifest(CONTAINER, "test") == []
