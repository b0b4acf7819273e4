"""recon at scale: validate, no-op diff and first apply on the embedded host, against floors.

    .venv/bin/python bench/run.py --sizes 100,1000 --write

For each size N it generates a manifest set of N resources (one per file: VMs and containers
about 2:1, plus a few pools, networks, templates with real local image files, and a
HostPolicy) and times the real `recon` command in subprocesses, each its own RECON_HOME, as a
median over --repeat runs, next to a floor measured in the same run (bench/floor.py):

    startup   `recon --version`              vs  python -c 'import yaml, libvirt'
    validate  `recon validate -f DIR`        vs  yaml.load_all(CSafeLoader) of every file
    diff      `recon diff -f DIR`, no-op     vs  the YAML floor + open the same host.xml,
              (after an apply)                   list all domains, XMLDesc(0) each
    apply     first `recon apply -f DIR`     vs  raw libvirt in one process: fresh node file,
              (everything created, started)      define+start pools, networks, volumes and
                                                 domains from the XML recon made, save once

and the peak memory (max RSS, from os.wait4) of each child. With --profile-size N (default
1000 when it is among the sizes) it also runs the no-op diff under cProfile. Results are printed
as Markdown; --write puts them into the generated blocks of docs/benchmarks.md, keeping the
hand-written text around them (and the rows of sizes not measured this time).

Nothing here asserts a time: the numbers are for reading.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import os
import platform
import pstats
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
FLOOR = BENCH / "floor.py"
DOCS = REPO / "docs" / "benchmarks.md"
SCHEMAS = REPO / "schemas"

TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"
RECON_NS = "http://recon.dev/xmlns/reconciler/v1"
ET.register_namespace("recon", RECON_NS)
ET.register_namespace("test", TEST_NS)

# diff-first: the first no-op diff after the apply, with no parses of the last observation
# in $RECON_HOME/cache (providers/libvirt/parse_cache.py); diff: the ones after it.
COMMANDS = ("startup", "validate", "diff-first", "diff", "apply")
FLOOR_LABEL = {
    "startup": "python -c 'import yaml, libvirt'",
    "validate": "YAML (CSafeLoader) of every file",
    "diff-first": "YAML + open host + XMLDesc(0) of every domain",
    "diff": "YAML + open host + XMLDesc(0) of every domain",
    "apply": "raw libvirt: define+start all, save once",
}
# Targets from the performance issues: compared against, never asserted.
TARGET_STARTUP_S = 0.15
TARGET_VALIDATE_RATIO = 2.0  # at N=1,000
TARGET_DIFF_RATIO = 1.5  # at N=1,000 and N=10,000
TARGET_RSS_ABOVE_FLOOR_MIB = 100.0  # the diff's, at N=10,000
TARGET_SIZE = 10_000


class BenchError(RuntimeError):
    pass


# --- the manifest set -----------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    pools: int
    networks: int
    qcow2_templates: int
    tar_templates: int
    policies: int
    vms: int
    containers: int

    @property
    def total(self) -> int:
        return (
            self.pools
            + self.networks
            + self.qcow2_templates
            + self.tar_templates
            + self.policies
            + self.vms
            + self.containers
        )


def layout(n: int) -> Layout:
    """N resources: a few pools, networks and templates (and one HostPolicy), the rest guests,
    VMs and containers about 2:1."""
    if n < 5:
        raise BenchError(f"size {n}: at least 5 resources (pool, network, 2 templates, a guest)")
    small, few = Layout(1, 1, 1, 1, 0, 0, 0), Layout(3, 3, 2, 2, 1, 0, 0)
    infra = small if n < 50 else few
    guests = n - infra.total
    vms = round(guests * 2 / 3)
    return Layout(
        infra.pools,
        infra.networks,
        infra.qcow2_templates,
        infra.tar_templates,
        infra.policies,
        vms,
        guests - vms,
    )


@dataclass
class ManifestSet:
    directory: Path
    layout: Layout
    files: int
    guest_memory_bytes: int

    @property
    def host_memory_kib(self) -> int:
        """Enough for every guest's memory (so every guarantee is admitted) plus the reserve."""
        return (self.guest_memory_bytes + 4 * 1024**3) // 1024


def _modeline(kind: str) -> str:
    return f"# yaml-language-server: $schema={SCHEMAS / (kind.lower() + '.json')}\n"


def _qcow2_image(size: int) -> bytes:
    """A tiny but well-formed qcow2 v3 header (virtual size `size`), padded to 64 KiB."""
    header = struct.pack(">4sIQIIQIIQQIIQ", b"QFI\xfb", 3, 0, 0, 16, size, 0, 0, 0, 0, 0, 0, 0)
    return header.ljust(64 * 1024, b"\0")


