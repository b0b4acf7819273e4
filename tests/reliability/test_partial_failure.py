"""One failing change does not stop the others: what needs nothing the failed change makes is
still applied; what depends on it (a reference in the manifests) waits and is reported as not
attempted; the summary and the exit code still say what failed."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Recon, output

NOWHERE = "  repositories:\n    - {name: nowhere, url: 'http://127.0.0.1:9/debian'}\n"


def test_an_apply_goes_on_past_a_failure_and_only_dependents_wait(
    recon: Recon, manifests: Path
) -> None:
    # One failure: the template cache-1 is made from cannot be built (its repository does not
    # answer). (A missing secret is no longer an apply failure: it stops the plan first.)
    text = (manifests / "templates.yaml").read_text()
    minimal = text.index("name: debian-12-minimal")
    at = text.index("  source:", minimal)
    (manifests / "templates.yaml").write_text(text[:at] + NOWHERE + text[at:])
    result = recon("apply", "-f", manifests, "-o", "json")
    assert result.returncode == 1, output(result)
    data = json.loads(result.stdout)
    failed = {f["resource"]: f["error"] for f in data["failures"]}
    assert set(failed) == {"Template/debian-12-minimal"}, data
    assert "cannot reach the repository" in failed["Template/debian-12-minimal"]
    assert data["failed"]["resource"] in failed  # the first failure, as before
    # cache-1 is made from the failed template: it waits. The VMs need neither: created.
    assert data["skipped"] == ["Container/cache-1"], data
    applied = {a["resource"] for a in data["applied"]}
    assert {"VirtualMachine/db-1", "VirtualMachine/web-1"} <= applied
    assert data["summary"]["created"] == len(applied)
    objects = recon.objects()
    assert objects["VirtualMachine/db-1"]["running"]
    assert "Container/cache-1" not in objects

    again = recon("apply", "-f", manifests)
    assert again.returncode == 1, output(again)
    assert "failed: Template/debian-12-minimal (create)" in again.stdout, output(again)
    assert "not attempted: Container/cache-1 (needs Template/debian-12-minimal)" in again.stdout
    assert "Apply stopped" not in again.stdout
