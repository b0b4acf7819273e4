"""A Container's guest settings (users, passwords by reference, ssh keys, hostname): bad input
gets one clear diagnostic at its field, and nothing is returned to apply."""

from __future__ import annotations

import textwrap
from pathlib import Path

from reconciler.load.manifests import load_manifests
from reconciler.model.diagnostics import Diagnostic
from reconciler.model.kinds import Container
from reconciler.model.secrets import secret_fields
from tests.validation.test_manifest_errors import POOL, TEMPLATE

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0sgX3VJgi2v7jYAdmLhXc8pDq9cBaS4mfJ7h3J0eVu ops@desk"


def container(guest: str, extra: str = "") -> str:
    spec = (
        "template: deb\ncpus: 1\nmemory: 256Mi\ndisk: {pool: default, size: 1Gi}\n"
        + extra
        + "guest:\n"
        + textwrap.indent(textwrap.dedent(guest), "  ")
    )
    return (
        "apiVersion: reconciler/v1\nkind: Container\nmetadata:\n  name: ct\nspec:\n"
        + textwrap.indent(spec, "  ")
    )


def load(tmp_path: Path, doc: str) -> tuple[list[Container], list[Diagnostic]]:
    target = tmp_path / "m.yaml"
    target.write_text("---\n".join([POOL, TEMPLATE, doc]))
    result = load_manifests([str(target)], with_schema=True)
    found = [r.manifest for r in result.resources if isinstance(r.manifest, Container)]
    return (found if result.ok else []), result.diagnostics


def test_users_with_keys_and_a_password_reference_are_accepted(tmp_path: Path) -> None:
    guest = f"""\
    users:
      - name: ops
        password: {{valueFrom: {{env: CT_OPS_PASSWORD}}}}
        sshAuthorizedKeys: ["{KEY}"]
    """
    found, diags = load(tmp_path, container(guest, "hostname: ct-one\n"))
    assert not diags, [d.render() for d in diags]
    (ct,) = found
    assert ct.spec.guest is not None and ct.spec.guest.users[0].ssh_authorized_keys == [KEY]
    # The password is a secret the apply reads before it starts, like a VM's.
    assert [key for key, _, _ in secret_fields(ct)] == ["guest.users[ops].password"]


def test_the_hostname_in_both_places_is_refused(tmp_path: Path) -> None:
    found, diags = load(tmp_path, container("hostname: two\n", "hostname: one\n"))
    assert not found
    (d,) = diags
    assert d.field == "spec.guest.hostname" and d.name == "ct"
    assert "given twice" in d.message and d.hint == "keep one of the two"
    assert d.file.endswith("m.yaml") and d.line > 0


def test_the_hostname_under_guest_alone_is_accepted(tmp_path: Path) -> None:
    found, diags = load(tmp_path, container("hostname: ct-one\n"))
    assert not diags and found[0].spec.guest is not None
    assert found[0].spec.guest.hostname == "ct-one"


def test_a_duplicate_user_is_refused(tmp_path: Path) -> None:
    found, diags = load(tmp_path, container("users: [{name: ops}, {name: ops}]\n"))
    assert not found
    (d,) = diags
    assert d.field == "spec.guest.users[1].name" and "duplicate user 'ops'" in d.message


def test_a_plain_password_is_refused_and_never_echoed(tmp_path: Path) -> None:
    found, diags = load(tmp_path, container("users: [{name: ops, password: hunter2-Secret}]\n"))
    assert not found
    (d,) = diags
    assert d.field == "spec.guest.users[0].password"
    assert "hunter2" not in d.render()


def test_a_bad_key_a_bad_user_name_and_an_unknown_field_are_each_named(tmp_path: Path) -> None:
    guest = """\
    users:
      - name: Ops
        sshAuthorizedKeys: ["not a key"]
        shell: /bin/bash
    """
    found, diags = load(tmp_path, container(guest))
    assert not found
    fields = sorted(d.field for d in diags)
    assert fields == [
        "spec.guest.users[0].name",
        "spec.guest.users[0].shell",
        "spec.guest.users[0].sshAuthorizedKeys[0]",
    ], [d.render() for d in diags]


def test_a_resolver_needs_one_to_three_nameserver_addresses(tmp_path: Path) -> None:
    found, diags = load(
        tmp_path, container("users: []\n", "dns: {nameservers: [10.0.0.1], search: [lan]}\n")
    )
    assert not diags and found[0].spec.dns is not None
    assert found[0].spec.dns.nameservers == ["10.0.0.1"]
    for dns, field in (
        ("dns: {nameservers: []}\n", "spec.dns.nameservers"),
        ("dns: {nameservers: [10.0.0.1, 10.0.0.2, 10.0.0.3, 10.0.0.4]}\n", "spec.dns.nameservers"),
        ("dns: {nameservers: [dns.example]}\n", "spec.dns.nameservers[0]"),
        ("dns: {nameservers: [10.0.0.1], search: [Bad_Domain]}\n", "spec.dns.search[0]"),
    ):
        found, diags = load(tmp_path, container("users: []\n", dns))
        assert not found and [d.field for d in diags] == [field], [d.render() for d in diags]