def _tar_image(name: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        body = f'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="{name}"\n'.encode()
        info = tarfile.TarInfo("etc/os-release")
        info.size = len(body)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def generate(directory: Path, n: int) -> ManifestSet:
    """Write N resources, one per file, into directory/manifests (images in directory/images)."""
    lay = layout(n)
    manifests = directory / "manifests"
    images = directory / "images"
    for sub in ("pools", "networks", "templates", "vms", "containers"):
        (manifests / sub).mkdir(parents=True, exist_ok=True)
    images.mkdir(parents=True, exist_ok=True)
    files = 0

    def write(rel: str, text: str) -> None:
        nonlocal files
        (manifests / rel).write_text(text, encoding="utf-8")
        files += 1

    pools = [f"pool-{k}" for k in range(1, lay.pools + 1)]
    nets = [f"net-{k}" for k in range(1, lay.networks + 1)]
    for name in pools:
        write(
            f"pools/{name}.yaml",
            _modeline("StoragePool")
            + "apiVersion: reconciler/v1\nkind: StoragePool\nmetadata:\n"
            + f"  name: {name}\n  labels:\n    app.kubernetes.io/managed-by: recon\n"
            + f"spec:\n  type: dir\n  path: /var/lib/recon/bench/{name}\n  autostart: true\n",
        )
    for k, name in enumerate(nets, start=1):
        octet = 100 + k
        write(
            f"networks/{name}.yaml",
            _modeline("Network")
            + "apiVersion: reconciler/v1\nkind: Network\nmetadata:\n"
            + f"  name: {name}\nspec:\n  mode: nat\n  bridge: rbench{k}\n  ipv4:\n"
            + f"    address: 10.{octet}.0.1/16\n    dhcp:\n"
            + f"      start: 10.{octet}.200.1\n      end: 10.{octet}.255.254\n"
            + "  autostart: true\n",
        )
    qcow2 = [f"base-{k}" for k in range(1, lay.qcow2_templates + 1)]
    tars = [f"ct-base-{k}" for k in range(1, lay.tar_templates + 1)]
    for k, name in enumerate(qcow2 + tars):
        fmt = "qcow2" if name in qcow2 else "tar"
        data = _qcow2_image(2 * 1024**3) if fmt == "qcow2" else _tar_image(name)
        image = images / f"{name}.{fmt}"
        image.write_bytes(data)
        packages = "[openssh-server, qemu-guest-agent]" if fmt == "qcow2" else "[systemd-sysv]"
        write(
            f"templates/{name}.yaml",
            _modeline("Template")
            + "apiVersion: reconciler/v1\nkind: Template\nmetadata:\n"
            + f'  name: {name}\nspec:\n  osName: debian\n  version: "12"\n  arch: x86_64\n'
            + f"  format: {fmt}\n  pool: {pools[k % len(pools)]}\n  packages: {packages}\n"
            + "  source:\n    file:\n"
            + f"      path: ../../images/{image.name}\n"
            + f"      sha256: {hashlib.sha256(data).hexdigest()}\n",
        )
    if lay.policies:
        write(
            "host-policy.yaml",
            _modeline("HostPolicy")
            + "apiVersion: reconciler/v1\nkind: HostPolicy\nmetadata:\n  name: host\n"
            + "spec:\n  memoryReserve: 1Gi\n  guaranteeOvercommit: Refuse\n",
        )

    memory_total = 0
    roles = ("web", "db", "app")
    for i in range(lay.vms):
        name = f"vm-{i + 1:05d}"
        memory_gi = (1, 2, 1, 4)[i % 4]
        memory_total += memory_gi * 1024**3
        spec = [f"  cpus: {(1, 2, 2, 4)[i % 4]}"]
        if i % 3 == 0:
            spec.append("  maxCpus: 4              # vCPUs can be hot-added up to this")
        spec.append(f"  memory: {memory_gi}Gi")
        if i % 3 == 0:
            spec.append(f"  maxMemory: {memory_gi * 2}Gi")
        if i % 2 == 0:
            spec.append('  memoryGuarantee: "50%"')
        pool = pools[i % len(pools)]
        spec += [
            "  disks:",
            "    - name: root",
            f"      pool: {pool}",
            "      size: 10Gi",
            f"      template: {qcow2[i % len(qcow2)]}",
        ]
        if i % 4 == 1:
            spec += ["    - name: data", f"      pool: {pool}", "      size: 50Gi"]
        spec += ["  interfaces:", f"    - network: {nets[i % len(nets)]}"]
        if i % 5 == 0:
            spec.append(
                f'      mac: "52:54:00:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}"'
            )
        spec.append("  state: Running")
        if i % 2 == 0:
            spec.append("  autostart: true")
        write(
            f"vms/{name}.yaml",
            _modeline("VirtualMachine")
            + "apiVersion: reconciler/v1\nkind: VirtualMachine\nmetadata:\n"
            + f"  name: {name}\n  labels:\n    role: {roles[i % 3]}\nspec:\n"
            + "\n".join(spec)
            + "\n",
        )
    for i in range(lay.containers):
        name = f"ct-{i + 1:05d}"
        memory_mi = (256, 512)[i % 2]
        memory_total += memory_mi * 1024**2
        k = i % len(nets)
        octet = 101 + k
        write(
            f"containers/{name}.yaml",
            _modeline("Container")
            + "apiVersion: reconciler/v1\nkind: Container\nmetadata:\n"
            + f"  name: {name}\n  labels:\n    role: cache\nspec:\n"
            + f"  template: {tars[i % len(tars)]}\n  cpus: 1\n  memory: {memory_mi}Mi\n"
            + '  memoryGuarantee: "25%"\n  swap: 256Mi\n'
            + f"  disk:\n    pool: {pools[i % len(pools)]}\n    size: 5Gi\n"
            + f"  hostname: {name}\n  interfaces:\n    - network: {nets[k]}\n"
            + f"      ipAddresses: [10.{octet}.{1 + i // 250}.{2 + i % 250}/16]\n"
            + f"      gateway: 10.{octet}.0.1\n"
            + "  state: Running\n  autostart: true\n",
        )
    return ManifestSet(manifests, lay, files, memory_total)


# --- running children ----------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    cpu_seconds: float
    max_rss_kib: int
    returncode: int
    stdout: str = field(repr=False)
    stderr: str = field(repr=False)


def run_child(
    argv: Sequence[str], env: dict[str, str], timeout: float, cwd: Path | None = None
) -> Run:
    """Run argv to its end; wall time, CPU time and max RSS of that one child (os.wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd
        )
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    if proc.returncode == -9 and seconds >= timeout:
        stderr += f"\n(bench: killed after the {timeout:.0f} s timeout)"
    return Run(
        seconds,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss,
        proc.returncode,
        stdout,
        stderr,
    )


Cmd = tuple[list[str], dict[str, str]]


@dataclass
class Series:
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    max_rss_kib: list[int] = field(default_factory=list)
    detail: list[dict[str, Any]] = field(default_factory=list)

    def add(self, run: Run, detail: dict[str, Any] | None = None) -> None:
        self.seconds.append(run.seconds)
        self.cpu_seconds.append(run.cpu_seconds)
        self.max_rss_kib.append(run.max_rss_kib)
        if detail is not None:
            self.detail.append(detail)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")

    @property
    def rss_mib(self) -> float:
        return max(self.max_rss_kib) / 1024 if self.max_rss_kib else float("nan")

    def detail_median(self) -> dict[str, float]:
        keys = {k for d in self.detail for k, v in d.items() if isinstance(v, int | float)}
        return {k: statistics.median(float(d[k]) for d in self.detail if k in d) for k in keys}


@dataclass
class Measure:
    command: str
    recon: Series = field(default_factory=Series)
    floor: Series = field(default_factory=Series)
    note: str = ""

    @property
    def ratio(self) -> float:
        if not self.recon.seconds or not self.floor.seconds:
            return float("nan")
        return self.recon.median / self.floor.median


def measure(
    command: str,
    recon_cmd: Callable[[int], Cmd],
    floor_cmd: Callable[[int], Cmd],
    check: Callable[[Run], None],
    *,
    repeat: int,
    budget: float,
    timeout: float,
    log: Callable[[str], None],
) -> Measure:
    """recon and its floor, alternated, `repeat` times; fewer when the budget (seconds) is
    spent after a complete pair, so a slow size still reports what it has."""
    result = Measure(command)
    started = time.perf_counter()
    for i in range(repeat):
        argv, env = recon_cmd(i)
        run = run_child(argv, env, timeout)
        check(run)
        result.recon.add(run)
        log(f"  {command} #{i + 1}: recon {run.seconds:.3f} s, {run.max_rss_kib / 1024:.0f} MiB")
        argv, env = floor_cmd(i)
        frun = run_child(argv, env, timeout)
        if frun.returncode != 0:
            raise BenchError(f"{command} floor failed ({frun.returncode}):\n{frun.stderr[-2000:]}")
        detail = json.loads(frun.stdout.strip().splitlines()[-1]) if frun.stdout.strip() else {}
        result.floor.add(frun, detail)
        log(f"  {command} #{i + 1}: floor {frun.seconds:.3f} s, {frun.max_rss_kib / 1024:.0f} MiB")
        if i + 1 < repeat and time.perf_counter() - started > budget:
            result.note = f"{i + 1} of {repeat} runs (time budget {budget:.0f} s spent)"
            log(f"  {command}: {result.note}")
            break
    return result


# --- harvesting what recon's apply made, for the apply floor -------------------------------


def harvest(host_xml: Path, memory_kib: int, cpus: int) -> dict[str, Any]:
    """The objects of an embedded host's node file as XML strings the floor can define."""
    root = ET.parse(host_xml).getroot()
    embedded = root.find(f"{{{RECON_NS}}}embedded")
    listed: dict[str, list[str]] = json.loads(embedded.text or "{}") if embedded is not None else {}
    auto = {kind: set(names) for kind, names in listed.items()}
    out: dict[str, Any] = {
        "memory_kib": memory_kib,
        "cpus": cpus,
        "domains": [],
        "networks": [],
        "pools": [],
    }
    for elem in root.findall("domain"):
        runstate = elem.find(f"{{{TEST_NS}}}runstate")
        running = runstate is None or (runstate.text or "").strip() == "1"
        if runstate is not None:
            elem.remove(runstate)
        out["domains"].append(
            {
                "xml": ET.tostring(elem, encoding="unicode"),
                "running": running,
                "autostart": elem.findtext("name") in auto.get("domains", set()),
            }
        )
    for elem in root.findall("network"):
        out["networks"].append(
            {
                "xml": ET.tostring(elem, encoding="unicode"),
                "autostart": elem.findtext("name") in auto.get("networks", set()),
            }
        )
    for elem in root.findall("pool"):
        volumes = elem.findall("volume")
        for vol in volumes:
            elem.remove(vol)
        out["pools"].append(
            {
                "xml": ET.tostring(elem, encoding="unicode"),
                "autostart": elem.findtext("name") in auto.get("pools", set()),
                "volumes": [ET.tostring(v, encoding="unicode") for v in volumes],
            }
        )
    return out


# --- one size --------------------------------------------------------------------------------


@dataclass
class SizeResult:
    size: int
    layout: dict[str, int]
    files: int
    measured: str
    tree: str
    measures: dict[str, Measure]


@dataclass
class Tools:
    recon: Path
    python: Path
    repeat: int
    budget: float
    timeout: float
    log: Callable[[str], None]


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
    env["NO_COLOR"] = "1"
    return env


def _expect(
    command: str, pattern: str | None = None, codes: tuple[int, ...] = (0,)
) -> Callable[[Run], None]:
    def check(run: Run) -> None:
        if run.returncode not in codes:
            raise BenchError(
                f"recon {command} exited {run.returncode}:\n"
                f"{run.stdout[-1500:]}\n{run.stderr[-1500:]}"
            )
        if pattern is not None and not re.search(pattern, run.stdout):
            raise BenchError(f"recon {command}: output lacks /{pattern}/:\n{run.stdout[-1500:]}")

    return check


def bench_size(n: int, work: Path, tools: Tools) -> SizeResult:
    log = tools.log
    top = work / f"n{n}"
    shutil.rmtree(top, ignore_errors=True)
    t = time.perf_counter()
    mset = generate(top, n)
    log(f"N={n}: {mset.files} files generated in {time.perf_counter() - t:.1f} s ({top})")
    lay = mset.layout
    base = _base_env()
    base["RECON_EMBEDDED_MEMORY_KIB"] = str(mset.host_memory_kib)
    recon, python = str(tools.recon), str(tools.python)
    files = str(mset.directory)

    def env(home: Path) -> dict[str, str]:
        return {**base, "RECON_HOME": str(home)}

    def run_measure(
        command: str,
        recon_cmd: Callable[[int], Cmd],
        floor_cmd: Callable[[int], Cmd],
        check: Callable[[Run], None],
    ) -> Measure:
        return measure(
            command,
            recon_cmd,
            floor_cmd,
            check,
            repeat=tools.repeat,
            budget=tools.budget,
            timeout=tools.timeout,
            log=log,
        )

    measures: dict[str, Measure] = {}
    scratch = top / "home-scratch"
    measures["startup"] = run_measure(
        "startup",
        lambda i: ([recon, "--version"], env(scratch)),
        lambda i: ([python, "-c", "import yaml, libvirt"], env(scratch)),
        _expect("--version", r"recon"),
    )
    measures["validate"] = run_measure(
        "validate",
        lambda i: ([recon, "validate", "-f", files], env(scratch)),
        lambda i: ([python, str(FLOOR), "yaml", files], env(scratch)),
        _expect("validate", rf"\b{n} resources in {mset.files} files are valid"),
    )

    guests = lay.vms + lay.containers
    created = n - lay.policies

    def apply_home(i: int) -> Path:
        home = top / f"home-apply-{i}"
        shutil.rmtree(home, ignore_errors=True)
        return home

    objects = top / "floor-objects.json"

    def floor_apply(i: int) -> Cmd:
        if not objects.exists():
            data = harvest(top / "home-apply-0" / "host.xml", mset.host_memory_kib, 8)
            if len(data["domains"]) != guests:
                raise BenchError(f"apply left {len(data['domains'])} domains, wanted {guests}")
            objects.write_text(json.dumps(data), encoding="utf-8")
        node = top / f"floor-apply-{i}" / "host.xml"
        shutil.rmtree(node.parent, ignore_errors=True)
        return [python, str(FLOOR), "apply", str(objects), str(node)], env(scratch)

    measures["apply"] = run_measure(
        "apply",
        lambda i: ([recon, "apply", "-f", files], env(apply_home(i))),
        floor_apply,
        _expect("apply", rf"Apply complete: {created} created"),
    )
    home = top / "home-apply-0"

    def first_diff(i: int) -> Cmd:
        shutil.rmtree(home / "cache", ignore_errors=True)
        return [recon, "diff", "-f", files], env(home)

    no_changes = rf"No changes\. The host matches the manifests \({n} resources\)"

    def diff_floor(i: int) -> Cmd:
        return [python, str(FLOOR), "diff", files, str(home / "host.xml")], env(scratch)

    measures["diff-first"] = run_measure(
        "diff-first", first_diff, diff_floor, _expect("diff-first", no_changes)
    )
    measures["diff"] = run_measure(
        "diff",
        lambda i: ([recon, "diff", "-f", files], env(home)),
        diff_floor,
        _expect("diff", no_changes),
    )
    for i in range(1, tools.repeat):  # keep home-apply-0 for the diff and the profile
        shutil.rmtree(top / f"home-apply-{i}", ignore_errors=True)
        shutil.rmtree(top / f"floor-apply-{i}", ignore_errors=True)
    return SizeResult(
        size=n,
        layout=asdict(lay),
        files=mset.files,
        measured=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
        tree=source_tree(),
        measures={c: measures[c] for c in COMMANDS},
    )


# --- profile of the no-op diff ---------------------------------------------------------------

# (label, file suffix, function): cumulative time of these, summed over matching entries.
PHASES: list[tuple[str, str, str]] = [
    ("imports (all modules, at any depth)", "<frozen importlib._bootstrap>", "_find_and_load"),
    ("load: read files + strict YAML (parse_yaml)", "reconciler/load/yamlsafe.py", "parse_yaml"),
    ("load: pydantic + cross checks (validate_documents)", "validate.py", "validate_documents"),
    ("git revision (git_revision, 2 subprocesses)", "reconciler/cli/manifests.py", "git_revision"),
    ("open embedded host (EmbeddedHost.open)", "libvirt/embedded.py", "open"),
    ("  libvirt.open (test driver parses host.xml)", "/libvirt.py", "open"),
    ("  _restore_autostart (recon's element only)", "embedded.py", "_restore_autostart"),
    ("observe (LibvirtProvider.observe)", "libvirt/provider.py", "observe"),
    ("  XMLDesc calls (libvirt C, all objects)", "/libvirt.py", "XMLDesc"),
    ("  parse_domain (ElementTree + field views)", "libvirt/xml/domain.py", "parse_domain"),
    ("  parse_volume", "libvirt/xml/storage.py", "parse_volume"),
    ("make_plan (diff + order + admission + fingerprint)", "engine/plan.py", "make_plan"),
    ("  diff", "engine/diff.py", "diff"),
    ("  desired_fields (model_dump per resource)", "model/resource.py", "desired_fields"),
    ("  Observation.fingerprint (json.dumps per object)", "providers/base.py", "fingerprint"),
    ("  creation_order (graphlib, changing resources only)", "load/graph.py", "creation_order"),
    ("render_plan", "cli/render.py", "render_plan"),
]


def _short(path: str) -> str:
    for marker in ("site-packages/", str(REPO) + "/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path if len(path) < 60 else "..." + path[-57:]


def _label(key: tuple[str, int, str]) -> str:
    path, line, func = key
    if path == "~":
        return func
    return f"{_short(path)}:{line}({func})"


# Frames that only pass a call on (click's dispatch, the import machinery, the script itself):
# left out of the "top by cumulative time" table so that it shows recon's own functions.
PLUMBING = (
    "click/",
    "<frozen importlib",
    "contextlib.py",
    "builtins.exec",
    "builtins.next",
    "bin/recon:",
)
NOTABLE_IMPORTS = (
    "reconciler.model.kinds",
    "pydantic",
    "jsonschema",
    "click",
    "libvirt",
    "yaml",
    "importlib.metadata",
    "reconciler.load.validate",
    "reconciler.providers.libvirt",
)


# What `recon diff` imports: the command group, then the diff verb's module (main.py imports a
# verb's module only when it runs).
IMPORT_PROBE = "import reconciler.cli.main as m; m.load_verb('diff')"


def import_times(python: Path, env: dict[str, str]) -> dict[str, Any]:
    """`python -X importtime` of what `recon diff` imports: total, heaviest modules."""
    run = subprocess.run(
        [str(python), "-X", "importtime", "-c", IMPORT_PROBE],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    own: list[tuple[str, int]] = []
    cumulative: dict[str, int] = {}
    for line in run.stderr.splitlines():
        m = re.match(r"import time:\s*(\d+) \|\s*(\d+) \|( *)(\S+)", line)
        if m:
            own.append((m.group(4), int(m.group(1))))
            cumulative.setdefault(m.group(4), int(m.group(2)))
    return {
        "total_us": sum(us for _, us in own),
        "own": sorted(own, key=lambda kv: kv[1], reverse=True)[:10],
        "notable": {k: cumulative[k] for k in NOTABLE_IMPORTS if k in cumulative},
    }


def profile_diff(n: int, work: Path, tools: Tools, out: Path, top_n: int) -> dict[str, Any]:
    """Run the no-op diff of size n once under cProfile; the top functions and the phases."""
    top = work / f"n{n}"
    home = top / "home-apply-0"
    env = _base_env()
    env["RECON_HOME"] = str(home)
    argv = [str(tools.python), "-m", "cProfile", "-o", str(out), str(tools.recon)]
    argv += ["diff", "-f", str(top / "manifests")]
    run = run_child(argv, env, tools.timeout)
    _expect("diff (profiled)", r"No changes")(run)
    return {
        "size": n,
        "wall": run.seconds,
        **summarize_profile(out, PHASES, PLUMBING, top_n, own_n=15),
        "imports": import_times(tools.python, env),
    }


def summarize_profile(
    path: Path,
    phases: Sequence[tuple[str, str, str]],
    plumbing: Sequence[str],
    top_n: int,
    own_n: int,
) -> dict[str, Any]:
    """A cProfile dump as the time of each named phase (label, file suffix, function: the
    cumulative time of the matching entries) and the top functions by cumulative time
    (entries whose label holds a `plumbing` string left out) and by own time."""
    stats = pstats.Stats(str(path))
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]]
    raw = stats.stats  # type: ignore[attr-defined]

    def row(key: tuple[str, int, str], value: tuple[int, int, float, float, Any]) -> dict[str, Any]:
        return {
            "function": _label(key),
            "calls": value[1],
            "tottime": value[2],
            "cumtime": value[3],
        }

    by_cum = sorted(raw.items(), key=lambda kv: kv[1][3], reverse=True)
    by_cum = [kv for kv in by_cum if not any(p in _label(kv[0]) for p in plumbing)]
    by_own = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)
    found = []
    for label, suffix, func in phases:
        hits = [v for k, v in raw.items() if k[2] == func and k[0].endswith(suffix)]
        if hits:
            found.append(
                {
                    "phase": label,
                    "calls": sum(h[1] for h in hits),
                    "cumtime": sum(h[3] for h in hits),
                }
            )
    return {
        "profiled_total": float(stats.total_tt),  # type: ignore[attr-defined]
        "phases": found,
        "top": [row(k, v) for k, v in by_cum[:top_n]],
        "own": [row(k, v) for k, v in by_own[:own_n]],
    }


