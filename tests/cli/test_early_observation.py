"""`recon diff` opens the host in a thread before it imports its command (providers/ahead.py,
started by cli/main.py), and observes it in a thread while it loads the manifests
(cli/host.EarlyObservation). What a user sees must not change with it: the manifests' errors
come first and alone, a host that cannot be opened still exits 2 with the hint (and libvirt
prints nothing of its own), a fresh home is not created by a diff of broken manifests, and the
plan is the one a sequential read gives."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import Recon, output

ROOT = Path(__file__).resolve().parents[2]

# Runs main() as the console script does and says, as JSON on its last line: which openings
# providers/ahead.py had started when the command's module began to import, which were left
# untaken at the end, and whether libvirt was imported at all.
PROBE = """
import json, sys
from reconciler.cli.main import main

seen = {}

class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "reconciler.cli.plan_cmds" and "at_import" not in seen:
            ahead = sys.modules.get("reconciler.providers.ahead")
            seen["at_import"] = sorted(ahead._openings) if ahead else []
        return None

sys.meta_path.insert(0, Watch())
sys.argv = ["recon", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as exc:
    seen["code"] = exc.code
ahead = sys.modules.get("reconciler.providers.ahead")
seen["left"] = sorted(ahead._openings) if ahead else []
seen["libvirt"] = "libvirt" in sys.modules
sys.stdout.flush()
print("\\nPROBE " + json.dumps(seen))
"""


def probe(recon: Recon, *args: str | Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
    env["RECON_HOME"] = str(recon.home)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps([str(a) for a in args])],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert "\nPROBE " in result.stdout, output(result)
    seen: dict[str, object] = json.loads(result.stdout.rpartition("\nPROBE ")[2])
    return seen


def network_set(tmp_path: Path) -> Path:
    directory = tmp_path / "set"
    directory.mkdir()
    shutil.copy(ROOT / "manifests" / "network.yaml", directory / "network.yaml")
    return directory


def test_a_manifest_error_comes_alone_when_the_host_cannot_be_opened(
    recon: Recon, tmp_path: Path
) -> None:
    directory = network_set(tmp_path)
    broken = directory / "network.yaml"
    broken.write_text(broken.read_text().replace("mode: nat", "mode: natt"))
    run = recon("--connect", f"test://{tmp_path}/no-such-node.xml", "diff", "-f", directory)
    assert run.returncode == 2, output(run)
    assert "network.yaml" in run.stderr and "spec.mode" in run.stderr
    assert "cannot connect" not in run.stderr


def test_a_host_that_cannot_be_opened_exits_2_with_the_hint(recon: Recon, tmp_path: Path) -> None:
    run = recon(
        "--connect", f"test://{tmp_path}/no-such-node.xml", "diff", "-f", network_set(tmp_path)
    )
    assert run.returncode == 2, output(run)
    assert "cannot connect to test://" in run.stderr
    assert "hint: check --connect" in run.stderr
    # The open ran in providers/ahead's thread: libvirt's own printer was silenced there too.
    assert "libvirt:" not in run.stderr


def test_a_diff_of_broken_manifests_creates_no_embedded_host(recon: Recon, tmp_path: Path) -> None:
    directory = network_set(tmp_path)
    (directory / "network.yaml").write_text("kind: Network\nmetadata: {name: x}\n")
    run = recon("diff", "-f", directory)
    assert run.returncode == 2, output(run)
    assert not recon.host_xml.exists()


def test_the_early_read_plans_what_is_on_the_host(recon: Recon, tmp_path: Path) -> None:
    directory = network_set(tmp_path)
    first = recon("diff", "-f", directory)  # a fresh home: opened after the manifests
    assert first.returncode == 1 and "create" in first.stdout.lower(), output(first)
    recon.ok("apply", "-f", directory)
    assert recon.host_xml.exists()
    same = recon("diff", "-f", directory)  # opened early, while the manifests load
    assert same.returncode == 0, output(same)
    edit = directory / "network.yaml"
    edit.write_text(edit.read_text().replace("autostart: true", "autostart: false"))
    changed = recon("diff", "-f", directory)
    assert changed.returncode == 1, output(changed)
    assert "autostart" in changed.stdout + changed.stderr


def test_diff_opens_the_host_before_it_imports_its_command_and_uses_that_connection(
    recon: Recon, tmp_path: Path
) -> None:
    directory = network_set(tmp_path)
    recon.ok("apply", "-f", directory)
    seen = probe(recon, "diff", "-f", directory)
    assert seen["code"] == 0, seen
    assert seen["at_import"] == [recon.uri]  # started before plan_cmds was imported
    assert seen["left"] == []  # and taken by the provider, not opened a second time
    other = probe(recon, "--connect", "test:///default", "diff", "-f", directory)
    assert other["at_import"] == ["test:///default"] and other["left"] == []


def test_no_host_is_opened_for_a_diff_against_an_export_or_for_its_help(
    recon: Recon, tmp_path: Path
) -> None:
    directory = network_set(tmp_path)
    recon.ok("apply", "-f", directory)
    export = tmp_path / "host-state.json"
    recon.ok("observe", "--out", export)
    seen = probe(recon, "diff", "--host-state", export, "-f", directory)
    assert seen["code"] == 0, seen
    assert seen["at_import"] == [] and seen["left"] == []
    helped = probe(recon, "diff", "--help")
    assert helped["at_import"] == [] and helped["libvirt"] is False
