"""The `recon` command against the embedded host: convergence, exit codes, saved plans,
disruption, prune, delete, ownership, secrets, the host lock, and drift.

Every test runs the real command in a subprocess with its own RECON_HOME. Changes "behind
recon's back" are made the way an operator's second tool would: load the persisted host with
libvirt, change it, write it back.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt
import pytest

from reconciler.engine.lock import HostLock
from tests.conftest import SECRET, OtherTool, Recon, edit, output

GUESTS = {"VirtualMachine/db-1", "VirtualMachine/web-1", "Container/cache-1"}
EVERYTHING = GUESTS | {
    "StoragePool/default",
    "Network/lan",
    "Template/debian-12-base",
    "Template/debian-12-minimal",
}
FOREIGN_WEB = """<domain type='test'>
  <name>web-1</name>
  <uuid>0e0e0e0e-1111-4222-8333-444444444444</uuid>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
</domain>"""


def pool_volumes(recon: Recon, pool: str = "default") -> set[str]:
    """The volumes libvirt itself finds in a pool of the persisted host."""
    conn = libvirt.open(recon.uri)
    try:
        return set(conn.storagePoolLookupByName(pool).listVolumes())
    finally:
        conn.close()


def uuids(recon: Recon) -> dict[str, str]:
    return {ref: o["uuid"] for ref, o in recon.objects().items() if o["uuid"]}


# --- applying the examples ---------------------------------------------------------------------


def test_applying_the_examples_runs_every_guest_and_manages_everything(
    recon: Recon, manifests: Path
) -> None:
    result = recon("apply", "-f", manifests)
    assert result.returncode == 0, output(result)
    assert "Apply complete: 7 created" in result.stdout
    objects = recon.objects()
    assert set(objects) == EVERYTHING
    assert all(o["managed"] for o in objects.values())
    for ref in GUESTS:
        assert objects[ref]["running"] is True, ref
        assert objects[ref]["fields"]["state"] == "Running", ref


def test_uuids_are_stable_across_reads_and_reapplies(recon: Recon, applied: Path) -> None:
    first = uuids(recon)
    assert set(first) >= GUESTS | {"StoragePool/default", "Network/lan"}
    assert uuids(recon) == first
    recon.ok("apply", "-f", applied)
    assert uuids(recon) == first


def test_a_second_apply_changes_nothing_and_crosses_no_failpoint(
    recon: Recon, applied: Path, tmp_path: Path
) -> None:
    before = recon.host_xml.read_bytes()
    log = tmp_path / "failpoints.log"
    result = recon("apply", "-f", applied, env={"RECON_FAILPOINT_LOG": str(log)})
    assert result.returncode == 0, output(result)
    assert "No changes" in result.stderr
    assert not log.exists()
    assert recon.host_xml.read_bytes() == before


def test_the_failpoint_log_counts_the_steps_of_a_real_apply(
    recon: Recon, manifests: Path, tmp_path: Path
) -> None:
    # The check above means something only if the log is written when steps are taken.
    log = tmp_path / "failpoints.log"
    recon.ok("apply", "-f", manifests, env={"RECON_FAILPOINT_LOG": str(log)})
    lines = log.read_text().splitlines()
    assert len(lines) == 14  # before and after each of the 7 creates
    assert lines[0] == "1 before create StoragePool/default"


# --- diff: exit codes and output ---------------------------------------------------------------


def test_diff_exits_1_while_changes_are_pending_and_0_once_applied(
    recon: Recon, manifests: Path
) -> None:
    pending = recon("diff", "-f", manifests)
    assert pending.returncode == 1, output(pending)
    assert "Plan: 7 to create" in pending.stdout
    recon.ok("apply", "-f", manifests)
    clean = recon("diff", "-f", manifests)
    assert clean.returncode == 0, output(clean)
    assert "No changes" in clean.stdout


def test_invalid_manifests_exit_2_and_touch_no_host(recon: Recon, manifests: Path) -> None:
    edit(manifests / "vms" / "web-1.yaml", "  cpus: 2\n", '  cpus: "two"\n')
    for verb in ("diff", "apply"):
        result = recon(verb, "-f", manifests)
        assert result.returncode == 2, output(result)
        assert "web-1.yaml" in result.stderr
        assert "nothing was done" in result.stderr
    assert not recon.host_xml.exists()


def test_invalid_manifests_leave_an_existing_host_byte_identical(
    recon: Recon, applied: Path
) -> None:
    before = recon.host_xml.read_bytes()
    edit(applied / "vms" / "db-1.yaml", "memory: 2Gi", "memory: 2 gigs")
    result = recon("apply", "-f", applied)
    assert result.returncode == 2, output(result)
    assert recon.host_xml.read_bytes() == before


def test_diff_json_lists_each_change_with_its_fields_and_disruption(
    recon: Recon, applied: Path
) -> None:
    edit(applied / "vms" / "web-1.yaml", "  cpus: 2\n", "  cpus: 3\n")
    result = recon("diff", "-f", applied, "-o", "json")
    assert result.returncode == 1, output(result)
    plan = json.loads(result.stdout)
    assert plan["version"] == 1
    assert plan["host"] == recon.uri
    assert len(plan["fingerprint"]) == 64
    assert plan["changes"] == [
        {
            "resource": "VirtualMachine/web-1",
            "kind": "VirtualMachine",
            "name": "web-1",
            "action": "update",
            "disruption": "live",
            "reason": "differs from the manifest",
            "file": str(applied / "vms" / "web-1.yaml"),
            "fields": [{"path": "cpus", "before": 2, "after": 3, "disruption": "live"}],
        }
    ]
    assert set(plan["unchanged"]) == (EVERYTHING | {"HostPolicy/host"}) - {"VirtualMachine/web-1"}
    assert any("ksm" in w for w in plan["warnings"])


def test_memory_admission_refuses_before_any_action_showing_who_holds_what(
    recon: Recon, applied: Path
) -> None:
    # db-1 guarantees 100% of its memory: 15Gi + web-1's 512Mi + cache-1's 128Mi is more than
    # the 16Gi embedded host minus the 1Gi HostPolicy reserve.
    edit(applied / "vms" / "db-1.yaml", "  memory: 2Gi\n", "  memory: 15Gi\n")
    before = recon.host_xml.read_bytes()
    for verb, code in (("diff", 2), ("apply", 1)):
        result = recon(verb, "-f", applied)
        assert result.returncode == code, output(result)
        assert "memory guarantees would promise 16000Mi but the host can promise 15Gi" in (
            result.stderr
        )
        assert "VirtualMachine/db-1    yes       15Gi     100%        15Gi" in result.stderr
    assert recon.host_xml.read_bytes() == before


# --- saved plans -------------------------------------------------------------------------------


def test_a_saved_plan_applies_what_was_reviewed(
    recon: Recon, applied: Path, tmp_path: Path
) -> None:
    edit(applied / "vms" / "web-1.yaml", "  cpus: 2\n", "  cpus: 3\n")
    plan = tmp_path / "plan.json"
    assert recon("diff", "-f", applied, "--out", plan).returncode == 1
    result = recon("apply", "-f", plan)
    assert result.returncode == 0, output(result)
    assert "1 updated live" in result.stdout
    assert recon.objects()["VirtualMachine/web-1"]["fields"]["cpus"] == 3
    assert recon("diff", "-f", applied).returncode == 0


def test_a_saved_plan_is_refused_when_the_host_changed_after_it_was_made(
    recon: Recon, applied: Path, tmp_path: Path
) -> None:
    edit(applied / "vms" / "web-1.yaml", "  cpus: 2\n", "  cpus: 3\n")
    plan = tmp_path / "plan.json"
    assert recon("diff", "-f", applied, "--out", plan).returncode == 1
    # Meanwhile someone applies another change.
    edit(applied / "vms" / "web-1.yaml", "  cpus: 3\n", "  cpus: 2\n")
    edit(applied / "vms" / "db-1.yaml", "  cpus: 2\n", "  cpus: 1\n")
    recon.ok("apply", "-f", applied)
    before = recon.host_xml.read_bytes()

    result = recon("apply", "-f", plan)
    assert result.returncode == 1, output(result)
    assert "the host changed since this plan was made; it was not applied" in result.stderr
    assert "recon diff --out" in result.stderr
    assert recon.host_xml.read_bytes() == before
    assert recon.objects()["VirtualMachine/web-1"]["fields"]["cpus"] == 2


def test_a_saved_plan_stamps_what_it_creates_with_the_set_it_was_made_for(
    recon: Recon, applied: Path, tmp_path: Path
) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "net.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Network\nmetadata: {name: batch}\n"
        "spec: {mode: isolated, bridge: recon-batch0}\n"
    )
    plan = tmp_path / "plan.json"
    assert recon("diff", "--set", "batch", "-f", batch, "--out", plan).returncode == 1
    recon.ok("apply", "-f", plan)
    assert recon.objects()["Network/batch"]["stamp"]["set"] == "batch"
    # So pruning the default set does not take it for one of its own.
    result = recon.ok("apply", "--prune", "-f", applied)
    assert "Network/batch" not in output(result)
    assert "Network/batch" in recon.objects()


# --- disruption classes ------------------------------------------------------------------------


def test_cpus_within_max_cpus_and_a_memory_shrink_are_applied_live(
    recon: Recon, applied: Path
) -> None:
    web = applied / "vms" / "web-1.yaml"
    edit(web, "  cpus: 2\n", "  cpus: 3\n")
    edit(web, "  memory: 1Gi\n", "  memory: 512Mi\n")
    uuid = uuids(recon)["VirtualMachine/web-1"]
    pending = recon("diff", "-f", applied)
    assert pending.returncode == 1
    assert "~ VirtualMachine/web-1  update (live)" in pending.stdout
    assert "cpus: 2 -> 3  (live)" in pending.stdout
    assert "memory: 1Gi -> 512Mi  (live)" in pending.stdout
    # What the shrink depends on inside the guest, said before it is tried.
    assert "note: needs the guest's balloon driver (virtio_balloon)" in pending.stdout
    assert "hot-unplug" not in pending.stdout  # cpus grow: nothing asked of the guest

    result = recon.ok("apply", "-f", applied)
    assert "1 updated live" in result.stdout
    assert "restarted" not in result.stderr
    web_1 = recon.objects()["VirtualMachine/web-1"]
    assert (web_1["fields"]["cpus"], web_1["fields"]["memory"]) == (3, "512Mi")
    assert web_1["uuid"] == uuid
    assert recon("diff", "-f", applied).returncode == 0


def test_memory_growth_is_a_restart_on_a_host_without_memory_hotplug(
    recon: Recon, applied: Path
) -> None:
    edit(applied / "vms" / "web-1.yaml", "  memory: 1Gi\n", "  memory: 2Gi\n")
    pending = recon("diff", "-f", applied)
    assert "memory: 1Gi -> 2Gi  (restart)" in pending.stdout
    result = recon.ok("apply", "-f", applied)
    assert "1 restarted" in result.stdout
    web_1 = recon.objects()["VirtualMachine/web-1"]
    assert (web_1["fields"]["memory"], web_1["running"]) == ("2Gi", True)
    assert recon("diff", "-f", applied).returncode == 0


@pytest.mark.parametrize(
    ("old", "new", "shown"),
    [
        ("firmware: bios", "firmware: efi", "firmware: bios -> efi  (restart)"),
        (
            "bootOrder: [disk, network]",
            "bootOrder: [network, disk]",
            'bootOrder: ["disk", "network"] -> ["network", "disk"]  (restart)',
        ),
    ],
    ids=["firmware", "bootOrder"],
)
def test_boot_settings_restart_the_guest_and_converge(
    recon: Recon, applied: Path, old: str, new: str, shown: str
) -> None:
    edit(applied / "vms" / "web-1.yaml", old, new)
    uuid = uuids(recon)["VirtualMachine/web-1"]
    pending = recon("diff", "-f", applied)
    assert "~ VirtualMachine/web-1  update (restart)" in pending.stdout
    assert shown in pending.stdout
    result = recon.ok("apply", "-f", applied)
    assert "VirtualMachine/web-1: updated, restarted" in result.stderr
    assert "1 restarted" in result.stdout
    web_1 = recon.objects()["VirtualMachine/web-1"]
    assert web_1["running"] is True
    assert web_1["uuid"] == uuid
    assert recon("diff", "-f", applied).returncode == 0


@pytest.mark.parametrize("with_boot_change", [False, True], ids=["stop", "stop+bootOrder"])
def test_a_stop_is_counted_as_stopped_never_as_restarted(
    recon: Recon, applied: Path, with_boot_change: bool
) -> None:
    web = applied / "vms" / "web-1.yaml"
    edit(web, "  state: Running\n", "  state: Stopped\n")
    if with_boot_change:
        # A restart-class field with it: the guest is stopped, not restarted.
        edit(web, "bootOrder: [disk, network]", "bootOrder: [network, disk]")
    result = recon.ok("apply", "-f", applied)
    assert "VirtualMachine/web-1: updated, stopped" in result.stderr
    assert "1 stopped" in result.stdout
    assert "0 restarted" in result.stdout
    assert "0 updated live" in result.stdout
    assert recon.objects()["VirtualMachine/web-1"]["running"] is False


def test_adding_a_disk_restarts_the_guest_and_keeps_it(recon: Recon, applied: Path) -> None:
    edit(
        applied / "vms" / "db-1.yaml",
        "      size: 50Gi\n",
        "      size: 50Gi\n    - name: logs\n      pool: default\n      size: 1Gi\n",
    )
    uuid = uuids(recon)["VirtualMachine/db-1"]
    pending = recon("diff", "-f", applied)
    assert "~ VirtualMachine/db-1  update (restart)" in pending.stdout
    assert "disks[logs].size: (none) -> 1Gi  (restart)" in pending.stdout
    assert "cannot change it" not in output(pending)
    recon.ok("apply", "-f", applied)
    assert "db-1_logs.qcow2" in pool_volumes(recon)
    db_1 = recon.objects()["VirtualMachine/db-1"]
    assert (db_1["uuid"], db_1["fields"]["disks[logs].size"]) == (uuid, "1Gi")
    assert recon("diff", "-f", applied).returncode == 0


def test_growing_a_disk_without_volume_resize_is_unmet_never_in_sync(
    recon: Recon, applied: Path
) -> None:
    edit(applied / "vms" / "web-1.yaml", "      size: 10Gi\n", "      size: 20Gi\n")
    before = recon.host_xml.read_bytes()
    pending = recon("diff", "-f", applied)
    # A CI gate must not read "in sync": the host does not match, though recon cannot help.
    assert pending.returncode == 1, output(pending)
    assert "The host matches" not in pending.stdout
    assert "the host does not match the manifests: 1 change this host cannot make" in (
        pending.stdout
    )
    # The warning is a message: on stderr, as every other.
    assert "disks[root].size: this host cannot change it (volume-resize" in pending.stderr
    assert "warning:" not in pending.stdout
    assert recon("apply", "--dry-run", "-f", applied).returncode == 1
    result = recon.ok("apply", "-f", applied)
    assert "No changes" in result.stderr
    assert "cannot change it" in result.stderr
    assert recon.host_xml.read_bytes() == before


@pytest.mark.parametrize(
    ("file", "old", "new", "shown"),
    [
        (
            "db-1.yaml",
            "spec:\n",
            "spec:\n  uuid: 0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6\n",
            "-> 0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6  (replace)",
        ),
        (
            "db-1.yaml",
            "      size: 50Gi\n",
            "      size: 50Gi\n      template: debian-12-base\n",
            "disks[data].template: (none) -> debian-12-base  (replace)",
        ),
    ],
    ids=["uuid", "disk-template"],
)
def test_a_replace_needs_allow_replace_and_then_converges(
    recon: Recon, applied: Path, file: str, old: str, new: str, shown: str
) -> None:
    edit(applied / "vms" / file, old, new)
    before = recon.host_xml.read_bytes()
    refused = recon("apply", "-f", applied)
    assert refused.returncode == 1, output(refused)
    assert "-/+ VirtualMachine/db-1  replace" in refused.stderr
    assert shown in refused.stderr
    assert "the plan replaces VirtualMachine/db-1; nothing was applied" in refused.stderr
    assert "--allow-replace" in refused.stderr
    assert recon.host_xml.read_bytes() == before

    result = recon.ok("apply", "--allow-replace", "-f", applied)
    assert "1 replaced" in result.stdout
    assert recon.objects()["VirtualMachine/db-1"]["running"] is True
    assert recon("diff", "-f", applied).returncode == 0


def test_a_pinned_uuid_is_what_the_replaced_guest_gets(recon: Recon, applied: Path) -> None:
    pinned = "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
    edit(applied / "vms" / "db-1.yaml", "spec:\n", f"spec:\n  uuid: {pinned}\n")
    recon.ok("apply", "--allow-replace", "-f", applied)
    assert uuids(recon)["VirtualMachine/db-1"] == pinned


# --- prune -------------------------------------------------------------------------------------


def test_prune_deletes_the_guest_whose_manifest_is_gone_and_keeps_its_volumes(
    recon: Recon, applied: Path
) -> None:
    (applied / "vms" / "db-1.yaml").unlink()
    assert recon("diff", "-f", applied).returncode == 0  # without --prune: nothing to do
    result = recon.ok("apply", "--prune", "-f", applied)
    assert "- VirtualMachine/db-1: deleted (volumes kept)" in result.stderr
    assert set(recon.objects()) == EVERYTHING - {"VirtualMachine/db-1"}
    assert {"db-1_root.qcow2", "db-1_data.qcow2"} <= pool_volumes(recon)
    assert recon("diff", "--prune", "-f", applied).returncode == 0


def test_prune_with_delete_volumes_deletes_the_disks_too(recon: Recon, applied: Path) -> None:
    (applied / "vms" / "db-1.yaml").unlink()
    recon.ok("apply", "--prune", "--delete-volumes", "-f", applied)
    volumes = pool_volumes(recon)
    assert not {"db-1_root.qcow2", "db-1_data.qcow2"} & volumes
    assert "web-1_root.qcow2" in volumes


def test_prune_leaves_objects_of_another_set_alone(
    recon: Recon, applied: Path, tmp_path: Path
) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "net.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Network\nmetadata: {name: batch}\n"
        "spec: {mode: isolated, bridge: recon-batch0}\n"
    )
    recon.ok("apply", "--set", "batch", "-f", batch)
    (applied / "containers" / "cache-1.yaml").unlink()
    result = recon.ok("apply", "--prune", "-f", applied)
    assert "Container/cache-1: deleted" in result.stderr
    objects = recon.objects()
    assert "Container/cache-1" not in objects
    assert objects["Network/batch"]["managed"] is True
    assert objects["Network/batch"]["stamp"]["set"] == "batch"


def test_prune_of_an_empty_directory_is_refused_without_allow_empty(
    recon: Recon, applied: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    before = recon.host_xml.read_bytes()
    result = recon("apply", "--prune", "-f", empty)
    assert result.returncode != 0
    assert "no manifest files" in result.stderr
    assert recon.host_xml.read_bytes() == before
    assert set(recon.objects()) == EVERYTHING


def test_prune_of_an_empty_directory_with_allow_empty_removes_the_whole_set(
    recon: Recon, applied: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    # Without --delete-volumes the guests' disks stay: the pool holding them and the template
    # they back onto are spared (and the plan says so).
    kept = recon("diff", "--prune", "--allow-empty", "-f", empty)
    assert kept.returncode == 1, output(kept)
    assert "5 to delete" in kept.stdout
    assert "StoragePool/default is not pruned: it still holds" in output(kept)
    assert "Template/debian-12-base is not pruned" in output(kept)
    pending = recon("diff", "--prune", "--allow-empty", "--delete-volumes", "-f", empty)
    assert pending.returncode == 1, output(pending)
    assert "7 to delete" in pending.stdout
    result = recon("apply", "--prune", "--allow-empty", "--delete-volumes", "-f", empty)
    assert result.returncode == 0, output(result)
    assert recon.objects() == {}


# --- delete ------------------------------------------------------------------------------------


def test_delete_by_kind_and_name_deletes_that_guest_only(recon: Recon, applied: Path) -> None:
    result = recon("delete", "VirtualMachine", "web-1")
    assert result.returncode == 0, output(result)
    assert "1 deleted" in result.stdout
    assert set(recon.objects()) == EVERYTHING - {"VirtualMachine/web-1"}
    assert "web-1_root.qcow2" in pool_volumes(recon)


def test_delete_by_file_deletes_what_the_file_names(recon: Recon, applied: Path) -> None:
    # The file refers to a pool, a network and a template it does not define: for deleting
    # that does not matter.
    result = recon("delete", "-f", applied / "containers" / "cache-1.yaml")
    assert result.returncode == 0, output(result)
    assert set(recon.objects()) == EVERYTHING - {"Container/cache-1"}


def test_deleting_a_domain_recon_did_not_create_is_refused(
    recon: Recon, applied: Path, other_tool: OtherTool
) -> None:
    with other_tool(recon.host_xml) as conn:
        conn.defineXML(FOREIGN_WEB.replace("web-1", "legacy").replace("0e0e0e0e", "0f0f0f0f"))
    before = recon.host_xml.read_bytes()
    result = recon("delete", "vm", "legacy")
    assert result.returncode == 1, output(result)
    assert "VirtualMachine/legacy was not created by recon; left untouched" in result.stderr
    assert recon.host_xml.read_bytes() == before
    assert recon.objects()["VirtualMachine/legacy"]["managed"] is False


# --- ownership ---------------------------------------------------------------------------------


def test_a_foreign_domain_with_a_wanted_name_stops_the_apply_and_is_left_untouched(
    recon: Recon, manifests: Path, other_tool: OtherTool
) -> None:
    with other_tool(recon.host_xml) as conn:
        conn.defineXML(FOREIGN_WEB).create()
    before = recon.host_xml.read_bytes()
    result = recon("apply", "-f", manifests)
    assert result.returncode == 1, output(result)
    assert "VirtualMachine/web-1: exists on the host but was not created by recon" in (
        result.stderr
    )
    assert "--adopt" in result.stderr
    assert recon.host_xml.read_bytes() == before
    foreign = recon.objects()["VirtualMachine/web-1"]
    assert (foreign["managed"], foreign["fields"]["memory"]) == (False, "256Mi")


def test_adopt_takes_a_foreign_domain_over_and_keeps_its_uuid(
    recon: Recon, manifests: Path, other_tool: OtherTool
) -> None:
    with other_tool(recon.host_xml) as conn:
        conn.defineXML(FOREIGN_WEB).create()
    result = recon("apply", "--adopt", "-f", manifests)
    assert result.returncode == 0, output(result)
    web_1 = recon.objects()["VirtualMachine/web-1"]
    assert web_1["managed"] is True
    assert web_1["uuid"] == "0e0e0e0e-1111-4222-8333-444444444444"
    assert (web_1["fields"]["memory"], web_1["fields"]["cpus"]) == ("1Gi", 2)
    assert recon("diff", "-f", manifests).returncode == 0


# --- secrets -----------------------------------------------------------------------------------


def test_the_password_value_never_appears_in_output_plans_or_the_host(
    recon: Recon, manifests: Path, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.json"
    runs = [
        recon("diff", "-f", manifests, "--out", plan),
        recon("diff", "-f", manifests, "-o", "json"),
        recon("apply", "-f", manifests),
        recon("apply", "-f", manifests, "-o", "json"),
        recon("get", "-o", "yaml"),
        recon("get", "-o", "json"),
        recon("get", "-o", "wide"),
    ]
    assert "password of admin set" in runs[2].stderr  # the secret was used
    for result in runs:
        assert SECRET not in output(result), result.args
    assert SECRET not in plan.read_text()
    for path in recon.home.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


# --- the host lock -----------------------------------------------------------------------------


def test_apply_and_delete_refuse_while_another_recon_holds_the_host(
    recon: Recon, manifests: Path
) -> None:
    lock = HostLock(recon.home, recon.uri)
    lock.acquire()
    try:
        for args in (("apply", "-f", manifests), ("delete", "vm", "web-1")):
            result = recon(*args)
            assert result.returncode == 1, output(result)
            assert "another recon" in result.stderr
        # Locked out means not even read: the host was never opened.
        assert not recon.host_xml.exists()
    finally:
        lock.release()
    recon.ok("apply", "-f", manifests)


def test_a_lock_holder_killed_with_sigkill_leaves_no_stale_lock(
    recon: Recon, manifests: Path
) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from reconciler.engine.lock import HostLock\n"
            "HostLock(Path(sys.argv[1]), sys.argv[2]).acquire()\n"
            "print('locked', flush=True)\n"
            "time.sleep(600)\n",
            str(recon.home),
            recon.uri,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        blocked = recon("apply", "-f", manifests)
        assert blocked.returncode == 1
        assert f"another recon (pid {holder.pid})" in blocked.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    recon.ok("apply", "-f", manifests)


# --- drift -------------------------------------------------------------------------------------


def _set_memory(domain_xml: str, mib: int) -> str:
    root = ET.fromstring(domain_xml)
    for tag in ("memory", "currentMemory", "memtune/min_guarantee"):
        elem = root.find(tag)
        assert elem is not None, tag
        elem.text, elem.attrib["unit"] = str(mib), "MiB"
    return ET.tostring(root, encoding="unicode")


def test_drift_made_behind_recons_back_is_shown_and_healed(
    recon: Recon, applied: Path, other_tool: OtherTool
) -> None:
    with other_tool(recon.host_xml) as conn:
        db = conn.lookupByName("db-1")
        db.destroy()
        conn.defineXML(_set_memory(db.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), 1024))
        conn.lookupByName("web-1").setAutostart(0)
    objects = recon.objects()
    assert objects["VirtualMachine/db-1"]["running"] is False

    pending = recon("diff", "-f", applied)
    assert pending.returncode == 1, output(pending)
    assert "state: Stopped -> Running" in pending.stdout
    assert "memory: 1Gi -> 2Gi" in pending.stdout
    assert "autostart: false -> true  (live)" in pending.stdout

    recon.ok("apply", "-f", applied)
    objects = recon.objects()
    db_1 = objects["VirtualMachine/db-1"]
    assert (db_1["running"], db_1["fields"]["memory"]) == (True, "2Gi")
    assert objects["VirtualMachine/web-1"]["fields"]["autostart"] is True
    assert recon("diff", "-f", applied).returncode == 0


def test_a_guest_deleted_behind_recons_back_is_created_again(
    recon: Recon, applied: Path, other_tool: OtherTool
) -> None:
    with other_tool(recon.host_xml) as conn:
        cache = conn.lookupByName("cache-1")
        cache.destroy()
        cache.undefine()
    pending = recon("diff", "-f", applied)
    assert "+ Container/cache-1  create" in pending.stdout
    recon.ok("apply", "-f", applied)
    assert recon.objects()["Container/cache-1"]["running"] is True
    assert recon("diff", "-f", applied).returncode == 0
