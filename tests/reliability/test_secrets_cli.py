"""Secrets through the CLI: every one read before the first action, a rotated value is a
change (without either value shown), and only the places the operator allows are read."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import SECRET, Recon, edit, output

WEB = Path("vms/web-1.yaml")
ENV_REF = "env: WEB_ADMIN_PASSWORD   # the value never sits in git"


def _file_ref(manifests: Path, path: str) -> None:
    edit(manifests / WEB, ENV_REF, f"file: {json.dumps(path)}")


# --- every secret before the first action --------------------------------------------------


def test_a_missing_secret_stops_diff_and_apply_before_anything_is_applied(
    recon: Recon, manifests: Path
) -> None:
    edit(manifests / WEB, "env: WEB_ADMIN_PASSWORD", "env: UNSET_ADMIN_PASSWORD")
    # Validation alone needs no secret (CI has none); --secrets reads them.
    recon.ok("validate", "-f", manifests)
    checked = recon("validate", "--secrets", "-f", manifests)
    assert checked.returncode == 2, output(checked)
    for result in (checked, recon("diff", "-f", manifests), recon("apply", "-f", manifests)):
        assert result.returncode == 2, output(result)
        assert "vms/web-1.yaml:31:" in result.stderr, output(result)
        assert "VirtualMachine/web-1" in result.stderr
        assert "secret environment variable UNSET_ADMIN_PASSWORD is not set" in result.stderr
        assert "nothing was applied" in result.stderr
    # Not even the pool or the other guests: the run stopped before its first action.
    assert not recon.host_xml.exists() or recon.get() == []
    # Given the secret, the same manifests apply, and the stamp records a digest, not it.
    again = recon("apply", "-f", manifests, env={"UNSET_ADMIN_PASSWORD": SECRET})
    assert again.returncode == 0, output(again)
    assert "password of admin set" in again.stderr
    stamp = recon.objects()["VirtualMachine/web-1"]["stamp"]
    assert SECRET not in json.dumps(stamp)


def test_a_stamp_from_a_run_without_the_secret_never_claims_it(recon: Recon, applied: Path) -> None:
    edit(applied / WEB, "env: WEB_ADMIN_PASSWORD", "env: OTHER_ADMIN_PASSWORD")
    failed = recon("apply", "-f", applied)
    assert failed.returncode == 2, output(failed)
    # The rerun with the secret sets it: the earlier run recorded nothing.
    rerun = recon("apply", "-f", applied, env={"OTHER_ADMIN_PASSWORD": "another-value-1"})
    assert rerun.returncode == 0, output(rerun)
    assert "password of admin set" in rerun.stderr
    assert (
        recon("diff", "-f", applied, env={"OTHER_ADMIN_PASSWORD": "another-value-1"}).returncode
        == 0
    )


# --- a rotated secret is a change ----------------------------------------------------------


def test_a_rotated_secret_is_a_change_shown_without_either_value(
    recon: Recon, applied: Path
) -> None:
    rotated = "rotated-value-7f3a-unique"
    assert recon("diff", "-f", applied).returncode == 0
    pending = recon("diff", "-f", applied, env={"WEB_ADMIN_PASSWORD": rotated})
    assert pending.returncode == 1, output(pending)
    assert "guest.users[admin].password:" in pending.stdout
    assert "(a new value)" in pending.stdout
    assert SECRET not in output(pending) and rotated not in output(pending)
    done = recon("apply", "-f", applied, env={"WEB_ADMIN_PASSWORD": rotated})
    assert done.returncode == 0, output(done)
    assert "password of admin set" in done.stderr
    assert recon("diff", "-f", applied, env={"WEB_ADMIN_PASSWORD": rotated}).returncode == 0
    # The old value is now the change.
    assert recon("diff", "-f", applied).returncode == 1
    for path in recon.home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert SECRET.encode() not in data and rotated.encode() not in data, path


def test_a_plan_against_an_export_needs_no_secret_and_says_it_did_not_compare(
    recon: Recon, applied: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    recon.ok("observe", "--out", state)
    assert SECRET not in state.read_text()
    edit(applied / WEB, "env: WEB_ADMIN_PASSWORD", "env: CI_HAS_NO_PASSWORD")
    planned = recon("diff", "-f", applied, "--host-state", state)
    assert planned.returncode == 1, output(planned)
    assert "secrets were not read" in planned.stderr


# --- only the places the operator allows ---------------------------------------------------


def test_secret_files_outside_the_secrets_directory_are_refused_at_validation(
    recon: Recon, manifests: Path, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "web-admin").write_text(SECRET + "\n")
    (tmp_path / "outside").write_text("not-for-guests\n")
    (secrets / "escape").symlink_to(tmp_path / "outside")
    env = {"RECON_SECRETS_DIR": str(secrets)}
    for path in ("/etc/hostname", "../outside", "escape", str(tmp_path / "outside")):
        _file_ref(manifests, path)
        result = recon("validate", "-f", manifests, env=env)
        assert result.returncode == 1, (path, output(result))
        assert "vms/web-1.yaml:31:" in result.stderr, output(result)
        assert "spec.guest.users[0].password.valueFrom.file" in result.stderr
        assert "outside the secrets directory" in result.stderr
        applying = recon("apply", "-f", manifests, env=env)
        assert applying.returncode == 2, output(applying)
        assert not recon.host_xml.exists() or recon.get() == []
        edit(manifests / WEB, f"file: {json.dumps(path)}", ENV_REF)
    # Inside the directory (relative to it, or by its absolute path): read and applied.
    _file_ref(manifests, "web-admin")
    done = recon("--secrets-dir", secrets, "apply", "-f", manifests)
    assert done.returncode == 0, output(done)
    assert "password of admin set" in done.stderr
    assert recon("--secrets-dir", secrets, "diff", "-f", manifests).returncode == 0
    edit(manifests / WEB, 'file: "web-admin"', f"file: {json.dumps(str(secrets / 'web-admin'))}")
    assert recon("--secrets-dir", secrets, "validate", "--secrets", "-f", manifests).returncode == 0
    # The default directory is $RECON_HOME/secrets: this file is not in it.
    default = recon("validate", "-f", manifests)
    assert default.returncode == 1 and str(recon.home / "secrets") in default.stderr


def test_secret_variables_outside_the_allowed_prefix_are_refused_at_validation(
    recon: Recon, manifests: Path
) -> None:
    # By default only names ending in _PASSWORD: the example's WEB_ADMIN_PASSWORD is fine.
    recon.ok("validate", "-f", manifests)
    edit(manifests / WEB, "env: WEB_ADMIN_PASSWORD", "env: HOME")
    refused = recon("validate", "-f", manifests)
    assert refused.returncode == 1, output(refused)
    assert "spec.guest.users[0].password.valueFrom.env" in refused.stderr
    assert "secret environment variable HOME is not one recon may read" in refused.stderr
    assert recon("diff", "-f", manifests).returncode == 2
    edit(manifests / WEB, "env: HOME", "env: WEB_ADMIN_PASSWORD")
    # An operator's prefix replaces the default rule; a manifest cannot change it.
    assert (
        recon("validate", "-f", manifests, env={"RECON_SECRETS_ENV_PREFIX": "WEB_"}).returncode == 0
    )
    other = recon("--secrets-env-prefix", "DB_", "validate", "-f", manifests)
    assert other.returncode == 1 and "names starting with DB_" in other.stderr
    empty = recon("--secrets-env-prefix", "", "validate", "-f", manifests)
    assert empty.returncode == 2 and "--secrets-env-prefix" in empty.stderr
