"""recon on a real libvirtd at scale: LXC containers from one built template, plus a few VMs.

    .venv/bin/python bench/real_host.py --write                    # 100 containers + 3 VMs
    .venv/bin/python bench/real_host.py --containers 3 --vms 1     # the smoke tests/ runs

Needs root and a running libvirtd with the QEMU and LXC drivers (scripts/libvirtd start).
Everything it makes is named `rhb<hex>-...`, applied under its own `--set` of that name (no
other recon's prune of the set `default` can take it), and removed at the end, also when it
fails.

What is measured, each against a floor in the same run (raw libvirt-python in one process of
recon's interpreter, plus the host tools recon itself runs):

  first apply   `recon --connect lxc:///system apply` of N containers (their pool and their
                built template too: the template is built before the clock starts) and
                `recon --connect qemu:///system apply` of the VMs. Floor: the same domains
                (recon's own XML, renamed) defined and started, each container's root volume
                created and filled the way recon fills it (tar into a tree, `mke2fs -d`) but
                from one tree extracted once: the least a tool must do for N roots.
  no-op diff    `recon diff` of the containers right after (exit 0 checked). Floor:
                listAllDomains and one XMLDesc of each, as the issue asks.
  drift heal    `recon watch` running, a container destroyed behind its back: the time until
                it runs again. Floor: a listener on libvirt's lifecycle events in one process
                that starts the container it sees stop.

Nothing here asserts a time: the numbers are for reading.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import libvirt
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer  # bench/peer.py: running a tool with its time and memory
import run as benchrun  # bench/run.py: the docs block writer

REPO = Path(__file__).resolve().parent.parent
RECON = str(Path(sys.executable).parent / "recon")
DOCS = REPO / "docs" / "benchmarks.md"
MiB = 1024 * 1024


def log(message: str) -> None:
    print(f"real_host: {message}", file=sys.stderr, flush=True)


def example_template() -> dict[str, Any]:
    for doc in yaml.safe_load_all((REPO / "manifests" / "templates.yaml").read_text()):
        if doc["metadata"]["name"] == "debian-12-minimal":
            spec: dict[str, Any] = doc["spec"]
            return spec
    raise SystemExit("manifests/templates.yaml has no debian-12-minimal")


def doc(kind: str, name: str, spec: dict[str, Any]) -> str:
    body = {"apiVersion": "reconciler/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}
    return yaml.safe_dump(body, sort_keys=False)


class Bench:
    def __init__(self, work: Path, containers: int, vms: int, base_uri: str) -> None:
        self.work = work
        self.prefix = f"rhb{secrets.token_hex(2)}"
        self.n = containers
        self.vms = vms
        self.lxc_uri = base_uri.replace("qemu", "lxc", 1)
        self.qemu_uri = base_uri
        self.lxc = libvirt.open(self.lxc_uri)
        self.qemu = libvirt.open(self.qemu_uri)
        self.pool_dir = work / "pool"
        self.floor_dir = work / "floor"
        self.home = work / "home"
        self.results: dict[str, Any] = {}

    def name(self, what: str) -> str:
        return f"{self.prefix}-{what}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
        env.update(RECON_HOME=str(self.home), NO_COLOR="1")
        for key in ("RECON_TEMPLATE_CACHE", "RECON_APT_CACHE"):
            if key in os.environ:
                env[key] = os.environ[key]
        return env

    # --- manifests ------------------------------------------------------------------------

    def write_manifests(self) -> tuple[Path, Path]:
        ct_dir, vm_dir = self.work / "containers", self.work / "vms"
        ct_dir.mkdir()
        vm_dir.mkdir()
        pool = self.name("pool")
        template = self.name("ct")
        spec = example_template()
        spec["pool"] = pool
        (ct_dir / "base.yaml").write_text(
            doc("StoragePool", pool, {"path": str(self.pool_dir)})
            + "---\n"
            + doc("Template", template, spec)
        )
        for i in range(self.n):
            ct = {
                "template": template,
                "cpus": 1,
                "memory": "128Mi",
                "disk": {"pool": pool, "size": "1Gi"},
            }
            (ct_dir / f"ct-{i:03}.yaml").write_text(doc("Container", self.name(f"c{i:03}"), ct))
        for i in range(self.vms):
            vm = {"cpus": 1, "memory": "128Mi"}
            (vm_dir / f"vm-{i}.yaml").write_text(doc("VirtualMachine", self.name(f"v{i}"), vm))
        return ct_dir, vm_dir

    def recon(self, *args: str | Path, timeout: float = 3600) -> peer.Run:
        result = peer.run_tool([RECON, *map(str, args)], self.env(), self.work, timeout)
        return result

    # --- the floor ------------------------------------------------------------------------

    def floor_apply(self, ct_dir: Path) -> dict[str, float]:
        """The same containers as recon's, renamed: root volumes made from one extracted tree,
        defined and started. Returns the phases' seconds."""
        # The template's archive: the pool volume recon uploaded it to.
        pool = self.lxc.storagePoolLookupByName(self.name("pool"))
        archive = next(
            Path(v.path()) for v in pool.listAllVolumes() if v.name().startswith("template-")
        )
        xmls = [
            self.lxc.lookupByName(self.name(f"c{i:03}")).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            for i in range(self.n)
        ]
        phases: dict[str, float] = {}
        start = time.perf_counter()
        tree = self.floor_dir / "tree"
        tree.mkdir(parents=True)
        subprocess.run(
            ["tar", "-x", "--numeric-owner", "-f", str(archive), "-C", str(tree)], check=True
        )
        phases["extract"] = time.perf_counter() - start
        mark = time.perf_counter()
        for i, text in enumerate(xmls):
            name = self.name(f"f{i:03}")
            image = self.floor_dir / f"{name}.raw"
            with image.open("wb") as f:
                f.truncate(1024 * MiB)
            subprocess.run(
                ["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(tree), str(image)], check=True
            )
            root = ET.fromstring(text)
            root.find("name").text = name  # type: ignore[union-attr]
            for gone in ("uuid", "metadata"):
                el = root.find(gone)
                if el is not None:
                    root.remove(el)
            for fs in root.iterfind("devices/filesystem"):
                fs.find("source").set("file", str(image))  # type: ignore[union-attr]
            for iface in root.findall("devices/interface"):
                root.find("devices").remove(iface)  # type: ignore[union-attr]
            self.lxc.defineXML(ET.tostring(root, encoding="unicode")).create()
        phases["roots+define+start"] = time.perf_counter() - mark
        phases["total"] = time.perf_counter() - start
        return phases

    def floor_read(self) -> float:
        start = time.perf_counter()
        conn = libvirt.open(self.lxc_uri)
        for dom in conn.listAllDomains(0):
            dom.XMLDesc(0)
        conn.close()
        return time.perf_counter() - start

    # --- drift ----------------------------------------------------------------------------

    def until_running(self, name: str, timeout: float = 120) -> float:
        start = time.perf_counter()
        dom = self.lxc.lookupByName(name)
        dom.destroy()
        while time.perf_counter() - start < timeout:
            try:
                if dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING:
                    return time.perf_counter() - start
            except libvirt.libvirtError:
                pass
            time.sleep(0.01)
        raise SystemExit(f"{name} was not running again within {timeout} s")

    def floor_heal(self, name: str, trials: int) -> list[float]:
        libvirt.virEventRegisterDefaultImpl()
        conn = libvirt.open(self.lxc_uri)
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                libvirt.virEventRunDefaultImpl()

        def on_event(_c: Any, dom: Any, event: int, _detail: int, _o: Any) -> None:
            if event == libvirt.VIR_DOMAIN_EVENT_STOPPED and dom.name() == name:
                dom.create()

        threading.Thread(target=loop, daemon=True).start()
        cb = conn.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_event, None
        )
        try:
            times = []
            for _ in range(trials):
                times.append(self.until_running(name))
                time.sleep(1)
            return times
        finally:
            conn.domainEventDeregisterAny(cb)
            stop.set()

    def recon_heal(self, ct_dir: Path, name: str, trials: int) -> list[float]:
        env = self.env()
        proc = subprocess.Popen(
            [RECON, "--connect", self.lxc_uri, "watch", "-f", str(ct_dir), "--set", self.prefix],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stderr is not None
        lines: list[str] = []
        first = threading.Event()

        def read() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.append(line)
                if "reconciled" in line:  # the first pass is done
                    first.set()

        threading.Thread(target=read, daemon=True).start()
        try:
            if not first.wait(600):
                raise SystemExit("recon watch did not finish a pass:\n" + "".join(lines[-30:]))
            times = []
            for _ in range(trials):
                try:
                    times.append(self.until_running(name))
                except SystemExit as exc:
                    raise SystemExit(f"{exc}; recon watch said:\n" + "".join(lines[-30:])) from None
                time.sleep(1)
            return times
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)

    # --- the run --------------------------------------------------------------------------

    def run(self, repeat: int, trials: int) -> dict[str, Any]:
        ct_dir, vm_dir = self.write_manifests()
        log(f"building the template (not timed): {self.name('ct')}")
        built = self.recon("template", "build", "-f", ct_dir)
        if built.returncode != 0:
            raise SystemExit(f"template build failed:\n{built.stderr[-3000:]}")
        log(f"recon apply: {self.n} containers on {self.lxc_uri}")
        first = self.recon("--connect", self.lxc_uri, "apply", "-f", ct_dir, "--set", self.prefix)
        if first.returncode != 0:
            raise SystemExit(f"apply failed:\n{first.stderr[-3000:]}")
        running = sum(
            1
            for d in self.lxc.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
            if d.name().startswith(self.name("c"))
        )
        assert running == self.n, f"{running} of {self.n} containers run"
        log(f"recon apply: {self.vms} VMs on {self.qemu_uri}")
        vm_home = self.home
        self.home = self.work / "home-vm"
        vms = self.recon("--connect", self.qemu_uri, "apply", "-f", vm_dir, "--set", self.prefix)
        self.home = vm_home
        if vms.returncode != 0:
            raise SystemExit(f"VM apply failed:\n{vms.stderr[-3000:]}")
        log("floor: the same containers, renamed")
        floor = self.floor_apply(ct_dir)
        log("no-op diff against its floor")
        diffs, reads = [], []
        for _ in range(repeat):
            d = self.recon("--connect", self.lxc_uri, "diff", "-f", ct_dir, "--set", self.prefix)
            if d.returncode != 0:
                raise SystemExit(f"the no-op diff exited {d.returncode}:\n{d.stdout[-2000:]}")
            diffs.append(d)
            reads.append(self.floor_read())
        log("drift heal: recon watch, then the floor's event listener")
        heal = self.recon_heal(ct_dir, self.name("c000"), trials)
        floor_heal = self.floor_heal(self.name("f000"), trials)
        return {
            "containers": self.n,
            "vms": self.vms,
            "first_apply_s": first.seconds,
            "first_apply_cpu_s": first.cpu_seconds,
            "first_apply_rss_kib": first.max_rss_kib,
            "vm_apply_s": vms.seconds,
            "floor_apply": floor,
            "diff_s": [r.seconds for r in diffs],
            "diff_rss_kib": [r.max_rss_kib for r in diffs],
            "floor_read_s": reads,
            "heal_s": heal,
            "floor_heal_s": floor_heal,
            "domains_on_host": len(self.lxc.listAllDomains(0)),
            "bench_domains": sum(
                1 for d in self.lxc.listAllDomains(0) if d.name().startswith(self.prefix)
            ),
        }

    def clean(self) -> None:
        for conn in (self.lxc, self.qemu):
            for dom in conn.listAllDomains(0):
                if dom.name().startswith(self.prefix):
                    try:
                        if dom.isActive():
                            dom.destroy()
                        dom.undefine()
                    except libvirt.libvirtError as exc:
                        log(f"cleaning {dom.name()}: {exc.get_error_message()}")
        for pool in self.lxc.listAllStoragePools(0):
            if pool.name().startswith(self.prefix):
                if pool.isActive():
                    for vol in pool.listAllVolumes():
                        vol.delete(0)
                    pool.destroy()
                pool.undefine()


