"""recon against a peer, on a real libvirtd: 20 small VMs defined and started, then the re-run.

    .venv/bin/python bench/peer.py --write        # 20-25 minutes here; needs qemu:///system

The peer is Ansible's community.libvirt `virt` module; the floor is raw libvirt-python. All
three get the same 20 VMs (128 MiB, 1 vCPU, no disk, no interface; the domain type libvirt
offers, KVM where QEMU can use it), each under its own names:

  recon     `recon --connect URI apply -f DIR`, DIR holding 20 VirtualMachine manifests
            (bench-recon-NN), then the same command again (no changes: checked).
  Ansible   `ansible-playbook -i localhost, -c local peer.yml`: one task `virt: command=define
            xml=...` looped over the 20 VMs (bench-ansible-NN), one task `virt: state=running`
            looped over them; then the same playbook again (changed=0: checked). The XML is the
            inactive XML of recon's own VMs (libvirt's defaults filled in) with the uuid and
            recon's metadata removed and the name changed, so both tools define the same thing.
            Facts are not gathered (recon gathers nothing either).
  floor     one process of recon's interpreter: defineXML + create of the same XML
            (bench-floor-NN); its re-run looks each VM up and reads its XML and state.

Each run starts from none of the 60 VMs; a run is a cold process (interpreter start-up
included on both sides). Time is wall clock around the command; memory is its max RSS from
os.wait4 (the largest single process of the tree: for Ansible that includes the forked worker
and the module processes it reaped), and the peak of the RSS summed over the whole process
tree, sampled every 100 ms. --repeat runs (default 3) give medians; the order of the tools
rotates between runs (recon first in the first run: the others define the XML it made).

Ansible runs from its own virtual environment outside the repository (--peer-venv, default
/tmp/peer-venv), created when missing: `pip install ansible libvirt-python lxml` (libvirt-python
is built against libvirt-dev). The VMs are destroyed and undefined after each run and at the
end, also when something fails. Only VMs this process created are touched: if a VM with one of
the 60 names exists before the start, the bench stops without touching it.

Nothing here asserts a time: the numbers are for reading.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libvirt

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "benchmarks.md"
RECON_NS = "http://recon.dev/xmlns/reconciler/v1"
DEFAULT_VENV = Path("/tmp/peer-venv")
PEER_PACKAGES = ("ansible", "libvirt-python", "lxml")


class BenchError(RuntimeError):
    pass


def _quiet(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr by default."""


libvirt.registerErrorHandler(_quiet, None)


# --- the peer's environment ----------------------------------------------------------------------


def peer_ready(venv: Path) -> bool:
    python = venv / "bin" / "python"
    if not (venv / "bin" / "ansible-playbook").exists() or not python.exists():
        return False
    probe = "import libvirt, lxml, ansible_collections.community.libvirt"
    return (
        subprocess.run([str(python), "-c", probe], capture_output=True, check=False).returncode == 0
    )