# --- Markdown --------------------------------------------------------------------------------


def _mib(v: float) -> str:
    return "-" if v != v else f"{v:.0f}"


def _secs(v: float) -> str:
    return "-" if v != v else (f"{v:.3f}" if v < 10 else f"{v:.1f}")


def _ratio(v: float) -> str:
    return "-" if v != v else f"{v:.2f}x"


def results_table(results: Sequence[dict[str, Any]]) -> str:
    head = (
        "| N | command | recon s (median) | floor s (median) | ratio | recon max RSS MiB "
        "| floor max RSS MiB | runs | floor is |\n"
        "|---:|---|---:|---:|---:|---:|---:|---:|---|\n"
    )
    lines = []
    for res in sorted(results, key=lambda r: r["size"]):
        for command in COMMANDS:
            m = res["measures"].get(command)
            if m is None:
                continue
            recon_s = statistics.median(m["recon"]["seconds"]) if m["recon"]["seconds"] else None
            floor_s = statistics.median(m["floor"]["seconds"]) if m["floor"]["seconds"] else None
            ratio = recon_s / floor_s if recon_s and floor_s else float("nan")
            recon_rss = max(m["recon"]["max_rss_kib"], default=0) / 1024
            floor_rss = max(m["floor"]["max_rss_kib"], default=0) / 1024
            runs = str(len(m["recon"]["seconds"]))
            if m.get("note"):
                runs += "*"
            lines.append(
                f"| {res['size']} | {command} | {_secs(recon_s or float('nan'))} "
                f"| {_secs(floor_s or float('nan'))} | {_ratio(ratio)} | {_mib(recon_rss)} "
                f"| {_mib(floor_rss)} | {runs} | {FLOOR_LABEL[command]} |"
            )
    return head + "\n".join(lines) + "\n"


