"""One failing change does not stop the others: what needs nothing the failed change makes is
still applied; what depends on it (a reference in the manifests) waits and is reported as not
attempted; the summary and the exit code still say what failed."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Recon, edit, output

MINIMAL_SHA = "469fc58bff069afeef3b6fe2fca060abcedae97f6ecfcad2c2e4689ec256a0ca"


def test_an_apply_goes_on_past_a_failure_and_only_dependents_wait(
    recon: Recon, manifests: Path
) -> None:
    # Two independent failures: web-1's password (its variable is not set) and the image of
    # the template cache-1 is made from (its file no longer matches the recorded sha256).
    edit(manifests / "vms" / "web-1.yaml", "env: WEB_ADMIN_PASSWORD", "env: RECON_TEST_UNSET")
    edit(manifests / "templates.yaml", MINIMAL_SHA, "f" * 64)
    result = recon("apply", "-f", manifests, "-o", "json")
    assert result.returncode == 1, output(result)
    data = json.loads(result.stdout)
    failed = {f["resource"]: f["error"] for f in data["failures"]}
    assert set(failed) == {"VirtualMachine/web-1", "Template/debian-12-minimal"}, data
    assert "RECON_TEST_UNSET" in failed["VirtualMachine/web-1"]
    assert data["failed"]["resource"] in failed  # the first failure, as before
    # cache-1 is made from the failed template: it waits. db-1 needs neither: it is created.
    assert data["skipped"] == ["Container/cache-1"], data
    applied = {a["resource"] for a in data["applied"]}
    assert "VirtualMachine/db-1" in applied
    assert data["summary"]["created"] == len(applied)
    objects = recon.objects()
    assert objects["VirtualMachine/db-1"]["running"]
    assert "Container/cache-1" not in objects

    text = recon("apply", "-f", manifests)
    assert text.returncode == 1, output(text)
    assert "failed: VirtualMachine/web-1 (update)" in text.stdout, output(text)
    assert "failed: Template/debian-12-minimal (create)" in text.stdout, output(text)
    assert "not attempted: Container/cache-1 (needs Template/debian-12-minimal)" in text.stdout
    assert "Apply stopped" not in text.stdout