def ensure_peer(venv: Path, log: Callable[[str], None]) -> dict[str, str]:
    """Create the Ansible venv when it is missing; the versions in it."""
    if not peer_ready(venv):
        log(f"creating {venv}: pip install {' '.join(PEER_PACKAGES)} (a few minutes)")
        base = Path(sys.base_prefix) / "bin" / "python3"
        subprocess.run([str(base), "-m", "venv", str(venv)], check=True, timeout=300)
        result = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", *PEER_PACKAGES],
            capture_output=True,
            text=True,
            check=False,
            timeout=1800,
        )
        if result.returncode != 0 or not peer_ready(venv):
            raise BenchError(
                f"could not set up {venv}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
    listed = subprocess.run(
        [str(venv / "bin" / "pip"), "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    ).stdout
    versions = {p["name"].lower(): p["version"] for p in json.loads(listed or "[]")}
    manifest = next(
        (venv / "lib").glob(
            "python*/site-packages/ansible_collections/community/libvirt/MANIFEST.json"
        ),
        None,
    )
    collection = json.loads(manifest.read_text())["collection_info"]["version"] if manifest else "?"
    return {
        "ansible": versions.get("ansible", "?"),
        "ansible-core": versions.get("ansible-core", "?"),
        "community.libvirt": collection,
        "libvirt-python": versions.get("libvirt-python", "?"),
    }


# --- running a tool -------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    cpu_seconds: float
    max_rss_kib: int
    tree_rss_kib: int
    returncode: int
    stdout: str = field(repr=False)
    stderr: str = field(repr=False)
    # (seconds since the start, line) of every stderr line, as it arrived
    stderr_lines: list[tuple[float, str]] = field(default_factory=list, repr=False)


def _tree_rss_kib(root: int) -> int:
    """RSS summed over root and all its descendants, now (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        # Descendants were started after the root: newer pids (barring a pid wrap-around).
        # Reading only those keeps the sampler's own CPU use small on a busy 2-CPU host.
        if not entry.isdigit() or int(entry) <= root:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            with open(f"/proc/{pid}/statm", "rb") as fh:
                total += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
        except (OSError, IndexError, ValueError):
            continue
    return total


def run_tool(argv: Sequence[str], env: dict[str, str], cwd: Path, timeout: float) -> Run:
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
        )
        lines: list[tuple[float, str]] = []

        def read_err() -> None:
            assert proc.stderr is not None
            for raw in proc.stderr:
                lines.append((time.perf_counter() - start, raw.decode("utf-8", "replace")))

        reader = threading.Thread(target=read_err, daemon=True)
        reader.start()
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _tree_rss_kib(proc.pid))
                done.wait(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
            done.set()
        seconds = time.perf_counter() - start
        sampler.join(5)
        reader.join(30)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return Run(
            seconds,
            usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss,
            peak[0],
            proc.returncode,
            out.read().decode("utf-8", "replace"),
            "".join(line for _, line in lines),
            [(t, line.rstrip("\n")) for t, line in lines],
        )


# --- the VMs --------------------------------------------------------------------------------------

MANIFEST = """\
apiVersion: reconciler/v1
kind: VirtualMachine
metadata:
  name: {name}
  labels:
    bench: peer
spec:
  cpus: 1
  memory: 128Mi
  state: Running
"""

PLAYBOOK = """\
- name: bench/peer.py - {count} small VMs, defined and running
  hosts: localhost
  gather_facts: false
  vars:
    uri: "{uri}"
    xml_dir: "{xml_dir}"
    vms: {names}
  tasks:
    - name: define
      community.libvirt.virt:
        command: define
        xml: "{{{{ lookup('file', xml_dir + '/' + item + '.xml') }}}}"
        uri: "{{{{ uri }}}}"
      loop: "{{{{ vms }}}}"
    - name: running
      community.libvirt.virt:
        name: "{{{{ item }}}}"
        state: running
        uri: "{{{{ uri }}}}"
      loop: "{{{{ vms }}}}"
"""

MARKER = "created by recon bench/peer.py"


class Host:
    """The libvirt host, for checking and for cleaning up what this process created."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.conn = libvirt.open(uri)
        self.created: set[str] = set()

    def exists(self, name: str) -> bool:
        try:
            self.conn.lookupByName(name)
        except libvirt.libvirtError:
            return False
        return True

    def running(self, names: Sequence[str]) -> list[str]:
        up = []
        for name in names:
            try:
                if self.conn.lookupByName(name).isActive():
                    up.append(name)
            except libvirt.libvirtError:
                pass
        return up

    def domain_type(self, name: str) -> str:
        root = ET.fromstring(self.conn.lookupByName(name).XMLDesc(0))
        return root.get("type", "?")

    def _remove_one(self, name: str) -> bool:
        try:
            dom = self.conn.lookupByName(name)
        except libvirt.libvirtError:
            return False
        if dom.isActive():
            try:
                dom.destroy()
            except libvirt.libvirtError:
                if dom.isActive():
                    raise
        flags = (
            libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
            | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
            | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
        )
        dom.undefineFlags(flags)
        return True

    def remove(self, names: Sequence[str]) -> int:
        """Destroy and undefine those of `names` this process created (a few at a time: a
        KVM guest takes seconds to be destroyed on a busy host); how many."""
        mine = [n for n in names if n in self.created]
        with ThreadPoolExecutor(max_workers=4) as pool:
            done = list(pool.map(self._remove_one, mine))
        for name in mine:
            self.created.discard(name)
        return sum(done)

    def close(self) -> None:
        self.conn.close()


def peer_xml(recon_xml: str, name: str) -> str:
    """recon's VM as Ansible defines it: same domain, another name, no uuid, no recon stamp."""
    root = ET.fromstring(recon_xml)
    for tag in ("uuid", "metadata", "description"):
        for elem in root.findall(tag):
            root.remove(elem)
    root.find("name").text = name  # type: ignore[union-attr]
    desc = ET.Element("description")
    desc.text = MARKER
    root.insert(1, desc)
    return ET.tostring(root, encoding="unicode")


# --- the floor: raw libvirt-python, in one process ------------------------------------------------


def floor_child(uri: str, xml_dir: str, mode: str, names: Sequence[str]) -> int:
    """Run as a child (recon's interpreter, which has libvirt): `first` defines and starts
    every VM from its XML; `again` does the least an idempotent tool must: look each VM up,
    read its definition and whether it runs. One JSON line of phase times on stdout."""
    t0 = time.perf_counter()
    conn = libvirt.open(uri)
    out: dict[str, float] = {"connect_s": time.perf_counter() - t0}
    if mode == "first":
        define = start = 0.0
        for name in names:
            xml = Path(xml_dir, f"{name}.xml").read_text(encoding="utf-8")
            t = time.perf_counter()
            dom = conn.defineXML(xml)
            define += time.perf_counter() - t
            t = time.perf_counter()
            dom.create()
            start += time.perf_counter() - t
        out.update(define_s=define, start_s=start)
    else:
        t = time.perf_counter()
        for name in names:
            dom = conn.lookupByName(name)
            dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            if not dom.isActive():
                raise SystemExit(f"{name} is not running")
        out["read_s"] = time.perf_counter() - t
    conn.close()
    out["total_s"] = time.perf_counter() - t0
    print(json.dumps(out))
    return 0


# --- one run of each tool -------------------------------------------------------------------------

RECAP = re.compile(r"^\S+\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


@dataclass
class Setup:
    uri: str
    count: int
    work: Path
    recon: Path
    venv: Path
    timeout: float
    log: Callable[[str], None]
    recon_names: list[str] = field(default_factory=list)
    peer_names: list[str] = field(default_factory=list)
    floor_names: list[str] = field(default_factory=list)

    @property
    def manifests(self) -> Path:
        return self.work / "peer-recon-manifests"

    @property
    def xml_dir(self) -> Path:
        return self.work / "peer-ansible-xml"

    @property
    def playbook(self) -> Path:
        return self.work / "peer.yml"


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECON_", "ANSIBLE_"))}
    env.update(NO_COLOR="1", LC_ALL="C.UTF-8", LANG="C.UTF-8")
    env.update(extra)
    return env


def recon_round(host: Host, s: Setup, i: int) -> dict[str, Run]:
    home = s.work / f"recon-home-{i}"
    shutil.rmtree(home, ignore_errors=True)
    env = _env({"RECON_HOME": str(home)})
    argv = [str(s.recon), "--connect", s.uri, "apply", "-f", str(s.manifests)]
    host.created.update(n for n in s.recon_names if not host.exists(n))
    first = run_tool(argv, env, s.work, s.timeout)
    if first.returncode != 0 or f"Apply complete: {s.count} created" not in first.stdout:
        raise BenchError(
            f"recon apply exited {first.returncode}:\n{first.stdout[-1500:]}{first.stderr[-1500:]}"
        )
    up = host.running(s.recon_names)
    if len(up) != s.count:
        raise BenchError(f"after recon apply only {len(up)} of {s.count} VMs run")
    again = run_tool(argv, env, s.work, s.timeout)
    if again.returncode != 0 or "No changes" not in again.stdout + again.stderr:
        raise BenchError(
            f"recon re-run exited {again.returncode}:\n{again.stdout[-1500:]}{again.stderr[-1500:]}"
        )
    return {"first": first, "again": again}


def ansible_round(host: Host, s: Setup, i: int) -> dict[str, Run]:
    temp = s.work / f"ansible-tmp-{i}"
    shutil.rmtree(temp, ignore_errors=True)
    env = _env(
        {
            "ANSIBLE_LOCAL_TEMP": str(temp / "local"),
            "ANSIBLE_REMOTE_TEMP": str(temp / "remote"),
            "ANSIBLE_HOME": str(temp / "home"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_PYTHON_INTERPRETER": str(s.venv / "bin" / "python"),
            # seconds per task in a summary at the end (the timing of the whole run is ours)
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
            "PATH": f"{s.venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        }
    )
    argv = [
        str(s.venv / "bin" / "ansible-playbook"),
        "-i",
        "localhost,",
        "-c",
        "local",
        str(s.playbook),
    ]
    host.created.update(n for n in s.peer_names if not host.exists(n))
    first = run_tool(argv, env, s.work, s.timeout)
    recap = RECAP.search(first.stdout)
    if first.returncode != 0 or recap is None or int(recap.group(4)) != 0:
        raise BenchError(
            f"ansible-playbook exited {first.returncode}:\n"
            f"{first.stdout[-2500:]}{first.stderr[-1500:]}"
        )
    up = host.running(s.peer_names)
    if len(up) != s.count:
        raise BenchError(f"after the playbook only {len(up)} of {s.count} VMs run")
    again = run_tool(argv, env, s.work, s.timeout)
    recap = RECAP.search(again.stdout)
    if again.returncode != 0 or recap is None or int(recap.group(2)) != 0:
        raise BenchError(
            f"playbook re-run exited {again.returncode}, not changed=0:\n{again.stdout[-2500:]}"
        )
    return {"first": first, "again": again}


def floor_round(host: Host, s: Setup, i: int) -> dict[str, Run]:
    env = _env({})
    base = [sys.executable, str(Path(__file__).resolve()), "--floor-child", s.uri, str(s.xml_dir)]
    host.created.update(n for n in s.floor_names if not host.exists(n))
    runs: dict[str, Run] = {}
    for mode in ("first", "again"):
        run = run_tool([*base, mode, *s.floor_names], env, s.work, s.timeout)
        if run.returncode != 0:
            raise BenchError(f"floor {mode} exited {run.returncode}:\n{run.stderr[-1500:]}")
        runs[mode] = run
    if len(host.running(s.floor_names)) != s.count:
        raise BenchError("after the floor not every VM runs")
    return runs


def recon_steps(run: Run) -> dict[str, float]:
    """From recon's progress lines: start-up + load + observe + plan (until the first change
    begins), the changes (first to last "create..." line, per VM), and what follows."""
    starts = [t for t, line in run.stderr_lines if re.match(r"^\+ \S+: create\.\.\.", line)]
    if not starts:
        return {}
    per_vm = (starts[-1] - starts[0]) / (len(starts) - 1) if len(starts) > 1 else float("nan")
    return {
        "until_first_change_s": starts[0],
        "per_vm_s": per_vm,
        "after_last_start_s": run.seconds - starts[-1],
    }


TASK_TIME = re.compile(r"^(define|running) -+ (\d+\.\d+)s\s*$", re.M)


def ansible_steps(run: Run) -> dict[str, float]:
    """From the ansible.posix.profile_tasks summary: seconds per task (all its loop items)."""
    return {f"{m.group(1)}_s": float(m.group(2)) for m in TASK_TIME.finditer(run.stdout)}


def floor_steps(run: Run) -> dict[str, float]:
    try:
        return {k: float(v) for k, v in json.loads(run.stdout.strip().splitlines()[-1]).items()}
    except (ValueError, IndexError):
        return {}


def _series(runs: Sequence[Run]) -> dict[str, Any]:
    return {
        "seconds": [r.seconds for r in runs],
        "cpu_seconds": [r.cpu_seconds for r in runs],
        "max_rss_kib": [r.max_rss_kib for r in runs],
        "tree_rss_kib": [r.tree_rss_kib for r in runs],
    }


TOOLS = ("recon", "ansible", "floor")


def bench_peer(s: Setup, repeat: int, versions: dict[str, str]) -> dict[str, Any]:
    log = s.log
    host = Host(s.uri)
    names = {"recon": s.recon_names, "ansible": s.peer_names, "floor": s.floor_names}
    rounds: dict[str, Callable[[Host, Setup, int], dict[str, Run]]] = {
        "recon": recon_round,
        "ansible": ansible_round,
        "floor": floor_round,
    }
    steps: dict[str, Callable[[Run], dict[str, float]]] = {
        "recon": recon_steps,
        "ansible": ansible_steps,
        "floor": floor_steps,
    }
    runs: dict[str, dict[str, list[Run]]] = {t: {"first": [], "again": []} for t in TOOLS}
    detail: dict[str, list[dict[str, float]]] = {t: [] for t in TOOLS}
    loads: list[float] = []
    dom_type = "?"
    try:
        clash = [n for t in TOOLS for n in names[t] if host.exists(n)]
        if clash:
            raise BenchError(
                f"VMs named like the bench's already exist ({', '.join(clash[:5])}...); they are "
                "not this run's to touch. Remove them yourself (virsh destroy/undefine) if they "
                "are left from an earlier run."
            )
        s.manifests.mkdir(parents=True, exist_ok=True)
        s.xml_dir.mkdir(parents=True, exist_ok=True)
        for name in s.recon_names:
            (s.manifests / f"{name}.yaml").write_text(MANIFEST.format(name=name))
        s.playbook.write_text(
            PLAYBOOK.format(
                count=s.count, uri=s.uri, xml_dir=s.xml_dir, names=json.dumps(s.peer_names)
            )
        )
        for i in range(repeat):
            # recon first in the first run: the other two define the XML recon made.
            order = TOOLS if i % 2 == 0 else ("ansible", "floor", "recon")
            for tool in order:
                loads.append(os.getloadavg()[0])
                if tool != "recon" and not any(s.xml_dir.iterdir()):
                    raise BenchError("no XML for the playbook yet (recon runs first)")
                got = rounds[tool](host, s, i)
                if tool == "recon" and not any(s.xml_dir.iterdir()):
                    dom_type = host.domain_type(s.recon_names[0])
                    for k, rname in enumerate(s.recon_names):
                        text = host.conn.lookupByName(rname).XMLDesc(
                            libvirt.VIR_DOMAIN_XML_INACTIVE
                        )
                        for other in (s.peer_names[k], s.floor_names[k]):
                            (s.xml_dir / f"{other}.xml").write_text(peer_xml(text, other))
                t = time.perf_counter()
                host.remove(names[tool])
                for k in ("first", "again"):
                    runs[tool][k].append(got[k])
                detail[tool].append(
                    {
                        **{f"first.{k}": v for k, v in steps[tool](got["first"]).items()},
                        **{f"again.{k}": v for k, v in steps[tool](got["again"]).items()},
                    }
                )
                log(
                    f"  run {i + 1} {tool}: first {got['first'].seconds:.2f} s "
                    f"({got['first'].max_rss_kib / 1024:.0f} MiB), re-run "
                    f"{got['again'].seconds:.2f} s ({got['again'].max_rss_kib / 1024:.0f} MiB); "
                    f"cleanup {time.perf_counter() - t:.1f} s; load {loads[-1]:.1f}"
                )
        info = host.conn.getInfo()
        libvirt_version = host.conn.getLibVersion()
        qemu_version = host.conn.getVersion()
    finally:
        left = sorted(host.created)
        if left:
            log(f"  cleaning up {len(left)} VMs")
        host.remove(left)
        host.close()

    def ver(v: int) -> str:
        return f"{v // 1000000}.{v // 1000 % 1000}.{v % 1000}"

    def med_detail(items: list[dict[str, float]]) -> dict[str, float]:
        keys = {k for d in items for k in d}
        return {k: statistics.median(d[k] for d in items if k in d) for k in sorted(keys)}

    return {
        "measured": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "uri": s.uri,
        "vms": s.count,
        "domain_type": dom_type,
        "host": {"cpus": info[2], "libvirt": ver(libvirt_version), "qemu": ver(qemu_version)},
        "versions": versions,
        "load_avg_1m": {"min": min(loads), "median": statistics.median(loads), "max": max(loads)},
        **{t: {k: _series(v) for k, v in runs[t].items()} for t in TOOLS},
        "steps": {t: med_detail(detail[t]) for t in TOOLS},
    }


# --- Markdown -------------------------------------------------------------------------------------


def _med(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def markdown(res: dict[str, Any], tree: str) -> str:
    r, a, f = res["recon"], res["ansible"], res["floor"]
    runs = len(r["first"]["seconds"])
    load = res["load_avg_1m"]
    lines = [
        f"{res['vms']} VMs (128 MiB, 1 vCPU, no disk, no interface, domain type "
        f"`{res['domain_type']}`) on `{res['uri']}` (libvirt {res['host']['libvirt']}, QEMU "
        f"{res['host']['qemu']}, {res['host']['cpus']} CPUs), measured {res['measured']}; recon "
        f"at {tree}; Ansible {res['versions']['ansible']} (ansible-core "
        f"{res['versions']['ansible-core']}, community.libvirt "
        f"{res['versions']['community.libvirt']}, libvirt-python "
        f"{res['versions']['libvirt-python']}). Medians of {runs} runs. 1-minute load average "
        f"when a tool started: {load['min']:.1f} to {load['max']:.1f} "
        f"(median {load['median']:.1f}).",
        "",
        "| run | recon s | Ansible s | floor s | Ansible / recon | recon / floor | recon CPU s "
        "| Ansible CPU s | recon max RSS MiB | Ansible max RSS MiB (one process) "
        "| Ansible peak tree RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    labels = (("first", f"first (define + start {res['vms']})"), ("again", "re-run (no changes)"))
    for key, label in labels:
        rs, as_, fs = (_med(x[key]["seconds"]) for x in (r, a, f))
        lines.append(
            f"| {label} | {rs:.2f} | {as_:.2f} | {fs:.2f} | {as_ / rs:.1f}x | {rs / fs:.1f}x "
            f"| {_med(r[key]['cpu_seconds']):.2f} | {_med(a[key]['cpu_seconds']):.2f} "
            f"| {max(r[key]['max_rss_kib']) / 1024:.0f} | {max(a[key]['max_rss_kib']) / 1024:.0f} "
            f"| {max(a[key]['tree_rss_kib']) / 1024:.0f} |"
        )
    st = res["steps"]
    lines += [
        "",
        "All runs (seconds): "
        + "; ".join(
            f"{tool} {key} " + ", ".join(f"{v:.2f}" for v in res[tool][key]["seconds"])
            for tool in TOOLS
            for key in ("first", "again")
        )
        + ".",
        "",
        "Inside the first run (medians):",
        "",
        f"- floor (raw libvirt-python, one process): `defineXML` "
        f"{st['floor'].get('first.define_s', float('nan')):.2f} s and `create` "
        f"{st['floor'].get('first.start_s', float('nan')):.2f} s for all {res['vms']} VMs; its "
        f"re-run reads every VM in {st['floor'].get('again.read_s', float('nan')):.2f} s.",
        f"- recon: {st['recon'].get('first.until_first_change_s', float('nan')):.2f} s until the "
        f"first change starts (start-up, load, observe, plan), then "
        f"{st['recon'].get('first.per_vm_s', float('nan')):.2f} s per VM (define + start), "
        f"{st['recon'].get('first.after_last_start_s', float('nan')):.2f} s from the start of "
        "the last change to the exit (that VM's define + start, the report).",
        f"- Ansible (`ansible.posix.profile_tasks`): task `define` "
        f"{st['ansible'].get('first.define_s', float('nan')):.2f} s, task `running` "
        f"{st['ansible'].get('first.running_s', float('nan')):.2f} s; in the re-run "
        f"{st['ansible'].get('again.define_s', float('nan')):.2f} s and "
        f"{st['ansible'].get('again.running_s', float('nan')):.2f} s.",
        "",
        "recon is one process: its peak tree RSS is its max RSS ("
        + ", ".join(f"{max(r[k]['tree_rss_kib']) / 1024:.0f} MiB {k}" for k in ("first", "again"))
        + ").",
        "",
        f"<!-- bench:peer-data {json.dumps(res, separators=(',', ':'))} -->",
    ]
    return "\n".join(lines) + "\n"


def _run_module() -> Any:
    """bench/run.py, imported on demand: the shared source-tree and docs helpers."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run

    return run


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--floor-child"]:
        uri, xml_dir, mode, *names = argv[1:]
        return floor_child(uri, xml_dir, mode, names)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--uri", default="qemu:///system")
    parser.add_argument("--vms", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool (median)")
    parser.add_argument("--peer-venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--docs", type=Path, default=DOCS, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--recon", type=Path, default=REPO / ".venv" / "bin" / "recon")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    if not 1 <= args.vms <= 99:
        parser.error("--vms: 1 to 99")

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    def stop(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop)
    try:
        versions = ensure_peer(args.peer_venv, log)
    except (BenchError, subprocess.SubprocessError, OSError) as exc:
        log(f"FAILED: {exc}")
        return 1
    own = args.workdir is None
    work = Path(tempfile.mkdtemp(prefix="recon-peer-bench-")) if own else args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    setup = Setup(
        args.uri,
        args.vms,
        work,
        args.recon,
        args.peer_venv,
        args.timeout,
        log,
        [f"bench-recon-{k:02d}" for k in range(1, args.vms + 1)],
        [f"bench-ansible-{k:02d}" for k in range(1, args.vms + 1)],
        [f"bench-floor-{k:02d}" for k in range(1, args.vms + 1)],
    )
    try:
        res = bench_peer(setup, args.repeat, versions)
    except (BenchError, libvirt.libvirtError) as exc:
        log(f"FAILED: {exc}")
        return 1
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    text = markdown(res, _run_module().source_tree())
    print(text)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    if args.write:
        _run_module().write_block(args.docs, "peer", text, "recon and Ansible on a real host")
        log(f"wrote {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