def _ratio_of(res: dict[str, Any], command: str) -> float:
    m = res["measures"].get(command)
    if not m or not m["recon"]["seconds"] or not m["floor"]["seconds"]:
        return float("nan")
    return float(
        statistics.median(m["recon"]["seconds"]) / statistics.median(m["floor"]["seconds"])
    )


def summary(results: Sequence[dict[str, Any]]) -> str:
    out = []
    ordered = sorted(results, key=lambda r: r["size"])
    out.append("Ratios recon/floor (medians):\n")
    for res in ordered:
        parts = ", ".join(f"{c} {_ratio(_ratio_of(res, c))}" for c in COMMANDS)
        out.append(f"- N={res['size']}: {parts}")
    notes = [
        f"- N={res['size']} {c}: {res['measures'][c]['note']}"
        for res in ordered
        for c in COMMANDS
        if res["measures"].get(c, {}).get("note")
    ]
    if notes:
        out.append("\n\\* fewer runs than asked:\n")
        out += notes
    out.append("\nFloor phases (medians, seconds inside the floor process):\n")
    for res in ordered:
        phases: list[str] = []
        for c in ("diff", "apply"):
            d = res["measures"].get(c, {}).get("floor_detail") or {}
            keys = ("imports_s", "yaml_s", "open_s", "read_s", "create_s", "save_s")
            shown = ", ".join(f"{k[:-2]} {d[k]:.3f}" for k in keys if k in d)
            if shown:
                phases.append(f"{c}: {shown}")
        if phases:
            out.append(f"- N={res['size']}: " + "; ".join(phases))
    out.append("\nTargets (compared, not asserted):\n")
    out += _targets(ordered)
    return "\n".join(out) + "\n"


