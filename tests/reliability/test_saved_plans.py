"""A saved plan applies exactly what it showed: an edited file is refused before anything runs,
a malformed one is a clean usage error, and admission runs again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Recon, edit, output


def _saved(recon: Recon, applied: Path, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    edit(applied / "vms" / "web-1.yaml", "  memory: 1Gi\n", "  memory: 2Gi\n")
    plan = tmp_path / "plan.json"
    assert recon("diff", "-f", applied, "--out", plan).returncode == 1
    return plan, json.loads(plan.read_text())


def _web(data: dict[str, Any]) -> dict[str, Any]:
    return next(
        r["manifest"] for r in data["resources"] if r["manifest"]["metadata"]["name"] == "web-1"
    )


def _refused(recon: Recon, plan: Path, code: int, words: str) -> None:
    before = recon.host_xml.read_bytes()
    result = recon("apply", "-f", plan)
    assert result.returncode == code, output(result)
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert recon.host_xml.read_bytes() == before  # nothing was applied


def test_an_edited_manifest_inside_the_plan_is_refused(
    recon: Recon, applied: Path, tmp_path: Path
) -> None:
    plan, data = _saved(recon, applied, tmp_path)
    _web(data)["spec"]["memory"] = "3Gi"  # the plan still shows 1Gi -> 2Gi
    plan.write_text(json.dumps(data))
    _refused(recon, plan, 1, "the file was edited")
    assert recon.objects()["VirtualMachine/web-1"]["fields"]["memory"] == "1Gi"


def test_a_guarantee_edited_past_the_host_is_refused_by_admission_again(
    recon: Recon, applied: Path, tmp_path: Path
) -> None:
    plan, data = _saved(recon, applied, tmp_path)
    _web(data)["spec"].update(memory="20Gi", maxMemory="20Gi", memoryGuarantee="100%")
    plan.write_text(json.dumps(data))
    _refused(recon, plan, 1, "refused now")


def test_a_delete_added_by_hand_is_refused(recon: Recon, applied: Path, tmp_path: Path) -> None:
    plan, data = _saved(recon, applied, tmp_path)
    change = dict(data["changes"][0])
    change.update(
        resource="VirtualMachine/db-1", name="db-1", action="delete", disruption="replace"
    )
    change["fields"] = []
    data["changes"].append(change)
    plan.write_text(json.dumps(data))
    _refused(recon, plan, 1, "the file was edited")
    assert "VirtualMachine/db-1" in recon.objects()


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.pop("fingerprint"),
        lambda d: _web(d)["spec"].update(memory=512),
        lambda d: d.update(changes=[{"resource": "nonsense"}]),
        lambda d: d.pop("options"),
    ],
    ids=["no-fingerprint", "memory-512", "bad-change", "no-options"],
)
def test_a_malformed_plan_is_a_clean_error(
    recon: Recon, applied: Path, tmp_path: Path, damage: Any
) -> None:
    plan, data = _saved(recon, applied, tmp_path)
    damage(data)
    plan.write_text(json.dumps(data))
    _refused(recon, plan, 2, "nothing was applied")


def test_an_untouched_plan_with_its_prune_options_applies_as_shown(
    recon: Recon, applied: Path, tmp_path: Path
) -> None:
    (applied / "containers" / "cache-1.yaml").unlink()
    plan = tmp_path / "plan.json"
    diff = recon("diff", "-f", applied, "--prune", "--delete-volumes", "--out", plan)
    assert diff.returncode == 1, output(diff)
    result = recon("apply", "-f", plan)  # no flags: the plan says how it was made
    assert result.returncode == 0, output(result)
    assert "Container/cache-1" not in recon.objects()
    assert "with its volumes" in result.stderr
