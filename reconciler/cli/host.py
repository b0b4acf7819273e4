"""The host a command works on, as the global options (--connect, --home) name it.

`open_host` opens it for one command and closes it after; `EarlyObservation` reads it in a
thread while the command loads its manifests; `KeptHost` keeps it open across the passes of a
loop (`recon watch`, `recon sync`). `host_uri` is the URI both lock it by. No
command lives here: the command modules import this one, never the other way round.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import NoReturn

import click

from reconciler.cli.output import fail
from reconciler.engine.lock import HostLock
from reconciler.model.errors import ReconError
from reconciler.providers.base import Observation, Provider
from reconciler.providers.registry import open_provider


def host_uri(ctx: click.Context) -> str:
    """The host's URI: --connect, or the embedded host's in --home. The host lock and the
    loop's status file are keyed by it."""
    from reconciler.providers.libvirt.embedded import EmbeddedHost

    uri: str | None = ctx.obj["uri"]
    return uri or EmbeddedHost(ctx.obj["home"] / "host.xml").uri


def _cannot_open(exc: ReconError) -> NoReturn:
    fail(str(exc), exc.hint or "check --connect and that libvirtd is running", code=2)


@contextmanager
def open_host(ctx: click.Context, *, lock: bool) -> Iterator[Provider]:
    """The host, open for one command; exits 2 when it cannot be opened."""
    home: Path = ctx.obj["home"]
    uri: str | None = ctx.obj["uri"]
    guard: AbstractContextManager[object] = nullcontext()
    if lock:
        # Taken before the host is opened and released after it is closed: the embedded host
        # is read when opened and written when closed, so a run that read it before another
        # run's last write would write the old state back over that run's work.
        guard = HostLock(home, host_uri(ctx))
    with guard:
        try:
            provider = open_provider("libvirt", uri, home)
        except ReconError as exc:
            _cannot_open(exc)
        try:
            yield provider
        finally:
            provider.close()


class EarlyObservation:
    """The host opened, observed and closed in a thread of its own, started before the
    command loads its manifests (`recon diff`). Both are long at scale and neither needs the
    other: opening the embedded host is the test driver parsing the node file in C, and a
    real host's observation is mostly waiting on libvirtd, while the manifests are Python
    parsing YAML. `result()` gives the observation, or fails as `open_host` would, only
    after the manifests loaded, so their errors still come first and alone.

    The thread closes its own connection, after handing the observation over. A command that
    fails before asking, or ends while that close runs, leaves the thread behind (a daemon:
    the process does not wait for it), which is safe because reading writes nothing. A home with
    no embedded host yet is not opened early: that open would create it."""

    def __init__(self, ctx: click.Context) -> None:
        self._ctx = ctx
        self._observation: Observation | None = None
        self._open_error: ReconError | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        if ctx.obj["uri"] is not None or (ctx.obj["home"] / "host.xml").exists():
            self._thread = threading.Thread(target=self._read, name="recon-observe", daemon=True)
            self._thread.start()

    def _read(self) -> None:
        try:
            provider = open_provider(
                "libvirt", self._ctx.obj["uri"], self._ctx.obj["home"], read_only=True
            )
        except ReconError as exc:
            self._open_error = exc
            self._ready.set()
            return
        except BaseException as exc:  # handed to the command's thread, raised there
            self._error = exc
            self._ready.set()
            return
        try:
            try:
                self._observation = provider.observe()
                provider.flush()
            except BaseException as exc:
                self._error = exc
            # The command goes on with the plan while the connection closes (freeing a large
            # test-driver host takes a while in C).
            self._ready.set()
        finally:
            # Nothing is left for it to say: what it writes, flush() above already wrote (and
            # any error of it went to the command), and a dead connection closes silently.
            with suppress(Exception):
                provider.close()

    def result(self) -> Observation:
        if self._thread is None:
            with open_host(self._ctx, lock=False) as provider:
                return provider.observe()
        self._ready.wait()
        if self._open_error is not None:
            _cannot_open(self._open_error)
        if self._error is not None:
            raise self._error
        assert self._observation is not None
        return self._observation


class KeptHost:
    """The host a loop reconciles, opened once and kept open across passes while it stays
    current: reopening the embedded host means the test driver parsing the whole node file
    again (most of a pass at a thousand guests). Another process that writes the host
    between two passes (`recon apply`, an operator's tool) makes it stale, and the next
    pass opens it again. Every pass holds the host lock from its first read to its last
    write, like `apply`, so other recon commands run between passes and see a consistent
    host."""

    def __init__(self, ctx: click.Context) -> None:
        self.home: Path = ctx.obj["home"]
        self.uri: str | None = ctx.obj["uri"]
        self.lock_uri = host_uri(ctx)
        self.provider: Provider | None = None

    def open(self) -> Provider:
        """The kept provider, opened if there is none. Reading needs no lock (the node file
        is replaced whole); whether what was read is still the host is checked under it."""
        if self.provider is None:
            self.provider = open_provider("libvirt", self.uri, self.home, reuse=True)
        return self.provider

    @contextmanager
    def session(self) -> Iterator[Provider]:
        with HostLock(self.home, self.lock_uri):
            if self.provider is not None and not self.provider.current():
                self.close()
            provider = self.open()
            try:
                yield provider
                provider.flush()
            except BaseException:
                # A pass that failed may have lost its connection, or left a change half
                # seen: the next pass starts from a fresh look at the host.
                self.close()
                raise

    def close(self) -> None:
        provider, self.provider = self.provider, None
        if provider is not None:
            with suppress(ReconError, OSError):
                provider.close()