def _targets(ordered: Sequence[dict[str, Any]]) -> list[str]:
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    out = []
    by_size = {r["size"]: r for r in ordered}
    mid = by_size.get(1000)
    if mid is not None and mid["measures"].get("startup", {}).get("recon", {}).get("seconds"):
        startup = statistics.median(mid["measures"]["startup"]["recon"]["seconds"])
        out.append(
            f"- `recon --version` within {TARGET_STARTUP_S:.2f} s: {startup:.3f} s, "
            f"{verdict(startup <= TARGET_STARTUP_S)}"
        )
    if mid is not None:
        ratio = _ratio_of(mid, "validate")
        out.append(
            f"- validate of 1,000 files within {TARGET_VALIDATE_RATIO:.0f}x of its floor: "
            f"{_ratio(ratio)}, {verdict(ratio <= TARGET_VALIDATE_RATIO)}"
        )
    for size in (1000, TARGET_SIZE):
        res = by_size.get(size)
        if res is None:
            out.append(f"- N={size} was not measured in these results.")
            continue
        for command in ("diff", "diff-first"):
            if command not in res["measures"]:
                continue
            ratio = _ratio_of(res, command)
            out.append(
                f"- {command} at N={size} within {TARGET_DIFF_RATIO}x of its floor: "
                f"{_ratio(ratio)}, {verdict(ratio <= TARGET_DIFF_RATIO)}"
            )
    big = by_size.get(TARGET_SIZE)
    if big is not None:
        m = big["measures"]["diff"]
        above = (
            max(m["recon"]["max_rss_kib"], default=0) - max(m["floor"]["max_rss_kib"], default=0)
        ) / 1024
        out.append(
            f"- the diff's peak RSS at N={TARGET_SIZE} within {TARGET_RSS_ABOVE_FLOOR_MIB:.0f} MiB "
            f"of its floor's: {above:+.0f} MiB, {verdict(above <= TARGET_RSS_ABOVE_FLOOR_MIB)}"
        )
    return out


