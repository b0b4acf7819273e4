"""A real libvirtd (qemu:///system), driven through the real `recon` command.

Every test gets its own RECON_HOME, a work directory for its manifests and its dir pool, and
names that start with a prefix unique to the test run (`it<hex>-...`). Whatever a test
created is removed afterwards through libvirt itself, also when the test failed half way:
domains, networks, pools with their volumes, and the directory.

The suite runs when RECON_INTEGRATION_URI names a host (scripts/test sets it when it could
start libvirtd) and skips with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libvirt
import pytest
import yaml

from tests.conftest import Recon, inventory, output

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

RUN_ID = secrets.token_hex(3)
API = "reconciler/v1"
MiB = 1024 * 1024


# How each real-OS VM of the run booted ("qemu: guest agent after 48 s"), said at the end.
BOOTED: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if BOOTED:
        terminalreporter.write_sep("-", "real-OS VMs booted with")
        for line in BOOTED:
            terminalreporter.write_line(line)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@dataclass
class Host:
    """The libvirtd under test, as the tests see it (not through recon)."""

    uri: str
    _conn: Any
    # What recon must pick: kvm exactly when libvirt's domain capabilities offer it.
    virttype: str

    @property
    def conn(self) -> Any:
        """A live connection: after a test restarted libvirtd, a new one."""
        try:
            # isAlive() stays true until the client notices; a call does notice.
            self._conn.getLibVersion()
            alive = True
        except libvirt.libvirtError:
            alive = False
        if not alive:
            with contextlib.suppress(libvirt.libvirtError):
                self._conn.close()
            self._conn = libvirt.open(self.uri)
        return self._conn

    def domain(self, name: str) -> Any:
        return self.conn.lookupByName(name)

    def live_xml(self, name: str) -> str:
        return str(self.domain(name).XMLDesc(0))


def _virttype(conn: Any) -> str:
    try:
        text = conn.getDomainCapabilities(None, None, None, "kvm", 0)
    except libvirt.libvirtError:
        return "qemu"
    return "kvm" if "<domain>kvm</domain>" in text else "qemu"


@pytest.fixture(scope="session")
def host() -> Iterator[Host]:
    reason = os.environ.get("RECON_INTEGRATION_SKIP")
    if reason:
        pytest.skip(f"no libvirtd for the integration tests: {reason}")
    uri = os.environ.get("RECON_INTEGRATION_URI")
    if not uri:
        pytest.skip(
            "RECON_INTEGRATION_URI is not set: run ./scripts/test as root, which starts "
            "libvirtd (scripts/libvirtd) and sets it"
        )
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        pytest.skip(f"cannot connect to {uri}: {exc.get_error_message()}")
    found = Host(uri, conn, _virttype(conn))
    yield found
    with contextlib.suppress(libvirt.libvirtError):
        found.conn.close()


class HostRecon(Recon):
    """`recon --connect URI ...` with the test's own RECON_HOME."""

    def __init__(self, home: Path, cwd: Path, connect: str) -> None:
        super().__init__(home, cwd)
        self.connect = connect

    def __call__(self, *args: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return super().__call__("--connect", self.connect, *args, **kwargs)


@dataclass
class Scene:
    """One test's corner of the host: its names, its directory, its manifests."""

    host: Host
    prefix: str
    work: Path
    recon: HostRecon
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)

    def name(self, what: str) -> str:
        return f"{self.prefix}-{what}"

    @property
    def pool_dir(self) -> Path:
        return self.work / "pool"

    @property
    def manifest_dir(self) -> Path:
        return self.work / "manifests"

    def put(self, kind: str, what: str, spec: dict[str, Any]) -> str:
        """Add or replace a manifest (one file per resource); returns the resource's name."""
        name = self.name(what)
        self.documents[f"{kind}/{name}"] = {
            "apiVersion": API,
            "kind": kind,
            "metadata": {"name": name},
            "spec": spec,
        }
        self.write()
        return name

    def spec(self, kind: str, name: str) -> dict[str, Any]:
        spec: dict[str, Any] = self.documents[f"{kind}/{name}"]["spec"]
        return spec

    def write(self) -> None:
        if self.manifest_dir.exists():
            shutil.rmtree(self.manifest_dir)
        self.manifest_dir.mkdir()
        for key, doc in self.documents.items():
            path = self.manifest_dir / (key.replace("/", "-") + ".yaml")
            path.write_text(yaml.safe_dump(doc, sort_keys=False))

    def pool(self) -> str:
        return self.put("StoragePool", "pool", {"path": str(self.pool_dir)})

    def template(self, size: str = "64M") -> tuple[str, Path]:
        """A qcow2 base image made with qemu-img, and the Template manifest for it."""
        image = self.work / "base.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), size], check=True)
        digest = hashlib.sha256(image.read_bytes()).hexdigest()
        name = self.put(
            "Template",
            "base",
            {
                "osName": "debian",
                "version": "12",
                "format": "qcow2",
                "pool": self.name("pool"),
                "source": {"file": {"path": str(image), "sha256": digest}},
            },
        )
        return name, image

    def vm(self, what: str = "vm", **spec: Any) -> str:
        """A small VM: no OS, so it idles in its firmware (and ignores ACPI shutdown)."""
        base: dict[str, Any] = {"cpus": 1, "memory": "128Mi", "bootOrder": ["disk"]}
        base.update(spec)
        return self.put("VirtualMachine", what, base)

    @property
    def files(self) -> tuple[str, ...]:
        """`-f DIR --set PREFIX`: a set of this test's own, so that a --prune on a host other
        tests (or people) use at the same time can only ever touch this test's objects."""
        return ("-f", str(self.manifest_dir), "--set", self.prefix)

    def apply(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return self.recon.ok("apply", *self.files, *args)

    def diff(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return self.recon("diff", *self.files, *args)

    def converged(self, *args: str | Path) -> None:
        """A diff after the apply plans nothing: what was asked is what the host reports."""
        result = self.diff(*args)
        assert result.returncode == 0, f"diff after apply:\n{output(result)}"

    def get(self) -> dict[str, dict[str, Any]]:
        data = inventory(json.loads(self.recon.ok("get", "-o", "json").stdout))
        return {f"{o['kind']}/{o['name']}": o for o in data}


def free_subnet() -> str:
    """The first three octets of a /24 in 10.200-249.x.0 that no route on this host overlaps
    (libvirt refuses a network whose subnet an interface already uses)."""
    routes = []
    try:
        for line in Path("/proc/net/route").read_text().splitlines()[1:]:
            cols = line.split()
            dest, mask = (socket.ntohl(int(c, 16)) for c in (cols[1], cols[7]))
            if mask:
                routes.append(ipaddress.IPv4Network((dest, bin(mask).count("1"))))
    except (OSError, ValueError, IndexError):
        pass
    rng = random.Random()
    while True:
        candidate = ipaddress.IPv4Network(f"10.{rng.randrange(200, 250)}.{rng.randrange(256)}.0/24")
        if not any(candidate.overlaps(route) for route in routes):
            return str(candidate.network_address).rsplit(".", 1)[0]


def remove_everything(conn: Any, prefix: str) -> list[str]:
    """Remove what carries the prefix, through libvirt. Returns what could not be removed."""
    left: list[str] = []
    for dom in conn.listAllDomains(0):
        if not dom.name().startswith(prefix):
            continue
        try:
            if dom.isActive():
                dom.destroy()
            if "qemu" in conn.getURI():
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            else:
                dom.undefine()  # LXC takes no flags
        except libvirt.libvirtError as exc:
            left.append(f"domain {dom.name()}: {exc.get_error_message()}")
    for net in conn.listAllNetworks(0):
        if not net.name().startswith(prefix):
            continue
        try:
            if net.isActive():
                net.destroy()
            net.undefine()
        except libvirt.libvirtError as exc:
            left.append(f"network {net.name()}: {exc.get_error_message()}")
    for pool in conn.listAllStoragePools(0):
        if not pool.name().startswith(prefix):
            continue
        try:
            if pool.isActive():
                for vol in pool.listAllVolumes(0):
                    vol.delete(0)
                pool.destroy()
            pool.undefine()
        except libvirt.libvirtError as exc:
            left.append(f"pool {pool.name()}: {exc.get_error_message()}")
    return left


@pytest.fixture
def scene(host: Host, request: pytest.FixtureRequest) -> Iterator[Scene]:
    # QEMU runs as libvirt-qemu and must reach the disk files: pytest's own tmp dirs are 0700.
    work = Path(tempfile.mkdtemp(prefix="recon-it-", dir="/var/tmp"))
    work.chmod(0o755)
    # Short: names end up in interface, cgroup and file names.
    prefix = f"it{RUN_ID}{secrets.token_hex(2)}"
    recon = HostRecon(work / "home", work, host.uri)
    made = Scene(host, prefix, work, recon)
    try:
        yield made
    finally:
        left = remove_everything(host.conn, prefix)
        shutil.rmtree(work, ignore_errors=True)
        assert not left, f"cleanup of {request.node.name} left: {left}"


def lxc_uri(uri: str) -> str:
    return uri.replace("qemu", "lxc", 1)


@pytest.fixture
def lxc(host: Host, scene: Scene) -> Iterator[Any]:
    """A connection to the LXC driver of the same daemon; the scene's recon talks to it too.
    Its containers are removed afterwards (pools and networks are the daemon's, and the
    scene removes those)."""
    if os.geteuid() != 0:
        pytest.skip("containers need root")
    uri = lxc_uri(host.uri)
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        pytest.skip(f"no LXC driver at {uri}: {exc.get_error_message()}")
    scene.recon = HostRecon(scene.recon.home, scene.work, uri)
    try:
        yield conn
    finally:
        left = remove_everything(conn, scene.prefix)
        conn.close()
        assert not left, left
