"""`recon watch` with timers around the phases of a pass, for bench/watch.py's breakdown.

    python bench/watch_probe.py --out SPANS.jsonl [--profile OUT.prof --profile-flag FILE] \
        -- watch -f DIR --resync 3600 --log-format json

Runs recon's own command line in this process (the same code as `.venv/bin/recon`) after
wrapping a few functions of the loop, the loader and the embedded host with timers. Each
wrapped call appends one JSON line to SPANS.jsonl: {"span": name, "t0": ..., "t1": ...,
"thread": ...} in wall-clock seconds (time.time(), so bench/watch.py can line them up with
the moment it wrote a file). Point events (a file-system event, the debounce timer firing, a
host event) have t0 == t1. The wrappers cost microseconds per call; nothing in recon changes.

With --profile, passes that start while FILE exists run under cProfile (main thread only:
the loop runs there); the accumulated stats are written to OUT.prof after each such pass.

A function that is not where this probe expects it (recon is being worked on) is skipped
with a note in SPANS.jsonl ({"missing": "module.attr"}), so the breakdown lacks that row
instead of the benchmark failing.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import importlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

_lock = threading.Lock()
_out: Any = None
_profiler: cProfile.Profile | None = None
_profile_path: str | None = None
_profile_flag: str | None = None
_profiling = False
_pass_no = 0
# Events too frequent to log one by one (watchdog events for files the loop itself reads):
# counted per pass and written with the pass's end.
_counters: dict[str, list[float]] = {}


def _emit(record: dict[str, Any]) -> None:
    line = json.dumps(record, default=str)
    with _lock:
        if _out is not None:
            _out.write(line + "\n")
            _out.flush()


def _span(name: str, t0: float, t1: float, **extra: Any) -> None:
    _emit({"span": name, "t0": t0, "t1": t1, "thread": threading.current_thread().name, **extra})


def _count(name: str, seconds: float) -> None:
    with _lock:
        entry = _counters.setdefault(name, [0, 0.0])
        entry[0] += 1
        entry[1] += seconds


def _resolve(path: str) -> tuple[Any, str] | None:
    """'pkg.module:Class.attr' -> (owner object, attribute name), or None when missing."""
    module_name, _, attr_path = path.partition(":")
    try:
        owner: Any = importlib.import_module(module_name)
        *parents, attr = attr_path.split(".")
        for part in parents:
            owner = getattr(owner, part)
        getattr(owner, attr)
    except (ImportError, AttributeError):
        _emit({"missing": path})
        return None
    return owner, attr


def timed(path: str, name: str, *, counted: bool = False) -> None:
    """Wrap the callable at `path` so each call records a span called `name`."""
    found = _resolve(path)
    if found is None:
        return
    owner, attr = found
    original = getattr(owner, attr)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.time()
        try:
            return original(*args, **kwargs)
        finally:
            t1 = time.time()
            if counted:
                _count(name, t1 - t0)
            else:
                extra: dict[str, Any] = {}
                if name == "load.validate":
                    extra["set"] = kwargs.get("cross_checks", True)
                _span(name, t0, t1, **extra)

    setattr(owner, attr, wrapper)


def _profile_on() -> bool:
    return _profile_flag is not None and os.path.exists(_profile_flag)


def install() -> None:
    # The pass as run_loop drives it: desired() (FileSet.load + git_revision), then reconcile.
    found = _resolve("reconciler.control.desired:FileSet.load")
    if found is not None:
        owner, attr = found
        original_load = getattr(owner, attr)

        @functools.wraps(original_load)
        def load(self: Any) -> Any:
            global _pass_no, _profiling
            _pass_no += 1
            if _profiler is not None and _profile_on():
                _profiling = True
                _profiler.enable()
            t0 = time.time()
            try:
                return original_load(self)
            finally:
                _span("load", t0, time.time(), pass_no=_pass_no)

        setattr(owner, attr, load)

    found = _resolve("reconciler.control.loop:Controller.reconcile")
    if found is not None:
        owner, attr = found
        original_reconcile = getattr(owner, attr)

        @functools.wraps(original_reconcile)
        def reconcile(self: Any, *args: Any, **kwargs: Any) -> Any:
            global _profiling
            t0 = time.time()
            try:
                return original_reconcile(self, *args, **kwargs)
            finally:
                t1 = time.time()
                was_profiled = _profiling
                if _profiling and _profiler is not None:
                    _profiler.disable()
                    _profiling = False
                with _lock:
                    counters = {k: [int(v[0]), v[1]] for k, v in _counters.items()}
                    _counters.clear()
                _span(
                    "reconcile",
                    t0,
                    t1,
                    pass_no=_pass_no,
                    profiled=was_profiled,
                    counters=counters,
                )
                if was_profiled and _profiler is not None and _profile_path:
                    _profiler.dump_stats(_profile_path)

        setattr(owner, attr, reconcile)

    for path, name in (
        ("reconciler.cli.control_cmds:git_revision", "revision"),
        ("reconciler.control.desired:expand_paths", "load.expand"),
        ("reconciler.control.desired:read_sources", "load.parse_changed"),
        ("reconciler.control.desired:validate_documents", "load.validate"),
        ("reconciler.control.desired:join_results", "load.join"),
        ("reconciler.control.loop:Controller._pass", "pass"),
        ("reconciler.engine.lock:HostLock.acquire", "lock"),
        ("reconciler.cli.host:open_provider", "open"),
        ("reconciler.providers.libvirt.embedded:EmbeddedHost.open", "open.embedded"),
        ("libvirt:open", "open.libvirt_open"),
        ("reconciler.providers.libvirt.embedded:EmbeddedHost._restore_autostart", "open.autostart"),
        (
            "reconciler.providers.libvirt.provider:LibvirtProvider._driver_and_capabilities",
            "open.capabilities",
        ),
        ("reconciler.providers.libvirt.provider:LibvirtProvider.current", "current"),
        ("reconciler.providers.libvirt.provider:LibvirtProvider.observe", "observe"),
        ("reconciler.providers.libvirt.storage:observe", "observe.pools"),
        ("reconciler.providers.libvirt.networks:observe", "observe.networks"),
        ("reconciler.providers.libvirt.guests.observe:observe", "observe.domains"),
        ("reconciler.control.loop:make_plan", "plan"),
        ("reconciler.control.loop:split_plan", "split"),
        ("reconciler.control.loop:apply_plan", "apply"),
        ("reconciler.providers.libvirt.embedded:EmbeddedHost.save", "save"),
        ("reconciler.providers.libvirt.provider:LibvirtProvider.close", "close"),
        ("reconciler.control.loop:save_status", "save_status"),
    ):
        timed(path, name)

    # Threads: watchdog's handlers, the debounce timer, the work queue.
    timed("reconciler.control.sources:_Handler.on_any_event", "fs.handler", counted=True)
    timed(
        "reconciler.providers.libvirt.events:_NodeFileHandler.on_any_event",
        "nodefile.handler",
        counted=True,
    )
    found = _resolve("reconciler.control.sources:Debouncer.poke")
    if found is not None:
        owner, attr = found
        original_poke = getattr(owner, attr)

        @functools.wraps(original_poke)
        def poke(self: Any) -> Any:
            now = time.time()
            _span("fs.event", now, now)
            return original_poke(self)

        setattr(owner, attr, poke)

    found = _resolve("reconciler.control.sources:Debouncer.__init__")
    if found is not None:
        owner, attr = found
        original_init = getattr(owner, attr)

        @functools.wraps(original_init)
        def init(self: Any, delay: float, action: Callable[[], None]) -> None:
            def fire() -> None:
                now = time.time()
                _span("debounce.fire", now, now)
                action()

            original_init(self, delay, fire)

        setattr(owner, attr, init)

    found = _resolve("reconciler.providers.libvirt.events:_NodeFileHandler.__init__")
    if found is not None:
        owner, attr = found
        original_nf_init = getattr(owner, attr)

        @functools.wraps(original_nf_init)
        def nf_init(self: Any, path: Any, notify: Callable[[str], None]) -> None:
            def wrapped(why: str) -> None:
                now = time.time()
                _span("host.event", now, now)
                notify(why)

            original_nf_init(self, path, wrapped)

        setattr(owner, attr, nf_init)

    found = _resolve("reconciler.control.queue:WorkQueue.get")
    if found is not None:
        owner, attr = found
        original_get = getattr(owner, attr)

        @functools.wraps(original_get)
        def get(self: Any, *args: Any, **kwargs: Any) -> Any:
            key = original_get(self, *args, **kwargs)
            if key is not None:
                now = time.time()
                _span("dequeue", now, now)
            return key

        setattr(owner, attr, get)


def main() -> int:
    global _out, _profiler, _profile_path, _profile_flag
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--profile")
    parser.add_argument("--profile-flag")
    parser.add_argument("recon_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    recon_args = args.recon_args[1:] if args.recon_args[:1] == ["--"] else args.recon_args
    _out = open(args.out, "a", encoding="utf-8")  # noqa: SIM115 (open for the whole run)
    if args.profile:
        _profiler = cProfile.Profile()
        _profile_path = args.profile
        _profile_flag = args.profile_flag
    t0 = time.time()
    from reconciler.cli import main as cli_main  # the same import `.venv/bin/recon` does

    _span("imports", t0, time.time())
    install()
    sys.argv = ["recon", *recon_args]
    try:
        cli_main.main()
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    finally:
        if _profiler is not None and _profile_path:
            _profiler.dump_stats(_profile_path)
        _out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