def _fn_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    out = ["| cum s | own s | calls | function |", "|---:|---:|---:|---|"]
    for row in rows:
        fn = row["function"].replace("|", "\\|")
        out.append(f"| {row['cumtime']:.3f} | {row['tottime']:.3f} | {row['calls']} | `{fn}` |")
    return out


def profile_markdown(prof: dict[str, Any]) -> str:
    total = prof["profiled_total"]
    out = [
        f"No-op `recon diff` at N={prof['size']} under cProfile: {total:.2f} s profiled "
        f"({prof['wall']:.2f} s wall, with the profiler's overhead).\n",
        "Phases (cumulative seconds of the named functions; indented rows are inside the row "
        "above):\n",
        "| phase | calls | cum s | % of profiled |",
        "|---|---:|---:|---:|",
    ]
    for p in prof["phases"]:
        name = p["phase"]
        if name.startswith("  "):
            name = "&nbsp;&nbsp;&nbsp;&nbsp;" + name.strip()
        out.append(
            f"| {name} | {p['calls']} | {p['cumtime']:.3f} | {100 * p['cumtime'] / total:.0f}% |"
        )
    out += [
        "",
        f"Top {len(prof['top'])} functions by cumulative time (click dispatch, import machinery "
        "and the script frame left out):\n",
        *_fn_table(prof["top"]),
        "",
        f"Top {len(prof['own'])} functions by own time:\n",
        *_fn_table(prof["own"]),
    ]
    imports = prof.get("imports")
    if imports:
        out += [
            "",
            f'Imports (`python -X importtime -c "{IMPORT_PROBE}"`, no profiler): '
            f"{imports['total_us'] / 1e6:.3f} s in all.",
            "Cumulative: "
            + ", ".join(f"{k} {us / 1e3:.0f} ms" for k, us in imports["notable"].items())
            + ".",
            "Heaviest own time: "
            + ", ".join(f"{k} {us / 1e3:.0f} ms" for k, us in imports["own"])
            + ".",
        ]
    return "\n".join(out) + "\n"


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def precompile(python: Path, log: Callable[[str], None]) -> None:
    """Byte-compile reconciler/ first, so that recon starts as an installed recon does (pip
    compiles what it installs; the floors' yaml and libvirt come compiled). Without this, a
    shell with PYTHONDONTWRITEBYTECODE=1 (as this machine's is) compiles about 90 modules
    from source in every recon process: some 80 ms of each start-up."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(
        [str(python), "-m", "compileall", "-q", str(REPO / "reconciler")],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=300,
    )
    log("byte-compiled reconciler/ (as an installed recon is)")


def source_tree() -> str:
    """The commit recon was measured at, and whether reconciler/ had uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "reconciler"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return (head or "?") + (" + uncommitted changes in reconciler/" if dirty else "")


