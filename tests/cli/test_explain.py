"""`recon explain KIND[.field.path]`: type, default, allowed values and doc text of a field,
from the JSON Schema the models generate."""

from __future__ import annotations

from click.testing import CliRunner

from reconciler.cli.main import cli


def explain(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["explain", *args])
    return result.exit_code, result.output


def test_explain_a_kind_lists_its_fields_and_doc_text() -> None:
    code, text = explain("VirtualMachine")
    assert code == 0
    assert "KIND:     VirtualMachine" in text and "VERSION:  reconciler/v1" in text
    assert "A KVM/QEMU virtual machine" in text  # the model's doc text
    assert "spec  <VirtualMachineSpec>  (required)" in text


def test_explain_a_field_gives_type_default_and_allowed_values() -> None:
    code, text = explain("vm.spec.firmware")
    assert code == 0
    assert "FIELD:    firmware <string>" in text
    assert 'default: "bios"' in text and 'allowed: "bios", "efi"' in text
    code, text = explain("vm.spec")
    assert "cpus  <integer>  (required; at least 1; at most 4096)" in text
    assert "memory  <string>  (required; format: a quantity such as '512Mi' or '4Gi')" in text
    assert "disks  <[]Disk>" in text
    code, text = explain("vms.spec.bootOrder")
    assert 'allowed items: "disk", "network", "cdrom"' in text


def test_explain_walks_lists_and_optional_objects() -> None:
    code, text = explain("vm.spec.disks")
    assert code == 0
    assert "size  <string>  (required" in text and 'bus  <string>  (default: "virtio"' in text
    code, text = explain("vm.spec.guest.users.password")
    assert "A reference to a secret" in text and "valueFrom  <SecretSource>  (required)" in text
    code, text = explain("Container.spec.memoryGuarantee")
    assert "a percentage between '0%' and '100%'" in text
    code, text = explain("hostpolicy.spec.ksm.pagesToScan")
    assert "at most 100000" in text


def test_explain_unknown_kind_or_field_says_what_exists() -> None:
    code, text = explain("vm.spec.colour")
    assert code == 1
    assert "field 'colour' does not exist in spec" in text and "firmware" in text
    code, text = explain("gizmo")
    assert code == 2 and "unknown kind 'gizmo'" in text
