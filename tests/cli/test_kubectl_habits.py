"""kubectl habits (issue #15): words in tables, --dry-run's exit code, the prompt on a
terminal, objects from `get -o yaml|json` that apply back unchanged, label selectors."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import yaml

from tests.conftest import BUILD_ENV, RECON, SECRET, Recon, edit, output


def columns(table: str) -> dict[str, dict[str, str]]:
    """A kubectl-style table by NAME, each row by column heading (cells may hold spaces)."""
    head, *lines = [line for line in table.splitlines() if line.strip()]
    names = head.split()
    starts = [head.index(f" {n} ") + 1 if i else 0 for i, n in enumerate(names[:-1])]
    starts.append(head.index(" " + names[-1]) + 1)
    rows = {}
    for line in lines:
        if not line.startswith(names[0]) and line[0].isupper() and starts[1] < len(line):
            cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
            rows[cells[1]] = dict(zip(names, cells, strict=True))
    return rows


def test_get_wide_prints_yes_and_no_not_python_booleans(recon: Recon, applied: Path) -> None:
    wide = recon.ok("get", "-o", "wide").stdout
    assert "True" not in wide and "False" not in wide
    rows = columns(wide.split("\n\n")[0])
    # db-1 is the one guest the examples do not autostart.
    assert rows["db-1"]["AUTOSTART"] == "no"
    assert rows["web-1"]["AUTOSTART"] == "yes"
    assert rows["default"]["AUTOSTART"] == "yes"
    assert rows["debian-12-base"]["AUTOSTART"] == "-"
    assert rows["web-1"]["MANAGED"] == "yes"


# --- apply --dry-run and the question on a terminal --------------------------------------------


def test_apply_dry_run_exits_as_diff_does(recon: Recon, applied: Path) -> None:
    assert recon("apply", "-f", applied, "--dry-run").returncode == 0
    edit(applied / "vms" / "web-1.yaml", "cpus: 2", "cpus: 3")
    dry = recon("apply", "-f", applied, "--dry-run")
    assert dry.returncode == 1, output(dry)
    assert "cpus: 2 -> 3" in dry.stderr
    assert recon("diff", "-f", applied).returncode == 1  # nothing was applied
    assert "--dry-run" in recon.ok("apply", "--help").stdout
    assert "1 when changes are pending" in " ".join(recon.ok("apply", "--help").stdout.split())


def on_terminal(recon: Recon, *args: str | Path, answer: str) -> tuple[int, str, str]:
    """recon with standard input and standard error on a pseudo-terminal, as a person runs it;
    `answer` is typed. Returns the exit code, what the terminal showed, and stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
    env.update(RECON_HOME=str(recon.home), WEB_ADMIN_PASSWORD=SECRET, NO_COLOR="1")
    env.update(BUILD_ENV)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [RECON, *map(str, args)],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
        cwd=recon.cwd,
    )
    os.close(slave)
    os.write(master, answer.encode())
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    assert proc.stdout is not None
    stdout = proc.stdout.read().decode()
    code = proc.wait(timeout=120)
    os.close(master)
    return code, seen.decode(errors="replace"), stdout


def test_apply_on_a_terminal_asks_before_a_restart(recon: Recon, applied: Path) -> None:
    edit(applied / "vms" / "web-1.yaml", "firmware: bios", "firmware: efi")
    code, seen, _ = on_terminal(recon, "apply", "-f", applied, answer="n\n")
    assert "VirtualMachine/web-1 (restart)" in seen and "Go on?" in seen
    assert code == 1
    assert "nothing was applied" in seen
    assert recon("diff", "-f", applied).returncode == 1
    code, seen, _ = on_terminal(recon, "apply", "-f", applied, answer="y\n")
    assert code == 0, seen
    assert recon("diff", "-f", applied).returncode == 0


def test_apply_yes_or_no_terminal_never_asks(recon: Recon, applied: Path) -> None:
    edit(applied / "vms" / "web-1.yaml", "firmware: bios", "firmware: efi")
    code, seen, _ = on_terminal(recon, "apply", "-f", applied, "--yes", answer="")
    assert code == 0, seen
    assert "Go on?" not in seen
    edit(applied / "vms" / "web-1.yaml", "firmware: efi", "firmware: bios")
    result = recon("apply", "-f", applied)  # no terminal: CI
    assert result.returncode == 0, output(result)
    assert "Go on?" not in output(result)
    assert recon("diff", "-f", applied).returncode == 0


# --- get -o yaml|json: objects that apply back unchanged ----------------------------------------

KINDS = ("StoragePool", "Network", "Template", "VirtualMachine", "Container", "HostPolicy")


def test_get_yaml_of_every_kind_applies_back_as_a_no_op(recon: Recon, applied: Path) -> None:
    lists = [yaml.safe_load(recon.ok("get", kind, "-o", "yaml").stdout) for kind in KINDS]
    for kind, listed in zip(KINDS, lists, strict=True):
        assert (listed["apiVersion"], listed["kind"]) == ("v1", "List")
        assert listed["items"] and {i["kind"] for i in listed["items"]} == {kind}
        for item in listed["items"]:
            assert list(item) == ["apiVersion", "kind", "metadata", "spec", "status"]
            assert item["apiVersion"] == "reconciler/v1"
    stream = "---\n".join(recon.ok("get", kind, "-o", "yaml").stdout for kind in KINDS)
    assert SECRET not in stream
    assert recon("validate", "-f", "-", stdin=stream).returncode == 0
    again = recon("apply", "-f", "-", stdin=stream)
    assert again.returncode == 0, output(again)
    assert "No changes" in again.stderr
    assert recon("diff", "-f", "-", stdin=stream).returncode == 0
    assert recon("diff", "-f", applied).returncode == 0