def machine_markdown(python: Path) -> str:
    cpu = re.search(r"^model name\s*:\s*(.+)$", _read("/proc/cpuinfo"), re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.M)
    probe = (
        "import sys, libvirt, yaml, pydantic; "
        "v = libvirt.getVersion(); "
        "print(sys.version.split()[0], f'{v // 1000000}.{v // 1000 % 1000}.{v % 1000}', "
        "yaml.__version__, yaml.__with_libyaml__, pydantic.VERSION)"
    )
    try:
        versions = subprocess.run(
            [str(python), "-c", probe], capture_output=True, text=True, check=True, timeout=60
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        versions = ["?"] * 5
    py, lv, pyyaml, libyaml, pyd = (versions + ["?"] * 5)[:5]
    ram = f"{int(mem.group(1)) / 1024**2:.1f} GiB" if mem else "?"
    return (
        f"- CPU: {cpu.group(1).strip() if cpu else platform.processor() or '?'}, "
        f"nproc {os.cpu_count()}\n"
        f"- RAM: {ram}\n"
        f"- OS: {platform.system()} {platform.release()}\n"
        f"- Python {py}, libvirt (library) {lv}, PyYAML {pyyaml} (libyaml: {libyaml}), "
        f"pydantic {pyd}\n"
        "- recon: the work tree of each size's run (see Measured, under Results)\n"
    )


BLOCKS = ("machine", "results", "profile")


def _block(name: str, body: str) -> str:
    return f"<!-- bench:{name}:begin -->\n{body.rstrip()}\n<!-- bench:{name}:end -->"


def write_block(path: Path, name: str, body: str, heading: str) -> None:
    """Replace <!-- bench:NAME:begin/end --> in path; add a section with it when missing.
    Used by watch.py and peer.py for their own sections of docs/benchmarks.md."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    block = _block(name, body)
    pattern = re.compile(rf"<!-- bench:{name}:begin -->.*?<!-- bench:{name}:end -->", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip("\n") + f"\n\n## {heading}\n\n{block}\n"
    path.write_text(text, encoding="utf-8")


SKELETON = """# Benchmarks

Generated by `bench/run.py`; the text outside the generated blocks is written by hand.

Reproduce: `.venv/bin/python bench/run.py --sizes 100,1000 --write`

## Machine

{machine}

## Results

{results}

## What dominates

{profile}

## Not measured yet

Watch latency (there is no `recon watch` yet) and the comparison with an Ansible peer.
"""


def write_docs(
    path: Path, results: list[dict[str, Any]], machine: str, prof: dict[str, Any] | None
) -> None:
    """Replace the generated blocks; keep the rest, and rows of sizes not measured now."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if not text:
        text = SKELETON.format(**{b: _block(b, "") for b in BLOCKS})
    data_re = re.compile(r"<!-- bench:data (.*?) -->", re.S)
    old = data_re.search(text)
    merged: dict[int, dict[str, Any]] = {}
    if old:
        for res in json.loads(old.group(1)):
            merged[int(res["size"])] = res
    for res in results:
        merged[int(res["size"])] = res
    kept = sorted(merged.values(), key=lambda r: r["size"])
    dates = "; ".join(
        f"N={r['size']} on {r['measured']}" + (f" at {r['tree']}" if r.get("tree") else "")
        for r in kept
    )
    compact = json.dumps(kept, separators=(",", ":"))
    body = {
        "machine": machine,
        "results": results_table(kept)
        + f"\nMeasured: {dates}.\n\n"
        + summary(kept)
        + f"\n<!-- bench:data {compact} -->",
    }
    if prof is not None:
        body["profile"] = profile_markdown(prof)
    for name, content in body.items():
        pattern = re.compile(rf"<!-- bench:{name}:begin -->.*?<!-- bench:{name}:end -->", re.S)
        if not pattern.search(text):
            raise BenchError(f"{path}: no <!-- bench:{name}:begin/end --> block to replace")
        replacement = _block(name, content)
        text = pattern.sub(lambda _m: replacement, text)  # noqa: B023 (used at once)
    path.write_text(text, encoding="utf-8")


# --- main ------------------------------------------------------------------------------------


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s.replace("_", "")) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of sizes: {text!r}") from None
    if not sizes or min(sizes) < 5:
        raise argparse.ArgumentTypeError("sizes must be whole numbers of at least 5")
    return sizes


