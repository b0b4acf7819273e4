"""`recon watch` latency at N resources on the embedded host: edits and drift, with a breakdown.

    .venv/bin/python bench/watch.py --write          # N=1000, 50 edits, 20 drifts: ~12 min

1. Generates the manifest set of bench/run.py (one resource per file) and starts the real
   `recon watch -f DIR --resync 3600 --log-format json` as a subprocess with its own
   RECON_HOME; waits for the initial apply (the first "reconciled" line on its stderr, then
   `recon status -o json`: every resource Ready).
2. Edits: each one rewrites one VM manifest as an editor does (a complete new file, then
   os.replace over the old one), changing `cpus` within `maxCpus` (a live change). The time
   is from just before os.replace until the new vCPU count is in $RECON_HOME/host.xml, the
   embedded host: the bench stats that file every 2 ms and, when it was replaced, reads it
   and looks at that one domain (a byte search for its <name>, then its <vcpu>; no XML parse
   of the whole 2 MB file, no libvirt.open, which alone takes ~0.8 s at N=1000).
3. Drift: another process (this one) changes a running domain behind recon's back as
   tests/conftest.py's other_tool does: it takes recon's host lock (like the operator in
   tests/control), EmbeddedHost(path).open(), destroys the domain, .save(conn), releases the
   lock. The time is from that save until host.xml shows the domain running again.
4. Breakdown: a second watch on a copy of the home, run by bench/watch_probe.py (recon's own
   CLI in-process, with timers around the phases of a pass), repeats a few edits and drifts;
   then a few more edits under cProfile. The phases are medians over those edits.

After each measurement the bench waits until the watch has been quiet (no log line) for a
while, so one measurement never overlaps the next; passes nobody asked for are counted.
At the end the watch gets SIGTERM (exit code and peak RSS from os.wait4), and `recon diff`
checks that the host matches every edit.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import run  # bench/run.py: the generator, child runner and profile helpers

REPO = run.REPO
BENCH = run.BENCH
PROBE = BENCH / "watch_probe.py"
DOCS = run.DOCS
TARGET_P95_S = 0.300  # the benchmark issue's target at N=1000: compared, never asserted
POLL_S = 0.002


class BenchError(RuntimeError):
    pass


# --- the watch process ------------------------------------------------------------------------


def _ts(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp()


@dataclass
class LogLine:
    received: float  # time.time() when this process read the line
    data: dict[str, Any]

    @property
    def msg(self) -> str:
        return str(self.data.get("msg", ""))

    @property
    def ts(self) -> float:
        return _ts(self.data["ts"]) if "ts" in self.data else self.received


class Watch:
    """A running `recon watch --log-format json`, its stderr read line by line."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], cwd: Path) -> None:
        self.started = time.time()
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
        )
        self.lines: list[LogLine] = []
        self.raw: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.rss_kib = 0
        self.returncode: int | None = None

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            now = time.time()
            text = raw.decode("utf-8", "replace").rstrip("\n")
            try:
                data = json.loads(text)
            except ValueError:
                data = {"msg": text, "unparsed": True}
            with self._cond:
                self.raw.append(text)
                self.lines.append(LogLine(now, data if isinstance(data, dict) else {"msg": text}))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def tail(self, n: int = 40) -> str:
        with self._cond:
            return "\n".join(self.raw[-n:])

    def wait_line(
        self, predicate: Callable[[LogLine], bool], start: int, timeout: float
    ) -> tuple[int, LogLine]:
        """The first line at index >= start satisfying predicate (index, line)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            i = start
            while True:
                while i < len(self.lines):
                    if predicate(self.lines[i]):
                        return i, self.lines[i]
                    i += 1
                if self.proc.poll() is not None:
                    raise BenchError(f"the watch exited ({self.proc.returncode}):\n{self.tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"no such log line within {timeout:.0f} s:\n{self.tail()}")
                self._cond.wait(min(left, 0.5))

    def mark(self) -> int:
        with self._cond:
            return len(self.lines)

    def wait_quiet(self, quiet: float, timeout: float = 120.0) -> None:
        """Until no line has arrived for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                last = self.lines[-1].received if self.lines else self.started
            idle = time.time() - last
            if idle >= quiet:
                return
            time.sleep(min(quiet - idle, 0.5) + 0.01)
        raise BenchError(f"the watch did not go quiet for {quiet:.1f} s:\n{self.tail()}")

    def stop(self, timeout: float = 120.0) -> int:
        """SIGTERM; exit code, and the peak RSS of the process (os.wait4)."""
        if self.returncode is not None:
            return self.returncode
        self.proc.send_signal(signal.SIGTERM)
        timer = threading.Timer(timeout, self.proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(self.proc.pid, 0)
        finally:
            timer.cancel()
        self.returncode = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.returncode
        self.rss_kib = usage.ru_maxrss
        self._reader.join(10)
        return self.returncode

    def kill(self) -> None:
        if self.proc.poll() is None and self.returncode is None:
            self.proc.kill()
            self.proc.wait(30)


def reconciled(line: LogLine) -> bool:
    return line.msg == "reconciled"


# --- the embedded host, read from outside ----------------------------------------------------

VCPU_RE = re.compile(rb"<vcpu\b([^>]*)>\s*(\d+)\s*</vcpu>")
CURRENT_RE = re.compile(rb"""\bcurrent=["'](\d+)["']""")
RUNSTATE_RE = re.compile(rb"<test:runstate[^>]*>\s*(\d+)\s*</test:runstate>")


class NodeFile:
    """$RECON_HOME/host.xml, re-read only when it was replaced (recon writes it atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.signature: tuple[int, int, int] | None = None
        self.data = b""
        self.mtime = 0.0
        self.reads = 0

    def refresh(self) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        signature = (st.st_ino, st.st_mtime_ns, st.st_size)
        if signature == self.signature:
            return False
        with open(self.path, "rb") as fh:
            self.data = fh.read()
        self.signature, self.mtime = signature, st.st_mtime
        self.reads += 1
        return True

    def domain(self, name: str) -> dict[str, int] | None:
        """The vCPUs (current) and the run state of one domain, from its stretch of the file."""
        start = self.data.find(b"<name>" + name.encode() + b"</name>")
        if start < 0:
            return None
        end = self.data.find(b"</domain>", start)
        chunk = self.data[start : end if end > 0 else len(self.data)]
        out: dict[str, int] = {}
        vcpu = VCPU_RE.search(chunk)
        if vcpu:
            current = CURRENT_RE.search(vcpu.group(1))
            out["cpus"] = int(current.group(1) if current else vcpu.group(2))
        state = RUNSTATE_RE.search(chunk)
        if state:
            out["runstate"] = int(state.group(1))
        return out

    def wait_for(
        self, name: str, predicate: Callable[[dict[str, int]], bool], timeout: float
    ) -> tuple[float, float]:
        """Poll until predicate(domain) holds: (time seen, mtime of that version of the file)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.refresh():
                dom = self.domain(name)
                if dom is not None and predicate(dom):
                    return time.time(), self.mtime
            if time.monotonic() > deadline:
                raise BenchError(f"{name}: not as expected in {self.path} within {timeout:.0f} s")
            time.sleep(POLL_S)


# --- what the bench does to the manifests and to the host --------------------------------------

CPUS_RE = re.compile(r"(?m)^  cpus: (\d+)$")


def edit_cpus(path: Path) -> tuple[float, int]:
    """Rewrite the manifest with the next vCPU count (1..4, within maxCpus: 4) as an editor
    does: a complete new file, renamed over the old one. (moment just before the rename, new
    value)."""
    text = path.read_text(encoding="utf-8")
    found = CPUS_RE.search(text)
    if found is None:
        raise BenchError(f"{path}: no cpus line")
    new = int(found.group(1)) % 4 + 1
    tmp = path.with_name("." + path.name + ".bench-tmp")  # not *.yaml: not a manifest
    tmp.write_text(CPUS_RE.sub(f"  cpus: {new}", text, count=1), encoding="utf-8")
    moment = time.time()
    os.replace(tmp, path)
    return moment, new


def drift_stop(home: Path, name: str, timeout: float = 120.0) -> tuple[float, dict[str, float]]:
    """Stop a running domain behind recon's back, as tests/conftest.py's other_tool does
    (holding recon's host lock, like tests/control's operator). (moment the node file was
    replaced, timings of the other tool itself)."""
    from reconciler.engine.lock import HostLock, HostLocked
    from reconciler.providers.libvirt.embedded import EmbeddedHost

    path = home / "host.xml"
    host = EmbeddedHost(path)
    lock = HostLock(home, host.uri)
    t = time.perf_counter()
    deadline = time.monotonic() + timeout
    while True:
        try:
            lock.acquire()
            break
        except HostLocked:
            if time.monotonic() > deadline:
                raise BenchError("the host lock stayed held") from None
            time.sleep(0.01)
    detail = {"lock_wait_s": time.perf_counter() - t}
    try:
        t = time.perf_counter()
        conn = host.open()
        detail["open_s"] = time.perf_counter() - t
        try:
            conn.lookupByName(name).destroy()
            t = time.perf_counter()
            host.save(conn)
            detail["save_s"] = time.perf_counter() - t
            # The moment: the new file's mtime (its content written, just before fsync and
            # the rename). Stamping after save() returns could come after the watch has
            # already seen the rename, when this process is descheduled in between.
            moment = os.stat(path).st_mtime
            lock.release()  # at once: a pass that finds the lock held backs off for 1 s
        finally:
            conn.close()
    finally:
        lock.release()  # a no-op when released above
    return moment, detail


# --- statistics --------------------------------------------------------------------------------


def pct(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), linear between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summarize(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "min": min(values, default=float("nan")),
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "max": max(values, default=float("nan")),
        "mean": statistics.fmean(values) if values else float("nan"),
    }


# --- one watch session: edits and drifts ----------------------------------------------------------


@dataclass
class Sample:
    kind: str  # "edit" or "drift"
    name: str
    t0: float  # file written (edit) / node file replaced by the other tool (drift)
    seen: float  # the bench saw the change on the host
    host_mtime: float  # mtime of the host.xml that had it (written just before its rename)
    reconciled_ts: float | None = None
    pass_seconds: float | None = None
    changes: int | None = None
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def latency(self) -> float:
        return self.seen - self.t0


@dataclass
class Session:
    samples: list[Sample] = field(default_factory=list)
    unasked_passes: int = 0
    initial: dict[str, Any] = field(default_factory=dict)
    rss_kib: int = 0
    returncode: int | None = None


def _settle(watch: Watch, seconds: float | None) -> None:
    # A pass nobody asked for would have started within the debounce (0.05 s) or the host-event
    # delay (0.1 s) of the last one; quiet for 1 s plus the last pass's length is enough.
    watch.wait_quiet(1.0 + (seconds or 0.0))


def measure_edit(watch: Watch, node: NodeFile, manifest: Path, name: str, timeout: float) -> Sample:
    node.refresh()
    mark = watch.mark()
    t0, new = edit_cpus(manifest)
    seen, mtime = node.wait_for(name, lambda d: d.get("cpus") == new, timeout)
    _, line = watch.wait_line(reconciled, mark, timeout)
    sample = Sample("edit", name, t0, seen, mtime, line.ts, line.data.get("seconds"))
    sample.changes = line.data.get("changes")
    _settle(watch, sample.pass_seconds)
    return sample


def measure_drift(watch: Watch, node: NodeFile, home: Path, name: str, timeout: float) -> Sample:
    node.refresh()
    mark = watch.mark()
    t0, detail = drift_stop(home, name)
    seen, mtime = node.wait_for(name, lambda d: d.get("runstate") == 1, timeout)
    _, line = watch.wait_line(lambda ln: reconciled(ln) and ln.received >= t0, mark, timeout)
    sample = Sample("drift", name, t0, seen, mtime, line.ts, line.data.get("seconds"))
    sample.changes = line.data.get("changes")
    sample.extra = detail
    _settle(watch, sample.pass_seconds)
    return sample


def count_passes(watch: Watch, since: int) -> int:
    with watch._cond:
        return sum(1 for ln in watch.lines[since:] if reconciled(ln))


# --- the breakdown, from the probe's spans --------------------------------------------------------


def read_spans(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    spans: list[dict[str, Any]] = []
    missing: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if "missing" in rec:
            missing.append(rec["missing"])
        else:
            spans.append(rec)
    return spans, missing


def _first(spans: Sequence[dict[str, Any]], name: str, after: float, before: float) -> Any:
    return next((s for s in spans if s["span"] == name and after <= s["t0"] < before), None)


def _inside(spans: Sequence[dict[str, Any]], name: str, outer: dict[str, Any]) -> list[Any]:
    return [
        s
        for s in spans
        if s["span"] == name and outer["t0"] <= s["t0"] and s["t1"] <= outer["t1"] + 1e-6
    ]


def _dur(items: Sequence[dict[str, Any]]) -> float:
    return sum(s["t1"] - s["t0"] for s in items)


def breakdown_one(
    spans: Sequence[dict[str, Any]], sample: Sample, until: float
) -> dict[str, float] | None:
    """Segments of the time from the write (or the other tool's save) until the bench saw
    the change, from the probe's spans between t0 and `until` (the next sample's t0).

    Rows without indentation follow each other and add up to the total; indented rows are
    parts of the row above them."""
    window = [s for s in spans if sample.t0 - 1e-3 <= s["t0"] < until]
    dequeue = _first(window, "dequeue", sample.t0, until)
    load = _first(window, "load", sample.t0, until)
    rec = _first(window, "reconcile", sample.t0, until)
    if dequeue is None or load is None or rec is None:
        return None
    out: dict[str, float] = {}
    if sample.kind == "edit":
        event = _first(window, "fs.event", sample.t0, until)
        fire = _first(window, "debounce.fire", sample.t0, until)
        if event is None or fire is None:
            return None
        out["write -> first file event (inotify, watchdog thread)"] = event["t0"] - sample.t0
        out["file event -> debounce timer fires (--debounce)"] = fire["t0"] - event["t0"]
        out["debounce -> pass dequeued"] = dequeue["t0"] - fire["t0"]
    else:
        event = _first(window, "host.event", sample.t0, until)
        if event is None:
            return None
        out["save -> host event (watchdog, sha256 of host.xml)"] = event["t0"] - sample.t0
        out["host event -> pass dequeued (queued with a short delay)"] = dequeue["t0"] - event["t0"]
    out["dequeue -> load starts"] = load["t0"] - dequeue["t0"]
    load_s = load["t1"] - load["t0"]
    expand = _dur(_inside(window, "load.expand", load))
    changed = _dur(_inside(window, "load.parse_changed", load))
    per_file = _dur(_inside(window, "load.validate", load))
    whole = _dur(_inside(window, "load.join", load))
    out["load desired state (FileSet.load)"] = load_s
    out["  list the files (expand_paths)"] = expand
    out["  stat every file, read + sha256 the changed ones"] = (
        load_s - expand - changed - per_file - whole
    )
    out["  strict YAML + pydantic of the changed file"] = changed + per_file
    out["  checks across the whole set (join_results)"] = whole
    revision = _first(window, "revision", load["t1"] - 1e-6, rec["t0"] + 1e-6)
    out["load -> pass starts"] = rec["t0"] - load["t1"]
    out["  git revision (git_revision: git rev-parse)"] = (
        revision["t1"] - revision["t0"] if revision else 0.0
    )
    saves = _inside(window, "save", rec)
    last_save_end = max((s["t1"] for s in saves), default=rec["t1"])
    out["pass start -> host.xml replaced"] = last_save_end - rec["t0"]
    out["  host lock"] = _dur(_inside(window, "lock", rec))
    out["  is the kept host current (stat of host.xml)"] = _dur(_inside(window, "current", rec))
    opened = _inside(window, "open", rec)
    if opened:
        lv = _dur(_inside(window, "open.libvirt_open", opened[0]))
        auto = _dur(_inside(window, "open.autostart", opened[0]))
        out["  open the embedded host again (open_provider)"] = _dur(opened)
        out["    libvirt.open (test driver parses host.xml)"] = lv
        out["    _restore_autostart (iterparse + setAutostart)"] = auto
        out["    capabilities, the rest"] = _dur(opened) - lv - auto
    observe = _inside(window, "observe", rec)
    if observe:
        doms = _dur(_inside(window, "observe.domains", observe[0]))
        out["  observe (LibvirtProvider.observe)"] = _dur(observe)
        out["    domains (XMLDesc, parse_domain)"] = doms
        out["    pools, volumes, networks, host"] = _dur(observe) - doms
    out["  plan (make_plan)"] = _dur(_inside(window, "plan", rec))
    out["  drift split (split_plan)"] = _dur(_inside(window, "split", rec))
    apply = _inside(window, "apply", rec)
    in_apply = [s for s in saves if apply and apply[0]["t0"] <= s["t0"] <= apply[0]["t1"]]
    out["  apply: the libvirt change"] = _dur(apply) - _dur(in_apply)
    out["  EmbeddedHost.save (changed domains re-read, host.xml rewritten)"] = _dur(saves)
    parts = [k for k in out if k.startswith("  ") and not k.startswith("    ")]
    before = parts[parts.index("  host lock") :]
    out["  the rest of the pass"] = out["pass start -> host.xml replaced"] - sum(
        out[k] for k in before
    )
    out["host.xml replaced -> the bench saw it (2 ms polling + read)"] = sample.seen - last_save_end
    out["TOTAL"] = sample.latency
    out["(after that, still in the pass: close, save_status, log line)"] = rec["t1"] - last_save_end
    counters = rec.get("counters") or {}
    if "fs.handler" in counters:
        count, seconds = counters["fs.handler"]
        out["(watchdog events from the manifest tree during the pass: count)"] = count
        out["(... time in recon's handler for them, ms)"] = seconds
    out["(EmbeddedHost.save calls in the pass)"] = len(saves)
    return out


def breakdown(spans: Sequence[dict[str, Any]], samples: Sequence[Sample]) -> dict[str, Any]:
    rows: dict[str, list[float]] = {}
    used = 0
    for i, sample in enumerate(samples):
        until = samples[i + 1].t0 if i + 1 < len(samples) else float("inf")
        one = breakdown_one(spans, sample, until)
        if one is None:
            continue
        used += 1
        for key, value in one.items():
            rows.setdefault(key, []).append(value)
    return {"samples": used, "median": {k: statistics.median(v) for k, v in rows.items()}}


# --- the profile of edit passes ------------------------------------------------------------

PROFILE_PHASES: list[tuple[str, str, str]] = [
    ("load (FileSet.load)", "control/desired.py", "load"),
    ("  validate_documents (changed file only)", "load/validate.py", "validate_documents"),
    ("  join_results (checks across the whole set)", "load/validate.py", "join_results"),
    ("  read_sources (changed file only)", "load/sources.py", "read_sources"),
    ("git revision (git_revision)", "reconciler/cli/manifests.py", "git_revision"),
    ("reconcile (Controller.reconcile)", "control/loop.py", "reconcile"),
    ("  open embedded host (EmbeddedHost.open)", "libvirt/embedded.py", "open"),
    ("    libvirt.open (test driver parses host.xml)", "/libvirt.py", "open"),
    ("    _restore_autostart", "embedded.py", "_restore_autostart"),
    ("  observe (LibvirtProvider.observe)", "libvirt/provider.py", "observe"),
    ("    parse_domain", "libvirt/xml/domain.py", "parse_domain"),
    ("  make_plan", "engine/plan.py", "make_plan"),
    ("  apply_plan", "engine/apply.py", "apply_plan"),
    ("  EmbeddedHost.save (in apply, or when the pass ends)", "libvirt/embedded.py", "save"),
    (
        "    _domain_text (each domain's text with its run state)",
        "embedded.py",
        "_domain_text",
    ),
    ("  save_status", "control/status.py", "save_status"),
]


def profile_summary(path: Path, passes: int, top_n: int = 20) -> dict[str, Any]:
    plumbing = (*run.PLUMBING, "watch_probe.py", "threading.py", "cProfile")
    return {"passes": passes, **run.summarize_profile(path, PROFILE_PHASES, plumbing, top_n, 12)}


# --- the whole run --------------------------------------------------------------------------------


@dataclass
class Config:
    size: int
    edits: int
    drifts: int
    probe_edits: int
    probe_drifts: int
    profile_edits: int
    timeout: float
    recon: Path
    python: Path
    log: Callable[[str], None]


def _spread(items: Sequence[str], k: int, offset: int = 0) -> list[str]:
    """k items spread over the list (cycling when k exceeds it)."""
    if not items:
        return []
    step = max(1, len(items) // max(1, k))
    return [items[(offset + i * step) % len(items)] for i in range(k)]


def start_watch(argv_head: list[str], manifests: Path, env: dict[str, str], cwd: Path) -> Watch:
    argv = [*argv_head, "watch", "-f", str(manifests), "--resync", "3600", "--log-format", "json"]
    return Watch(argv, env, cwd)


def run_session(
    watch: Watch,
    home: Path,
    manifests: Path,
    edit_targets: Sequence[str],
    drift_targets: Sequence[str],
    cfg: Config,
    label: str,
    before_edit: Callable[[int], None] | None = None,
) -> Session:
    session = Session()
    node = NodeFile(home / "host.xml")
    first_mark = watch.mark()
    for i, name in enumerate(edit_targets):
        if before_edit is not None:
            before_edit(i)
        sample = measure_edit(watch, node, manifests / "vms" / f"{name}.yaml", name, cfg.timeout)
        session.samples.append(sample)
        cfg.log(
            f"  {label} edit {i + 1}/{len(edit_targets)} {name}: {sample.latency * 1000:.0f} ms "
            f"(pass {sample.pass_seconds} s)"
        )
    for i, name in enumerate(drift_targets):
        sample = measure_drift(watch, node, home, name, cfg.timeout)
        session.samples.append(sample)
        cfg.log(
            f"  {label} drift {i + 1}/{len(drift_targets)} {name}: "
            f"{sample.latency * 1000:.0f} ms (other tool: open {sample.extra['open_s']:.2f} s, "
            f"save {sample.extra['save_s']:.2f} s)"
        )
    session.unasked_passes = count_passes(watch, first_mark) - len(session.samples)
    return session


def bench_watch(work: Path, cfg: Config) -> dict[str, Any]:
    log = cfg.log
    n = cfg.size
    top = work / f"watch-n{n}"
    shutil.rmtree(top, ignore_errors=True)
    mset = run.generate(top, n)
    manifests = mset.directory
    lay = mset.layout
    log(f"N={n}: {mset.files} files in {manifests}")
    base = run._base_env()
    base["RECON_EMBEDDED_MEMORY_KIB"] = str(mset.host_memory_kib)
    home = top / "home"
    env = {**base, "RECON_HOME": str(home)}
    vms = [f"vm-{i + 1:05d}" for i in range(lay.vms)]
    live_cpus = [v for i, v in enumerate(vms) if i % 3 == 0]  # these have maxCpus: 4
    others = [v for i, v in enumerate(vms) if i % 3 == 1]  # Running, no edits
    created = n - lay.policies
    result: dict[str, Any] = {
        "size": n,
        "layout": vars(lay) if hasattr(lay, "__dict__") else {},
        "measured": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "tree": run.source_tree(),
    }

    # 1. plain `recon watch`: initial apply, edits, drifts
    watch = start_watch([str(cfg.recon)], manifests, env, top)
    try:
        _, first = watch.wait_line(reconciled, 0, cfg.timeout)
        initial_s = first.received - watch.started
        if first.data.get("result") != "applied" or first.data.get("changes") != created:
            raise BenchError(f"initial pass: {first.data}, wanted {created} changes applied")
        status = json.loads(
            subprocess.run(
                [str(cfg.recon), "status", "-o", "json"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            ).stdout
        )
        not_ready = [r for r, st in status["resources"].items() if st["condition"] != "Ready"]
        if len(status["resources"]) != n or not_ready:
            raise BenchError(f"after the initial apply: not Ready: {not_ready[:10]}")
        log(
            f"  initial apply by the watch: {initial_s:.1f} s from start "
            f"(pass {first.data.get('seconds')} s, {created} changes)"
        )
        watch.wait_quiet(2.0)
        session = run_session(
            watch,
            home,
            manifests,
            _spread(live_cpus, cfg.edits),
            _spread(others, cfg.drifts),
            cfg,
            "watch",
        )
        session.initial = {
            "seconds_from_start": initial_s,
            "pass_seconds": first.data.get("seconds"),
            "changes": first.data.get("changes"),
        }
    finally:
        code = watch.stop() if watch.proc.poll() is None else watch.proc.returncode
        watch.kill()
    session.rss_kib, session.returncode = watch.rss_kib, code
    log(f"  watch stopped: exit {code}, max RSS {watch.rss_kib / 1024:.0f} MiB")
    diff = subprocess.run(
        [str(cfg.recon), "diff", "-f", str(manifests)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=top,
    )
    result["final_diff_exit"] = diff.returncode
    if diff.returncode != 0:
        raise BenchError(f"the host does not match the edited manifests:\n{diff.stdout[-2000:]}")
    edits = [s for s in session.samples if s.kind == "edit"]
    drifts = [s for s in session.samples if s.kind == "drift"]
    result["watch"] = {
        "initial": session.initial,
        "edits": summarize([s.latency for s in edits]),
        "edits_log": summarize([s.reconciled_ts - s.t0 for s in edits if s.reconciled_ts]),
        "edit_pass": summarize([s.pass_seconds for s in edits if s.pass_seconds is not None]),
        "drifts": summarize([s.latency for s in drifts]),
        "drift_pass": summarize([s.pass_seconds for s in drifts if s.pass_seconds is not None]),
        "other_tool": {
            k: statistics.median(s.extra[k] for s in drifts) for k in ("open_s", "save_s")
        }
        if drifts
        else {},
        "unasked_passes": session.unasked_passes,
        "changes_per_pass": sorted({s.changes for s in session.samples if s.changes is not None}),
        "rss_mib": session.rss_kib / 1024,
        "exit": session.returncode,
        "samples": [
            {
                "kind": s.kind,
                "name": s.name,
                "latency": round(s.latency, 4),
                "pass": s.pass_seconds,
            }
            for s in session.samples
        ],
    }

    # 2. the breakdown: the probe, on a copy of the home (no second initial apply)
    if cfg.probe_edits or cfg.probe_drifts or cfg.profile_edits:
        probe_home = top / "home-probe"
        shutil.rmtree(probe_home, ignore_errors=True)
        shutil.copytree(home, probe_home)
        spans_path = top / "probe-spans.jsonl"
        prof_path = top / "probe-edits.prof"
        flag = top / "profile.on"
        for p in (spans_path, prof_path, flag):
            p.unlink(missing_ok=True)
        head = [
            str(cfg.python),
            str(PROBE),
            "--out",
            str(spans_path),
            "--profile",
            str(prof_path),
            "--profile-flag",
            str(flag),
            "--",
        ]
        probe = start_watch(head, manifests, {**base, "RECON_HOME": str(probe_home)}, top)
        try:
            _, first = probe.wait_line(reconciled, 0, cfg.timeout)
            log(f"  probe watch up: first pass {first.data}")
            probe.wait_quiet(2.0)
            timed_session = run_session(
                probe,
                probe_home,
                manifests,
                _spread(live_cpus, cfg.probe_edits, offset=1),
                _spread(others, cfg.probe_drifts, offset=1),
                cfg,
                "probe",
            )

            def before_edit(_i: int) -> None:
                flag.touch()

            prof_session = run_session(
                probe,
                probe_home,
                manifests,
                _spread(live_cpus, cfg.profile_edits, offset=2),
                [],
                cfg,
                "profiled",
                before_edit,
            )
            flag.unlink(missing_ok=True)
        finally:
            probe.stop() if probe.proc.poll() is None else None
            probe.kill()
        spans, missing = read_spans(spans_path)
        tedits = [s for s in timed_session.samples if s.kind == "edit"]
        tdrifts = [s for s in timed_session.samples if s.kind == "drift"]
        result["breakdown"] = {
            "edit": breakdown(spans, tedits),
            "drift": breakdown(spans, tdrifts),
            "probe_edits": summarize([s.latency for s in tedits]),
            "probe_drifts": summarize([s.latency for s in tdrifts]),
            "missing": missing,
            "imports_s": next(
                (s["t1"] - s["t0"] for s in spans if s["span"] == "imports"), float("nan")
            ),
        }
        pedits = [s for s in prof_session.samples if s.kind == "edit"]
        if pedits and prof_path.exists():
            result["profile"] = profile_summary(prof_path, len(pedits))
            result["profile"]["latency"] = summarize([s.latency for s in pedits])
    return result


# --- Markdown ------------------------------------------------------------------------------------


def _ms(v: float) -> str:
    return "-" if v != v else f"{v * 1000:.0f}"


def _segment_rows(median: dict[str, float]) -> list[str]:
    rows = []
    for key, value in median.items():
        depth = len(key) - len(key.lstrip(" "))
        label = "&nbsp;" * 2 * depth + key.strip()
        if key == "TOTAL":
            label, shown = "**total: write -> seen on the host**", f"**{_ms(value)}**"
        elif key.startswith("("):
            shown = f"{value:.0f}" if "calls" in key or "count" in key else _ms(value)
        else:
            shown = _ms(value)
        rows.append(f"| {label} | {shown} |")
    return rows


def markdown(res: dict[str, Any]) -> str:
    w = res["watch"]
    n = res["size"]
    e, d = w["edits"], w["drifts"]
    lines = [
        f"N={n} resources (one per file), measured {res['measured']} at {res['tree']}.",
        "",
        "| what | samples | p50 ms | p95 ms | max ms | min ms |",
        "|---|---:|---:|---:|---:|---:|",
        f"| edit: file replaced -> new vCPU count in host.xml | {e['n']} | {_ms(e['p50'])} "
        f"| {_ms(e['p95'])} | {_ms(e['max'])} | {_ms(e['min'])} |",
        f"| edit: file replaced -> `reconciled` log line (its ts) | {w['edits_log']['n']} "
        f"| {_ms(w['edits_log']['p50'])} | {_ms(w['edits_log']['p95'])} "
        f"| {_ms(w['edits_log']['max'])} | {_ms(w['edits_log']['min'])} |",
        f"| edit: the pass alone (`seconds` of the log line) | {w['edit_pass']['n']} "
        f"| {_ms(w['edit_pass']['p50'])} | {_ms(w['edit_pass']['p95'])} "
        f"| {_ms(w['edit_pass']['max'])} | {_ms(w['edit_pass']['min'])} |",
        f"| drift: other tool's save -> domain running again in host.xml | {d['n']} "
        f"| {_ms(d['p50'])} | {_ms(d['p95'])} | {_ms(d['max'])} | {_ms(d['min'])} |",
        f"| drift: the healing pass alone | {w['drift_pass']['n']} "
        f"| {_ms(w['drift_pass']['p50'])} | {_ms(w['drift_pass']['p95'])} "
        f"| {_ms(w['drift_pass']['max'])} | {_ms(w['drift_pass']['min'])} |",
        "",
        f"- Target: edit p95 under {TARGET_P95_S * 1000:.0f} ms at N=1000: "
        f"{_ms(e['p95'])} ms, {'met' if e['p95'] < TARGET_P95_S else 'NOT met'}"
        + ("" if n == 1000 else f" (measured at N={n})")
        + ".",
        "- Initial apply by the watch: first `reconciled` line "
        f"{w['initial']['seconds_from_start']:.1f} s after the process started "
        f"(the pass itself {w['initial']['pass_seconds']} s, "
        f"{w['initial']['changes']} changes).",
        f"- Changes per measured pass: {w['changes_per_pass']}; passes nobody asked for: "
        f"{w['unasked_passes']}. Watch max RSS {w['rss_mib']:.0f} MiB, exit {w['exit']} on "
        f"SIGTERM; `recon diff` afterwards: exit {res['final_diff_exit']} "
        "(host matches every edit).",
    ]
    if w.get("other_tool"):
        lines.append(
            f"- The other tool's own cost per drift (not in the latency): open the node file "
            f"{w['other_tool']['open_s']:.2f} s, save it {w['other_tool']['save_s']:.2f} s "
            "(medians), holding recon's host lock."
        )
    b = res.get("breakdown")
    if b:
        lines += [
            "",
            f"Where one edit's time goes (medians over {b['edit']['samples']} edits of a second "
            f"watch run by `bench/watch_probe.py`, timers around recon's functions; those edits: "
            f"p50 {_ms(b['probe_edits']['p50'])} ms, p95 {_ms(b['probe_edits']['p95'])} ms):",
            "",
            "| segment | ms (median) |",
            "|---|---:|",
        ]
        lines += _segment_rows(b["edit"]["median"])
        if b["drift"]["samples"]:
            lines += [
                "",
                f"Healing one drift (medians over {b['drift']['samples']} drifts of the same "
                "watch):",
                "",
                "| segment | ms (median) |",
                "|---|---:|",
            ]
            lines += _segment_rows(b["drift"]["median"])
        if b.get("missing"):
            lines.append(f"\nNot timed (not found in recon): {', '.join(b['missing'])}.")
    prof = res.get("profile")
    if prof:
        per = prof["passes"]
        lines += [
            "",
            f"cProfile of {per} edit passes of that watch (main thread, from the start of "
            f"`FileSet.load` to the end of `Controller.reconcile`): {prof['profiled_total']:.2f} s "
            f"profiled, {prof['profiled_total'] / per * 1000:.0f} ms per pass with the "
            "profiler's overhead.",
            "",
            "| phase | calls | cum s | ms per pass | % |",
            "|---|---:|---:|---:|---:|",
        ]
        for p in prof["phases"]:
            name = p["phase"]
            depth = (len(name) - len(name.lstrip())) // 2
            name = "&nbsp;&nbsp;" * 2 * depth + name.strip()
            lines.append(
                f"| {name} | {p['calls']} | {p['cumtime']:.3f} | {p['cumtime'] / per * 1000:.0f} "
                f"| {100 * p['cumtime'] / prof['profiled_total']:.0f}% |"
            )
        lines += ["", "Top functions by cumulative time:", ""]
        lines += run._fn_table(prof["top"])
        lines += ["", "Top functions by own time:", ""]
        lines += run._fn_table(prof["own"])
    lines.append("")
    lines.append(f"<!-- bench:watch-data {json.dumps(res, separators=(',', ':'))} -->")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=1000, help="resources (default 1000)")
    parser.add_argument("--edits", type=int, default=50, help="timed edits (default 50)")
    parser.add_argument("--drifts", type=int, default=20, help="timed drifts (default 20)")
    parser.add_argument("--probe-edits", type=int, default=10, help="edits for the breakdown")
    parser.add_argument("--probe-drifts", type=int, default=5, help="drifts for the breakdown")
    parser.add_argument("--profile-edits", type=int, default=5, help="edits under cProfile")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per wait")
    parser.add_argument("--workdir", type=Path, help="keep the manifests, homes and spans here")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--docs", type=Path, default=DOCS, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--recon", type=Path, default=REPO / ".venv" / "bin" / "recon")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.size < 50:
        parser.error("--size: at least 50 (the set needs VMs with maxCpus and running guests)")
    python = args.recon.parent / "python"
    if not args.recon.exists() or not python.exists():
        parser.error(f"{args.recon}: no such command (run ./scripts/test or set --recon)")

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    cfg = Config(
        args.size,
        args.edits,
        args.drifts,
        args.probe_edits,
        args.probe_drifts,
        args.profile_edits,
        args.timeout,
        args.recon,
        python,
        log,
    )
    own = args.workdir is None
    work = Path(tempfile.mkdtemp(prefix="recon-watch-bench-")) if own else args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    try:
        res = bench_watch(work, cfg)
    except BenchError as exc:
        log(f"FAILED: {exc}")
        return 1
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    text = markdown(res)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    if args.write:
        run.write_block(args.docs, "watch", text, "Watch latency")
        log(f"wrote {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