def render(r: dict[str, Any], when: str, revision: str) -> str:
    med = statistics.median
    floor = r["floor_apply"]
    rows = [
        ("first apply of the containers", r["first_apply_s"], floor["total"]),
        ("no-op diff of the containers", med(r["diff_s"]), med(r["floor_read_s"])),
        ("drift heal (destroyed -> running)", med(r["heal_s"]), med(r["floor_heal_s"])),
    ]
    lines = [
        f"{r['containers']} LXC containers (128 MiB, 1 vCPU, a 1 GiB ext4 root from the built "
        f"`debian-12-minimal` template) and {r['vms']} VMs on one libvirtd, "
        f"{r['domains_on_host']} LXC domains on the host at the end ({r['bench_domains']} "
        f"of them the bench's, the floor's copies included); measured {when}, recon at "
        f"{revision}.",
        "",
        "| what | recon s | floor s | recon / floor |",
        "|---|---:|---:|---:|",
    ]
    for what, ours, theirs in rows:
        lines.append(f"| {what} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.1f}x |")
    lines += [
        "",
        f"- first apply: recon {r['first_apply_cpu_s']:.1f} CPU-seconds, max RSS "
        f"{r['first_apply_rss_kib'] // 1024} MiB; the floor extracted the template once "
        f"({floor['extract']:.1f} s) and made, defined and started the roots in "
        f"{floor['roots+define+start']:.1f} s. The {r['vms']} VMs (`qemu:///system`): "
        f"{r['vm_apply_s']:.1f} s.",
        f"- no-op diff: runs {', '.join(f'{s:.2f}' for s in r['diff_s'])} s, max RSS "
        f"{max(r['diff_rss_kib']) // 1024} MiB; floor "
        f"{', '.join(f'{s:.3f}' for s in r['floor_read_s'])} s.",
        f"- drift heal: recon {', '.join(f'{s:.2f}' for s in r['heal_s'])} s; floor "
        f"{', '.join(f'{s:.2f}' for s in r['floor_heal_s'])} s.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--containers", type=int, default=100)
    ap.add_argument("--vms", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3, help="runs of the no-op diff")
    ap.add_argument("--trials", type=int, default=3, help="drift heals measured")
    ap.add_argument("--uri", default="qemu:///system", help="the QEMU URI; LXC is the same daemon")
    ap.add_argument("--json", type=Path, help="write the raw numbers here")
    ap.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("needs root (containers, their root filesystems)")
    libvirt.registerErrorHandler(lambda _c, _e: None, None)
    work = Path(tempfile.mkdtemp(prefix="recon-real-host-"))
    bench = Bench(work, args.containers, args.vms, args.uri)
    # Each systemd container takes about six inotify instances, and the kernel's default of
    # 128 per user stops the 21st container's init (it exits; the container stops): raised
    # for the run, as hosts of many containers do (docs/real-hosts.md), and put back.
    instances = Path("/proc/sys/fs/inotify/max_user_instances")
    before = instances.read_text()
    wanted = max(int(before), 16 * (2 * args.containers + 32))
    instances.write_text(f"{wanted}\n")
    try:
        result = bench.run(args.repeat, args.trials)
    finally:
        bench.clean()
        shutil.rmtree(work, ignore_errors=True)
        instances.write_text(before)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    revision = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = render(result, when, revision or "?")
    print(body)
    if args.write:
        benchrun.write_block(DOCS, "realhost", body, "A real host at scale: LXC containers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
