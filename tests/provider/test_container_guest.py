"""A Container's settings inside it (hostname, dns, users, keys, passwords) on the embedded
test driver: it runs nothing inside a container, so they are recorded in recon's stamp only,
`validate --driver test` warns so, and nothing is read back (a change is one of the stamp)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Recon, output

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0sgX3VJgi2v7jYAdmLhXc8pDq9cBaS4mfJ7h3J0eVu ops@desk"
GUEST = f"""  dns:
    nameservers: [10.77.0.1]
  guest:
    users:
      - name: ops
        password: {{valueFrom: {{env: WEB_ADMIN_PASSWORD}}}}
        sshAuthorizedKeys: ["{KEY}"]
"""


def test_container_settings_are_recorded_and_warned_about_on_the_test_driver(
    recon: Recon, manifests: Path
) -> None:
    path = manifests / "containers" / "cache-1.yaml"
    path.write_text(path.read_text().replace("  state: Running\n", GUEST + "  state: Running\n"))
    applied = recon.ok("apply", "-f", manifests)
    # Nothing ran inside: the container's line says what libvirt did, nothing more.
    assert "+ Container/cache-1: defined, started\n" in output(applied), output(applied)
    plan = recon("diff", "-f", manifests)
    assert plan.returncode == 0, output(plan)
    validate = recon("validate", "--driver", "test", "-f", manifests)
    assert "the test driver runs nothing inside a container" in output(validate)
    # A key changed in the manifest is a live change of what the stamp records.
    path.write_text(path.read_text().replace(KEY, KEY.replace("ops@desk", "ops@laptop")))
    changed = recon("diff", "-f", manifests)
    assert changed.returncode == 1 and "sshAuthorizedKeys" in changed.stdout, output(changed)
    assert "(live)" in changed.stdout
