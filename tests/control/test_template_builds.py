"""A template build seen as an operator sees it: `recon template build` killed with -9 half way,
then `recon watch` on the same manifests, which shows the Template as Building with the build's
stage while it builds, cleans up what the killed build left (its orphaned mmdebstrap included)
and ends Ready. Needs root and the builders (skipped otherwise)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import BUILD_ENV, RECON, SECRET, Recon, build_unavailable
from tests.control.conftest import StartLoop, wait_until

MANIFESTS = """\
apiVersion: reconciler/v1
kind: StoragePool
metadata: {{name: default}}
spec: {{path: {pool}}}
---
apiVersion: reconciler/v1
kind: Template
metadata: {{name: killed}}
spec:
  osName: debian
  version: "12"
  format: tar
  pool: default
  # A package no other test's template has: this spec is never in a shared cache.
  packages: [procps, less]
  source:
    build: {{}}
"""


@pytest.fixture(autouse=True)
def _can_build() -> None:
    reason = build_unavailable()
    if reason:
        pytest.skip(reason)


def processes_in(work: Path) -> list[int]:
    """Processes whose working directory, root or command line is inside `work`."""
    inside = str(work)
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            places = [os.readlink(proc / "cwd"), os.readlink(proc / "root")]
            places += (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(p.startswith(inside) for p in places):
            found.append(int(proc.name))
    return found


def test_a_killed_build_is_cleaned_up_and_the_loop_shows_the_next_one_building(
    tmp_path: Path, recon: Recon, start_loop: StartLoop
) -> None:
    d = tmp_path / "m"
    d.mkdir()
    (d / "all.yaml").write_text(MANIFESTS.format(pool=tmp_path / "pool"))
    cache = tmp_path / "cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
    env.update(BUILD_ENV, RECON_HOME=str(recon.home), RECON_TEMPLATE_CACHE=str(cache))
    env.update(WEB_ADMIN_PASSWORD=SECRET, NO_COLOR="1")
    build = subprocess.Popen(
        [RECON, "template", "build", "-f", str(d)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert build.stderr is not None
        # Half way: mmdebstrap has started unpacking or installing packages.
        for line in build.stderr:
            if line.startswith("Template/killed: ") and any(
                word in line for word in ("extracting", "installing", "unpacking")
            ):
                break
        else:
            raise AssertionError(f"the build ended before it was half way: {build.wait()}")
        work = next(cache.glob(".build-*"))
        assert processes_in(work), "nothing of the build runs in its work directory"
    finally:
        build.send_signal(signal.SIGKILL)
        build.wait()
    # recon is gone, but the step it ran (its own process group) goes on without it.
    time.sleep(0.5)
    orphans = processes_in(work)
    assert orphans, "the killed build left nothing running: this test shows nothing"

    loop = start_loop("watch", "-f", d, env={"RECON_TEMPLATE_CACHE": str(cache)})
    status = loop.wait_status(
        lambda s: s["resources"].get("Template/killed", {}).get("condition") == "Building",
        timeout=120,
    )
    stage = status["resources"]["Template/killed"]["reason"]
    assert stage, "Building without the build's stage"
    # The new build has begun, so what the killed one left is gone: its processes first.
    wait_until(lambda: not any(p in processes_in(work) for p in orphans), timeout=30)
    assert not work.exists()

    loop.wait_status(
        lambda s: s["resources"].get("Template/killed", {}).get("condition") == "Ready",
        timeout=900,
    )
    assert loop.stop() == 0
    left = sorted(p.name for p in cache.iterdir())
    assert len(left) == 1 and not left[0].startswith("."), left
    # vzpkg list: the template is on the host, with the build's digest.
    listed = recon.ok("template", "list", "-o", "json", env={"RECON_TEMPLATE_CACHE": str(cache)})
    (row,) = [t for t in json.loads(listed.stdout)["templates"] if t["name"] == "killed"]
    assert row["where"] == "host (default)"
    assert row["digest"].startswith("sha256:") and row["builtAt"]
