"""CI without the host: `recon observe` exports the host state, `recon diff --host-state` plans
against it exactly as against the live host, and a plan saved from it applies on the host only
while the host is still as exported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from reconciler.model.host_state import FORMAT, SCHEMA_FILE, host_state_schema
from tests.conftest import (
    ROOT,
    SECRET,
    OtherTool,
    Recon,
    edit,
    leave_only_the_network_and_policy,
    output,
)

NEW_NETWORK = """\
apiVersion: reconciler/v1
kind: Network
metadata: {name: lan2}
spec: {mode: isolated, bridge: recon-lan2}
"""


def export(recon: Recon, path: Path) -> dict[str, Any]:
    recon.ok("observe", "--out", path)
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def pull_request(manifests: Path) -> None:
    """A change of every disruption class: a replace (a disk shrink), a restart (memory up
    without hotplug), a live change (autostart), and a create."""
    edit(manifests / "vms" / "db-1.yaml", "size: 20Gi", "size: 10Gi")
    edit(manifests / "vms" / "web-1.yaml", "memory: 1Gi", "memory: 2Gi")
    edit(manifests / "containers" / "cache-1.yaml", "autostart: true", "autostart: false")
    (manifests / "network2.yaml").write_text(NEW_NETWORK)


# --- the export ---------------------------------------------------------------------------------


def test_export_names_its_format_host_fingerprint_and_every_object(
    recon: Recon, applied: Path, tmp_path: Path
) -> None:
    data = export(recon, tmp_path / "host-state.json")
    assert data["format"] == FORMAT
    assert data["observedAt"].endswith("Z")
    assert data["host"]["uri"] == recon.uri
    assert data["host"]["capabilities"]["live-vcpus"] is True
    objects = {f"{o['kind']}/{o['name']}": o for o in data["objects"]}
    assert set(objects) >= {"VirtualMachine/web-1", "Container/cache-1", "StoragePool/default"}
    web = objects["VirtualMachine/web-1"]
    assert web["running"] is True
    assert web["fields"]["memory"] == "1Gi"
    assert web["stamp"]["managedBy"] == "recon"
    assert web["guaranteedBytes"] == 512 * 1024**2
    assert web["uuid"] == recon.objects()["VirtualMachine/web-1"]["uuid"]
    # stdout, the default, is the same document (but for the moment it was observed).
    again = json.loads(recon.ok("observe").stdout)
    assert again["fingerprint"] == data["fingerprint"]
    assert json.loads(recon.ok("observe", "--out", "-").stdout)["objects"] == data["objects"]


def test_the_schema_validates_an_export_and_is_checked_in(
    recon: Recon, applied: Path, tmp_path: Path
) -> None:
    schema = json.loads((ROOT / "schemas" / SCHEMA_FILE).read_text())
    assert schema == host_state_schema(), (
        "schemas/host-state.json is stale; run `recon observe --schema > schemas/host-state.json`"
    )
    assert json.loads(recon.ok("observe", "--schema").stdout) == schema
    data = export(recon, tmp_path / "host-state.json")
    jsonschema.validate(data, schema)
    data["objects"][0]["colour"] = "blue"
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("the schema accepted an unknown field")


def test_the_export_holds_no_secret_value(recon: Recon, applied: Path, tmp_path: Path) -> None:
    path = tmp_path / "host-state.json"
    result = recon.ok("observe", "--out", path)
    stdout = recon.ok("observe")
    text = path.read_text()
    # The password is there as its reference, so the canary is looked for where it would be.
    assert "WEB_ADMIN_PASSWORD" in text
    assert SECRET not in text
    assert SECRET not in output(result) + output(stdout)


# --- planning against it ---------------------------------------------------------------------


# A guest recon does not own, running with a memory guarantee: admission counts it.
FOREIGN = """<domain type='test'>
  <name>legacy</name>
  <memory unit='MiB'>512</memory>
  <memtune><min_guarantee unit='MiB'>256</min_guarantee></memtune>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