def _as_json(res: SizeResult) -> dict[str, Any]:
    data = asdict(res)
    for command, m in res.measures.items():
        data["measures"][command]["floor_detail"] = m.floor.detail_median()
        data["measures"][command]["floor"].pop("detail", None)
        data["measures"][command]["recon"].pop("detail", None)
    return data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", type=_sizes, default=[100, 1000], help="e.g. 100,1000,10000")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument(
        "--budget",
        type=float,
        default=300.0,
        help="seconds per measurement after which no further repeats start (default 300)",
    )
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds before a child is killed"
    )
    parser.add_argument("--workdir", type=Path, help="keep the generated sets and hosts here")
    parser.add_argument("--write", action="store_true", help=f"update {DOCS.relative_to(REPO)}")
    parser.add_argument("--docs", type=Path, default=DOCS, help=argparse.SUPPRESS)
    parser.add_argument(
        "--profile-size",
        type=int,
        help="profile the no-op diff at this size (default: 1000 when measured)",
    )
    parser.add_argument("--top", type=int, default=25, help="functions shown from the profile")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--recon", type=Path, default=REPO / ".venv" / "bin" / "recon")
    parser.add_argument("--python", type=Path, help="interpreter of the floors (recon's venv)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    python: Path = args.python or args.recon.parent / "python"
    if not python.exists():
        python = Path(sys.executable)
    if not args.recon.exists():
        parser.error(f"{args.recon}: no such command (run ./scripts/test or set --recon)")

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    tools = Tools(args.recon, python, args.repeat, args.budget, args.timeout, log)
    precompile(python, log)
    profile_size = args.profile_size
    if profile_size is None and 1000 in args.sizes:
        profile_size = 1000
    own_work = args.workdir is None
    work = Path(tempfile.mkdtemp(prefix="recon-bench-")) if own_work else args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    prof: dict[str, Any] | None = None
    failed = False
    try:
        for n in args.sizes:
            started = time.perf_counter()
            try:
                res = bench_size(n, work, tools)
            except BenchError as exc:
                log(f"N={n}: FAILED: {exc}")
                failed = True
                continue
            results.append(_as_json(res))
            log(f"N={n}: done in {time.perf_counter() - started:.0f} s")
            if n == profile_size:
                prof = profile_diff(n, work, tools, work / f"diff-{n}.prof", args.top)
            if own_work:
                shutil.rmtree(work / f"n{n}", ignore_errors=True)
    finally:
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
    print(results_table(results))
    print(summary(results))
    if prof is not None:
        print(profile_markdown(prof))
    if args.json is not None:
        args.json.write_text(json.dumps({"results": results, "profile": prof}, indent=1) + "\n")
    if args.write and results:
        write_docs(args.docs, results, machine_markdown(python), prof)
        log(f"wrote {args.docs}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