def test_get_kind_name_prints_the_object_with_its_status(recon: Recon, applied: Path) -> None:
    web = json.loads(recon.ok("get", "vm", "web-1", "-o", "json").stdout)
    assert web["kind"] == "VirtualMachine"
    assert web["metadata"]["name"] == "web-1"
    assert web["metadata"]["labels"] == {"role": "web"}
    assert web["metadata"]["uid"] == web["status"]["uuid"]
    assert web["spec"]["disks"] == [
        {
            "name": "root",
            "pool": "default",
            "size": "10Gi",
            "format": "qcow2",
            "template": "debian-12-base",
        }
    ]
    assert web["spec"]["guest"]["users"][0]["password"] == {
        "valueFrom": {"env": "WEB_ADMIN_PASSWORD"}
    }
    status = web["status"]
    assert status["state"] == "Running" and status["managed"] is True
    assert status["guarantee"] == {"bytes": 512 * 2**20, "heldBy": "min_guarantee", "held": True}
    assert status["stamp"]["file"].endswith("web-1.yaml")
    one = yaml.safe_load(recon.ok("get", "vm", "web-1", "-o", "yaml").stdout)
    assert one == web
    policy = yaml.safe_load(recon.ok("get", "hostpolicy", "host", "-o", "yaml").stdout)
    assert policy["kind"] == "HostPolicy" and "memoryReserve" in policy["status"]["note"]


def test_a_label_change_is_recorded_and_reported(recon: Recon, applied: Path) -> None:
    edit(applied / "vms" / "web-1.yaml", "role: web", "role: frontend")
    diff = recon("diff", "-f", applied)
    assert diff.returncode == 1
    assert "labels or annotations" in diff.stdout
    recon.ok("apply", "-f", applied)
    assert recon("diff", "-f", applied).returncode == 0
    web = json.loads(recon.ok("get", "vm", "web-1", "-o", "json").stdout)
    assert web["metadata"]["labels"] == {"role": "frontend"}


# --- one file at a time: references resolved on the host ---------------------------------------


def test_one_file_applies_against_what_recon_owns_on_the_host(
    recon: Recon, manifests: Path
) -> None:
    web = manifests / "vms" / "web-1.yaml"
    alone = recon("apply", "-f", web)  # nothing on the host yet: the references dangle
    assert alone.returncode == 2
    assert "StoragePool/default, which no manifest defines and recon does not own" in alone.stderr
    for name in ("storage.yaml", "network.yaml", "templates.yaml"):
        recon.ok("apply", "-f", manifests / name)
    result = recon("apply", "-f", web)
    assert result.returncode == 0, output(result)
    assert "using from the host: Network/lan, StoragePool/default, Template/debian-12-base" in (
        result.stderr
    )
    assert recon("diff", "-f", web).returncode == 0
    assert "VirtualMachine/web-1" in recon.objects()


def test_prune_stays_scoped_to_the_files_given(recon: Recon, applied: Path) -> None:
    web = applied / "vms" / "web-1.yaml"
    refused = recon("apply", "-f", web, "--prune")
    assert refused.returncode == 2
    assert "which --prune would delete" in refused.stderr
    assert set(recon.objects()) >= {"StoragePool/default", "VirtualMachine/db-1"}
    # In a set of its own, the guest uses the default set's pool, network and template, and
    # its --prune touches only that set.
    recon.ok("delete", "vm", "web-1")
    result = recon("apply", "-f", web, "--set", "web", "--prune")
    assert result.returncode == 0, output(result)
    assert {"StoragePool/default", "VirtualMachine/db-1", "VirtualMachine/web-1"} <= set(
        recon.objects()
    )


def test_validate_stays_offline_and_allow_host_refs_makes_notes(
    recon: Recon, manifests: Path
) -> None:
    web = manifests / "vms" / "web-1.yaml"
    strict = recon("validate", "-f", web)
    assert strict.returncode == 1 and "which no manifest defines" in strict.stderr
    loose = recon("validate", "-f", web, "--allow-host-refs")
    assert loose.returncode == 0, output(loose)
    assert loose.stderr.count("note: ") == 3
    assert "apply looks for it on the host" in loose.stderr
    data = json.loads(recon("validate", "-f", web, "--allow-host-refs", "-o", "json").stdout)
    assert data["valid"] is True and len(data["notes"]) == 3
    other = recon("validate", "-f", web, "--allow-host-refs", stdin=None)
    assert other.returncode == 0
    bad = web.read_text().replace("cpus: 2", "cpus: 0")
    assert recon("validate", "-f", "-", "--allow-host-refs", stdin=bad).returncode == 1


# --- progress during apply ---------------------------------------------------------------------


def test_apply_shows_a_progress_bar_on_a_terminal_and_nothing_on_stdout(
    recon: Recon, manifests: Path
) -> None:
    code, seen, stdout = on_terminal(recon, "apply", "-f", manifests, "--yes", answer="")
    assert code == 0, seen
    assert "\r\x1b[K[" in seen  # one line, redrawn in place
    assert "] 1/7 + StoragePool/default: create..." in seen
    assert "] 7/7 + Container/cache-1: create..." in seen
    assert "#" * 10 in seen  # the bar fills
    assert stdout.strip().splitlines() == [stdout.strip()]  # only the result
    assert stdout.startswith("Apply complete: 7 created")


def test_apply_without_a_terminal_prints_plain_progress_lines(
    recon: Recon, manifests: Path
) -> None:
    result = recon("apply", "-f", manifests)
    assert result.returncode == 0, output(result)
    assert "\r" not in result.stderr and "\x1b" not in result.stderr
    lines = result.stderr.splitlines()
    assert "+ StoragePool/default: create..." in lines
    assert "+ VirtualMachine/web-1: create..." in lines
    assert "create..." not in result.stdout