</domain>"""


def test_a_plan_against_the_export_equals_the_live_plan(
    recon: Recon, applied: Path, tmp_path: Path, other_tool: OtherTool
) -> None:
    with other_tool(recon.host_xml) as conn:
        conn.defineXML(FOREIGN).create()
        conn.lookupByName("db-1").destroy()  # a stopped guest: its changes are not restarts
    state = tmp_path / "host-state.json"
    data = export(recon, state)
    legacy = next(o for o in data["objects"] if o["name"] == "legacy")
    assert legacy["stamp"] is None and legacy["running"] is True
    pull_request(applied)
    (applied / "containers" / "cache-1.yaml").rename(tmp_path / "cache-1.yaml.away")
    for extra in ([], ["--prune"]):
        live = recon("diff", "-f", applied, "-o", "json", *extra)
        offline = recon("diff", "-f", applied, "-o", "json", "--host-state", state, *extra)
        assert live.returncode == offline.returncode == 1, output(live) + output(offline)
        assert json.loads(offline.stdout) == json.loads(live.stdout)
        assert f"exported host state {state}" in offline.stderr
        assert " ago)" in offline.stderr
    plan = json.loads(offline.stdout)
    actions = {c["resource"]: (c["action"], c["disruption"]) for c in plan["changes"]}
    assert actions["VirtualMachine/db-1"][0] == "replace"
    assert actions["VirtualMachine/web-1"] == ("update", "restart")
    assert actions["Container/cache-1"][0] == "delete"
    text = recon("diff", "-f", applied, "--host-state", state)
    assert text.stdout == recon("diff", "-f", applied).stdout


def test_offline_exit_codes_are_those_of_the_live_diff(
    recon: Recon, applied: Path, tmp_path: Path
) -> None:
    state = tmp_path / "host-state.json"
    export(recon, state)
    assert recon("diff", "-f", applied, "--host-state", state).returncode == 0
    edit(applied / "vms" / "web-1.yaml", "cpus: 2", "cpus: 3")
    assert recon("diff", "-f", applied, "--host-state", state).returncode == 1
    # A plan refused (memory admission) is 2, offline as live.
    edit(applied / "host-policy.yaml", "memoryReserve: 1Gi", "memoryReserve: 15Gi")
    refused = recon("diff", "-f", applied, "--host-state", state)
    assert refused.returncode == recon("diff", "-f", applied).returncode == 2
    assert "promise" in refused.stderr
    edit(applied / "host-policy.yaml", "memoryReserve: 15Gi", "memoryReserve: 1Gi")
    # Invalid manifests: 2, and the export is not what is blamed.
    edit(applied / "vms" / "web-1.yaml", "cpus: 3", "cpus: three")
    invalid = recon("diff", "-f", applied, "--host-state", state)
    assert invalid.returncode == 2
    assert "web-1.yaml" in invalid.stderr


def test_an_export_that_is_not_one_is_refused_with_exit_2(
    recon: Recon, applied: Path, tmp_path: Path
) -> None:
    state = tmp_path / "host-state.json"
    data = export(recon, state)
    cases = {
        "missing.json": None,
        "garbage.json": "{not json",
        "plan.json": json.dumps({"recon-plan": 1}),
        "future.json": json.dumps({**data, "format": "recon.host-state/v9"}),
        "bad.json": json.dumps({**data, "complete": "yes"}),
    }
    edited = json.loads(state.read_text())
    web = next(o for o in edited["objects"] if o["name"] == "web-1")
    web["fields"]["memory"] = "2Gi"
    cases["edited.json"] = json.dumps(edited)
    for name, text in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        result = recon("diff", "-f", applied, "--host-state", path)
        assert result.returncode == 2, (name, output(result))
        assert result.stderr.startswith(f"error: {path}"), (name, result.stderr)
        assert "Traceback" not in result.stderr
    assert "edited or damaged" in recon("diff", "-f", applied, "--host-state", path).stderr


# --- saved plans -------------------------------------------------------------------------------


def test_a_plan_saved_offline_applies_while_the_host_is_as_exported(
    recon: Recon, applied: Path, tmp_path: Path
) -> None:
    state, plan = tmp_path / "host-state.json", tmp_path / "plan.json"
    export(recon, state)
    edit(applied / "vms" / "web-1.yaml", "cpus: 2", "cpus: 3")
    assert recon("diff", "-f", applied, "--host-state", state, "--out", plan).returncode == 1
    assert json.loads(plan.read_text())["host"] == recon.uri
    result = recon.ok("apply", "-f", plan)
    assert "VirtualMachine/web-1" in result.stderr
    assert recon.objects()["VirtualMachine/web-1"]["fields"]["cpus"] == 3
    assert recon("diff", "-f", applied).returncode == 0


def test_a_plan_saved_offline_is_refused_once_the_host_changed(
    recon: Recon, applied: Path, tmp_path: Path, other_tool: OtherTool
) -> None:
    state, plan = tmp_path / "host-state.json", tmp_path / "plan.json"
    export(recon, state)
    edit(applied / "vms" / "web-1.yaml", "cpus: 2", "cpus: 3")
    assert recon("diff", "-f", applied, "--host-state", state, "--out", plan).returncode == 1
    with other_tool(recon.host_xml) as conn:
        conn.lookupByName("db-1").destroy()
    refused = recon("apply", "-f", plan)
    assert refused.returncode == 1, output(refused)
    assert "the host changed since this plan was made" in refused.stderr
    assert recon.objects()["VirtualMachine/web-1"]["fields"]["cpus"] == 2


# --- markdown ----------------------------------------------------------------------------------


def test_markdown_lists_replaces_then_restarts_then_the_rest(
    recon: Recon, applied: Path, tmp_path: Path
) -> None:
    state = tmp_path / "host-state.json"
    export(recon, state)
    pull_request(applied)
    result = recon("diff", "-f", applied, "-o", "markdown", "--host-state", state)
    assert result.returncode == 1, output(result)
    md = result.stdout
    rows = [line for line in md.splitlines() if line.startswith("| ") and "`" in line]
    order = [row.split("`")[1] for row in rows]
    assert order == [
        "VirtualMachine/db-1",
        "VirtualMachine/web-1",
        "Container/cache-1",
        "Network/lan2",
    ], md
    assert "**replace**" in rows[0] and "**restart**" in rows[1]
    assert "| live |" in rows[2]
    assert "`memory`: 1Gi → 2Gi" in rows[1]
    assert "**1** to create, **2** to update, **1** to replace, **0** to delete" in md
    assert f"exported host state {state}" in md
    # The text plan rides folded underneath, and the live diff renders the same table.
    assert "<details>" in md and "-/+ VirtualMachine/db-1" in md
    live = recon("diff", "-f", applied, "-o", "markdown").stdout
    assert [r for r in live.splitlines() if r.startswith("| ")] == [
        r for r in md.splitlines() if r.startswith("| ")
    ]


def test_markdown_of_no_changes_says_so(recon: Recon, applied: Path, tmp_path: Path) -> None:
    state = tmp_path / "host-state.json"
    export(recon, state)
    result = recon("diff", "-f", applied, "-o", "markdown", "--host-state", state)
    assert result.returncode == 0
    assert "No changes: the host matches the manifests (8 resources)." in result.stdout
    assert "| change |" not in result.stdout


def test_an_offline_prune_spares_what_the_host_still_needs_as_the_live_one_does(
    recon: Recon, applied: Path, tmp_path: Path
) -> None:
    """The export carries what uses a pool or a template image, so an offline prune spares
    them as a live one does, and its saved plan passes apply's re-planning."""
    state, plan = tmp_path / "host-state.json", tmp_path / "plan.json"
    export(recon, state)
    leave_only_the_network_and_policy(applied)
    live = recon("diff", "-f", applied, "-o", "json", "--prune")
    args = ("diff", "-f", applied, "-o", "json", "--prune", "--host-state", state)
    offline = recon(*args, "--out", plan)
    assert live.returncode == offline.returncode == 1, output(live) + output(offline)
    assert json.loads(offline.stdout) == json.loads(live.stdout)
    assert "StoragePool/default is not pruned" in offline.stdout + offline.stderr
    recon.ok("apply", "-f", plan)
    assert "StoragePool/default" in recon.objects()
