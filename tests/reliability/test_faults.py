"""Crashes and errors in the middle of an apply: the next run finishes the job.

RECON_KILL_AT=k makes the k-th failpoint end the process at once (os._exit(137), no cleanup, as
a SIGKILL would); RECON_FAIL_AT=k makes it raise a host error instead. Real libvirt refusals
come from objects another tool put on the host.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import OtherTool, Recon, edit, output

KILLED = 137


def failpoints(recon: Recon, tmp_path: Path, *args: str | Path) -> list[str]:
    """The failpoints a clean `recon apply ARGS` crosses, on a scratch copy of the host."""
    scratch = tmp_path / "count"
    if recon.host_xml.exists():
        scratch.mkdir()
        (scratch / "host.xml").write_bytes(recon.host_xml.read_bytes())
    log = tmp_path / "failpoints.log"
    recon.ok("apply", *args, home=scratch, env={"RECON_FAILPOINT_LOG": str(log)})
    names = [line.split(" ", 1)[1] for line in log.read_text().splitlines()]
    log.unlink()
    return names


def converges(recon: Recon, home: Path, *args: str | Path) -> list[str]:
    """Problems found when rerunning ARGS without faults and then diffing: none is good."""
    problems = []
    rerun = recon("apply", *args, home=home)
    if rerun.returncode != 0:
        problems.append(f"rerun exited {rerun.returncode}:\n{output(rerun)}")
    diff_args = [a for a in args if a != "--allow-replace"]
    check = recon("diff", *diff_args, home=home)
    if check.returncode != 0:
        problems.append(f"diff after the rerun exited {check.returncode}:\n{check.stdout}")
    return problems


# --- killed ------------------------------------------------------------------------------------


def test_an_apply_killed_at_any_step_is_finished_by_the_next_run(
    recon: Recon, manifests: Path, tmp_path: Path
) -> None:
    steps = failpoints(recon, tmp_path, "-f", manifests)
    assert len(steps) == 14, steps
    failures: dict[str, list[str]] = {}
    for k, step in enumerate(steps, start=1):
        home = tmp_path / f"kill-{k}"
        killed = recon("apply", "-f", manifests, home=home, env={"RECON_KILL_AT": str(k)})
        problems = [] if killed.returncode == KILLED else [f"exited {killed.returncode}"]
        problems += converges(recon, home, "-f", manifests)
        if problems:
            failures[f"{k}: {step}"] = problems
    assert failures == {}


def test_an_update_killed_at_any_step_is_finished_by_the_next_run(
    recon: Recon, applied: Path, tmp_path: Path
) -> None:
    # One plan with every kind of step: live, restart, replace, create and prune.
    web = applied / "vms" / "web-1.yaml"
    edit(web, "  cpus: 2\n", "  cpus: 3\n")
    edit(web, "firmware: bios", "firmware: efi")
    edit(
        applied / "vms" / "db-1.yaml",
        "      size: 50Gi\n",
        "      size: 50Gi\n      template: debian-12-base\n",
    )
    (applied / "containers" / "cache-1.yaml").unlink()
    (applied / "vms" / "app-1.yaml").write_text(
        (applied / "vms" / "db-1.yaml")
        .read_text()
        .replace("name: db-1", "name: app-1")
        .replace('memoryGuarantee: "100%"', 'memoryGuarantee: "0%"')
    )
    args = ("--prune", "--allow-replace", "-f", applied)
    steps = failpoints(recon, tmp_path, *args)
    assert [s.split(" ", 1)[1] for s in steps[::2]] == [
        "create VirtualMachine/app-1",
        "replace VirtualMachine/db-1",
        "update VirtualMachine/web-1",  # live cpus and a firmware restart
        "delete Container/cache-1",
    ], steps
    original = recon.host_xml.read_bytes()
    failures: dict[str, list[str]] = {}
    for k, step in enumerate(steps, start=1):
        home = tmp_path / f"kill-{k}"
        home.mkdir()
        (home / "host.xml").write_bytes(original)
        killed = recon("apply", *args, home=home, env={"RECON_KILL_AT": str(k)})
        problems = [] if killed.returncode == KILLED else [f"exited {killed.returncode}"]
        problems += converges(recon, home, *args)
        if problems:
            failures[f"{k}: {step}"] = problems
    assert failures == {}


# --- injected errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "failed", "applied_before", "not_attempted"),
    [
        (
            1,  # everything but the network is made in the pool: it waits
            "StoragePool/default",
            ["Network/lan"],
            ["Template/debian-12-minimal", "VirtualMachine/db-1", "Container/cache-1"],
        ),
        (
            6,  # after Template/debian-12-base was created: the host acted, then erred
            "Template/debian-12-base",
            ["StoragePool/default", "Network/lan", "Container/cache-1"],
            ["VirtualMachine/db-1", "VirtualMachine/web-1"],
        ),
        (
            13,
            "Container/cache-1",
            ["VirtualMachine/db-1", "VirtualMachine/web-1"],
            [],
        ),
    ],
    ids=["first-step", "after-a-step", "last-step"],
)
def test_an_injected_error_reports_what_was_applied_what_failed_and_what_was_not_attempted(
    recon: Recon,
    manifests: Path,
    k: int,
    failed: str,
    applied_before: list[str],
    not_attempted: list[str],
) -> None:
    result = recon("apply", "-f", manifests, env={"RECON_FAIL_AT": str(k)})
    assert result.returncode == 1, output(result)
    assert "Apply incomplete:" in result.stdout
    assert f"failed: {failed} (create): injected fault at" in result.stdout
    # What does not depend on the failed change is applied, before or after it.
    for ref in applied_before:
        assert f"+ {ref}: defined" in result.stderr or f"+ {ref}: image" in result.stderr, ref
    if not_attempted:
        # What does, waits, naming what it needs.
        lines = [x for x in result.stdout.splitlines() if x.startswith("not attempted:")]
        for ref in not_attempted:
            assert any(ref in line and "(needs " in line for line in lines), (ref, lines)
        assert not any(line.startswith(f"not attempted: {failed} ") for line in lines)
    else:
        assert "not attempted" not in result.stdout
    assert "run apply again" in result.stdout

    recon.ok("apply", "-f", manifests)
    assert recon("diff", "-f", manifests).returncode == 0


# --- real refusals -----------------------------------------------------------------------------


def test_a_template_image_that_does_not_match_its_sha256_fails_naming_the_template(
    recon: Recon, manifests: Path
) -> None:
    # The VM template from an image file (source.file) instead of a build.
    image = manifests / "base.qcow2"
    image.write_bytes(b"QFI\xfb" + bytes(60))
    good = hashlib.sha256(image.read_bytes()).hexdigest()
    templates = manifests / "templates.yaml"
    text = templates.read_text()
    start = text.index("  source:", text.index("name: debian-12-base"))
    end = text.index("---", start)
    file_source = f"  source:\n    file: {{path: base.qcow2, sha256: {'f' * 64}}}\n"
    templates.write_text(text[:start] + file_source + text[end:])
    result = recon("apply", "-f", manifests)
    assert result.returncode == 1, output(result)
    assert "failed: Template/debian-12-base (create):" in result.stdout
    assert "does not match its sha256" in result.stdout
    assert "VirtualMachine/web-1" in result.stdout  # among what was not attempted
    assert "Template/debian-12-base" not in recon.objects()

    edit(templates, "f" * 64, good)
    recon.ok("apply", "-f", manifests)
    assert recon("diff", "-f", manifests).returncode == 0


def test_libvirt_refusing_a_pool_path_in_use_fails_naming_the_pool_until_it_is_fixed(
    recon: Recon, manifests: Path, other_tool: OtherTool
) -> None:
    with other_tool(recon.host_xml) as conn:
        conn.storagePoolDefineXML(
            "<pool type='dir'><name>other</name>"
            "<target><path>/var/lib/recon/pools/default</path></target></pool>"
        ).create()
    result = recon("apply", "-f", manifests)
    assert result.returncode == 1, output(result)
    assert "failed: StoragePool/default (create): StoragePool/default:" in result.stdout
    assert "Storage source conflict with pool: 'other'" in result.stdout
    # The network needs no pool: it is made; the rest is made in the pool and waits.
    assert "+ Network/lan: defined" in result.stderr
    assert "not attempted: Template/debian-12-base (needs StoragePool/default)" in result.stdout

    edit(manifests / "storage.yaml", "pools/default", "pools/recon")
    recon.ok("apply", "-f", manifests)
    assert recon("diff", "-f", manifests).returncode == 0
    objects = recon.objects()
    assert objects["StoragePool/other"]["managed"] is False
    assert objects["StoragePool/default"]["fields"]["path"] == "/var/lib/recon/pools/recon"
