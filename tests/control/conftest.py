"""Fixtures for the control loop: `recon watch` / `recon sync` run as real subprocesses against a
per-test embedded host, git repositories made with the `git` command and served over file://,
and an operator's second tool that changes the host while holding recon's host lock.

Waiting is always "until something is true, or a generous deadline": nothing here asserts how
long anything took."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import libvirt
import pytest

from reconciler.control.status import status_path
from reconciler.engine.lock import HostLock, HostLocked
from tests.conftest import BUILD_ENV, RECON, ROOT, SECRET, OtherTool, Recon

T = TypeVar("T")

DEADLINE = 30.0


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float = DEADLINE,
    interval: float = 0.1,
    describe: Callable[[], str] | None = None,
) -> T:
    """The first truthy value of predicate(), polled until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            detail = describe() if describe else ""
            raise AssertionError(f"not true within {timeout}s (last: {last!r})\n{detail}")
        time.sleep(interval)


class Loop:
    """A running `recon watch` or `recon sync`, its stderr collected line by line."""

    def __init__(self, recon: Recon, args: tuple[str | Path, ...], env: dict[str, str]) -> None:
        self.recon = recon
        self.args = [str(a) for a in args]
        full = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
        full.update(RECON_HOME=str(recon.home), WEB_ADMIN_PASSWORD=SECRET, NO_COLOR="1")
        full.update(BUILD_ENV)
        full.update(env)
        self.proc = subprocess.Popen(
            [RECON, *map(str, args)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=full,
            cwd=recon.cwd,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def describe(self) -> str:
        return f"--- recon {self.args} (exit {self.proc.poll()}) ---\n" + "\n".join(
            self.lines[-60:]
        )

    def wait_log(self, text: str, timeout: float = DEADLINE) -> str:
        """The first stderr line containing `text`."""

        def found() -> str | None:
            return next((line for line in self.lines if text in line), None)

        return wait_until(found, timeout, 0.05, self.describe)

    def status(self) -> dict[str, Any]:
        """`recon status -o json`."""
        data: dict[str, Any] = json.loads(self.recon.ok("status", "-o", "json").stdout)
        return data

    def _status_file(self) -> dict[str, Any] | None:
        """The file `recon status` reads (a command costs a second of start-up; reading the
        file first keeps the polling cheap)."""
        try:
            data: dict[str, Any] = json.loads(
                status_path(self.recon.home, self.recon.uri).read_text()
            )
        except (OSError, ValueError):
            return None
        return data

    def wait_status(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = DEADLINE
    ) -> dict[str, Any]:
        """`recon status -o json` once it satisfies predicate (and while the loop runs)."""
        last: dict[str, Any] = {}

        def check() -> dict[str, Any] | None:
            nonlocal last
            assert self.proc.poll() is None, f"the loop exited\n{self.describe()}"
            quick = self._status_file()
            if quick is None or not predicate(quick):
                last = quick or {}
                return None
            last = self.status()
            return last if predicate(last) else None

        return wait_until(
            check, timeout, 0.05, lambda: json.dumps(last, indent=1)[-3000:] + self.describe()
        )

    def wait_host(self, check: Callable[[], object], timeout: float = DEADLINE) -> None:
        """Until check() (which asks `recon get`) is true: asked again after each pass of the
        loop, as the host changes only in passes (status is written after the host is)."""
        seen: object = object()

        def poll() -> bool:
            nonlocal seen
            assert self.proc.poll() is None, f"the loop exited\n{self.describe()}"
            quick = self._status_file()
            mark = quick["runs"][-1]["started"] if quick and quick["runs"] else None
            if mark == seen:
                return False
            seen = mark
            return bool(check())

        wait_until(poll, timeout, 0.05, self.describe)

    def wait_pass_after(self, moment: float, timeout: float = DEADLINE) -> dict[str, Any]:
        """Status once a pass that started after `moment` (time.time()) has looked at the host
        (a pass that could not, such as one that found the host lock held, does not count)."""
        return self.wait_status(
            lambda s: any(r["started"] > moment and r["result"] != "failed" for r in s["runs"]),
            timeout,
        )

    def send(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = DEADLINE) -> int:
        """Signal the loop and wait for it to exit; its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


StartLoop = Callable[..., Loop]


@pytest.fixture
def start_loop(recon: Recon) -> Iterator[StartLoop]:
    """start_loop("watch", "-f", DIR, ..., env={...}): the loop as a subprocess, always ended
    when the test ends (however it ends)."""
    loops: list[Loop] = []

    def start(*args: str | Path, env: dict[str, str] | None = None) -> Loop:
        loop = Loop(recon, args, env or {})
        loops.append(loop)
        return loop

    yield start
    for loop in loops:
        loop.kill()


# --- reading status -----------------------------------------------------------------------------


def resource(status: dict[str, Any], ref: str) -> dict[str, Any]:
    entry: dict[str, Any] = status["resources"].get(ref) or {}
    return entry


def condition(status: dict[str, Any], ref: str) -> str | None:
    return resource(status, ref).get("condition")


def settled(status: dict[str, Any], refs: list[str] | None = None) -> bool:
    """A pass finished, it did not fail, and the resources (all, or refs) are Ready."""
    if not status["runs"] or status["runs"][-1]["result"] not in ("applied", "no changes"):
        return False
    wanted = refs if refs is not None else list(status["resources"])
    return bool(wanted) and all(condition(status, r) == "Ready" for r in wanted)


EXAMPLES = [
    "Container/cache-1",
    "HostPolicy/host",
    "Network/lan",
    "StoragePool/default",
    "Template/debian-12-base",
    "Template/debian-12-minimal",
    "VirtualMachine/db-1",
    "VirtualMachine/web-1",
]


def obj(recon: Recon, ref: str) -> dict[str, Any] | None:
    """`recon get -o json`, one object by "Kind/name", or None when it is not on the host."""
    return recon.objects().get(ref)


# --- an operator's second tool ---------------------------------------------------------------


@contextmanager
def host_lock(recon: Recon) -> Iterator[None]:
    """recon's host lock, taken as another recon (or a well-behaved tool) would: waits for a
    pass of the loop to end, and keeps the loop off the host until released."""
    lock = HostLock(recon.home, recon.uri)

    def acquired() -> bool:
        try:
            lock.acquire()
        except HostLocked:
            return False
        return True

    wait_until(acquired)
    try:
        yield
    finally:
        lock.release()


@contextmanager
def operator(recon: Recon, other_tool: OtherTool) -> Iterator[libvirt.virConnect]:
    """Changes the embedded host from this (other) process, between two passes of the loop,
    holding the host lock so that neither overwrites the other's work."""
    with host_lock(recon), other_tool(recon.host_xml) as conn:
        yield conn


def scrape(port: int) -> str:
    """The Prometheus text exposition served by --metrics-addr 127.0.0.1:PORT."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text: str = response.read().decode()
        return text


def metric(port: int, sample: str) -> float:
    """The value of one sample, e.g. 'recon_queue_depth' or 'x_total{kind="VM"}'; 0 if absent."""
    for line in scrape(port).splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- git ---------------------------------------------------------------------------------------

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Operator",
    "GIT_AUTHOR_EMAIL": "operator@example.invalid",
    "GIT_COMMITTER_NAME": "Test Operator",
    "GIT_COMMITTER_EMAIL": "operator@example.invalid",
    # The commits must not depend on the machine's git configuration (signing, hooks, ...).
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, f"git {args}: {result.stderr}"
    return result.stdout.strip()


class GitRepo:
    """A bare repository (the remote recon follows, over file://) and a work tree that pushes
    to it. The example manifests live under node-1/ on branch main."""

    def __init__(self, root: Path) -> None:
        self.remote = root / "remote.git"
        self.work = root / "work"
        root.mkdir(parents=True, exist_ok=True)
        git(root, "init", "-q", "--bare", "-b", "main", str(self.remote))
        git(root, "init", "-q", "-b", "main", str(self.work))
        git(self.work, "remote", "add", "origin", self.url)
        shutil.copytree(ROOT / "manifests", self.node)

    @property
    def url(self) -> str:
        return self.remote.resolve().as_uri()

    @property
    def node(self) -> Path:
        return self.work / "node-1"

    def git(self, *args: str) -> str:
        return git(self.work, *args)

    def commit(self, message: str) -> str:
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "-m", message)
        return git(self.work, "rev-parse", "HEAD")

    def push(self, *, force: bool = False) -> None:
        git(self.work, "push", "-q", *(["--force"] if force else []), "origin", "main")

    def commit_and_push(self, message: str) -> str:
        sha = self.commit(message)
        self.push()
        return sha


@pytest.fixture
def repo(tmp_path: Path, example_templates: None) -> GitRepo:
    return GitRepo(tmp_path / "git")
