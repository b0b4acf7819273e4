"""Shared fixtures: the real `recon` command against a per-test embedded host, editable copies of
the example manifests, and a second tool that changes the embedded host behind recon's back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import libvirt
import pytest

from reconciler.providers.libvirt.embedded import EmbeddedHost

ROOT = Path(__file__).resolve().parents[1]
# The console script of the venv running the tests: main.py has no `__main__` block.
RECON = str(Path(sys.executable).parent / "recon")
# The value behind `valueFrom: {env: WEB_ADMIN_PASSWORD}` in manifests/vms/web-1.yaml. Unique
# enough that finding it anywhere in an output or a file can only mean a leak.
SECRET = "zq7-unique-secret-value-4c1e9b"
# Built templates and downloaded packages, shared by every test of a run and kept between runs
# (builds are content-addressed: a test never gets another spec's build).
# RECON_TEST_CACHE puts them elsewhere (several checkouts of the repository can share one).
CACHE = Path(os.environ.get("RECON_TEST_CACHE") or ROOT / ".cache")
BUILD_ENV = {
    "RECON_TEMPLATE_CACHE": str(CACHE / "templates"),
    "RECON_APT_CACHE": str(CACHE / "apt"),
}
# Also for the providers tests open in this process.
os.environ.update(BUILD_ENV)


def build_unavailable() -> str | None:
    """Why this machine cannot build templates, or None."""
    missing = [t for t in ("mmdebstrap", "genext2fs", "qemu-img") if shutil.which(t) is None]
    if missing:
        return f"building templates needs {', '.join(missing)} (scripts/bootstrap installs them)"
    if os.geteuid() != 0:
        return "building templates needs root (mmdebstrap --mode=root)"
    return None


class Recon:
    """Runs `recon` in a subprocess with its own RECON_HOME, as a user would."""

    def __init__(self, home: Path, cwd: Path) -> None:
        self.home = home
        self.cwd = cwd

    @property
    def host_xml(self) -> Path:
        return self.home / "host.xml"

    @property
    def uri(self) -> str:
        return "test://" + str(self.host_xml.resolve())

    def __call__(
        self,
        *args: str | Path,
        env: Mapping[str, str] | None = None,
        home: Path | None = None,
        stdin: str | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        # Nothing from the caller's environment may switch on failpoints or another host.
        full = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
        full.update(RECON_HOME=str(home or self.home), WEB_ADMIN_PASSWORD=SECRET, NO_COLOR="1")
        full.update(BUILD_ENV)
        full.update(env or {})
        return subprocess.run(
            [RECON, *map(str, args)],
            input=stdin,
            capture_output=True,
            text=True,
            env=full,
            cwd=self.cwd,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run and insist on exit 0, showing the output when it is not."""
        result = self(*args, **kwargs)
        assert result.returncode == 0, f"recon {args} exited {result.returncode}:\n{output(result)}"
        return result

    def get(self, *args: str) -> list[dict[str, Any]]:
        """`recon get -o json` (a List of objects), each as kind, name and its status."""
        return inventory(json.loads(self.ok("get", *args, "-o", "json").stdout))

    def objects(self) -> dict[str, dict[str, Any]]:
        return {f"{o['kind']}/{o['name']}": o for o in self.get()}


def inventory(listed: dict[str, Any]) -> list[dict[str, Any]]:
    """The items of `recon get -o json` as tests read them: kind, name, uuid, managed,
    running, the observed fields, the guaranteed bytes and the stamp."""
    out = []
    for item in listed["items"]:
        status = item["status"]
        out.append(
            {
                "kind": item["kind"],
                "name": item["metadata"]["name"],
                "uuid": status["uuid"],
                "managed": status["managed"],
                "running": status["running"],
                "fields": status["observed"],
                "guaranteedBytes": status.get("guarantee", {}).get("bytes", 0),
                "stamp": status.get("stamp"),
            }
        )
    return out


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


@pytest.fixture
def recon(tmp_path: Path) -> Recon:
    return Recon(tmp_path / "home", tmp_path)


@pytest.fixture(scope="session")
def example_templates(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The example Templates, built for real once per run (and found in .cache/ by the next):
    every apply of the examples uploads these builds."""
    reason = build_unavailable()
    if reason is not None:
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("build-home")
    result = Recon(home, ROOT)("template", "build", "-f", ROOT / "manifests", timeout=1800)
    assert result.returncode == 0, output(result)


@pytest.fixture
def manifests(tmp_path: Path, example_templates: None) -> Path:
    """A copy of manifests/ (with its customize scripts) that a test may edit; the example
    templates are built."""
    dest = tmp_path / "manifests"
    shutil.copytree(ROOT / "manifests", dest)
    return dest


@pytest.fixture
def applied(recon: Recon, manifests: Path) -> Path:
    """The examples applied to a fresh embedded host; the editable manifests."""
    recon.ok("apply", "-f", manifests)
    return manifests


def leave_only_the_network_and_policy(manifests: Path) -> None:
    """Every guest, template and pool removed from a copy of manifests/ (a prune of it keeps
    the guests' disks unless --delete-volumes)."""
    for path in [*(manifests / "vms").iterdir(), *(manifests / "containers").iterdir()]:
        path.unlink()
    (manifests / "templates.yaml").unlink()
    (manifests / "storage.yaml").unlink()


def edit(path: Path, old: str, new: str) -> None:
    """Replace text in a manifest; an edit that finds nothing to replace is a broken test."""
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not in {path} exactly once"
    path.write_text(text.replace(old, new))


@contextmanager
def _behind_recons_back(host_xml: Path) -> Iterator[libvirt.virConnect]:
    """An operator's second tool: loads the persisted embedded host (autostart flags and all),
    lets the test change it through libvirt, and writes it back as recon would."""
    host = EmbeddedHost(host_xml)
    conn = host.open()
    try:
        yield conn
        host.save(conn)
    finally:
        conn.close()


OtherTool = Callable[[Path], AbstractContextManager[libvirt.virConnect]]


@pytest.fixture
def other_tool() -> OtherTool:
    return _behind_recons_back
