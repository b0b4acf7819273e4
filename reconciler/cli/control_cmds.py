"""`recon watch`, `recon sync` and `recon status`: the control loop from the command line.

main.py imports this module only when one of these commands is named (it brings watchdog and
prometheus_client); this module imports no other command module.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

import click

from reconciler.cli.builds import prepare_builds
from reconciler.cli.host import KeptHost, host_uri
from reconciler.cli.logs import setup_logging
from reconciler.cli.manifests import git_revision
from reconciler.cli.output import print_json
from reconciler.cli.params import HOST_PORT, POSITIVE_SECONDS, SECONDS, SET_NAME
from reconciler.cli.render import table
from reconciler.control.desired import Desired, FileSet
from reconciler.control.drift import POLICIES
from reconciler.control.loop import SET_KEY, Controller, LoopOptions
from reconciler.control.metrics import PrometheusMetrics
from reconciler.control.queue import WorkQueue
from reconciler.control.runner import run_loop
from reconciler.control.sources import FileWatcher, GitError, GitSource
from reconciler.control.status import Status, load_status, status_path
from reconciler.load.sources import read_sources
from reconciler.load.validate import validate_documents
from reconciler.model.errors import ReconError
from reconciler.model.resource import Resource
from reconciler.providers.base import HostUnreachable, Provider

# A host change often comes as a few events (a domain stopped, then undefined): one pass.
HOST_EVENT_DELAY = 0.1


def loop_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--prune", is_flag=True, help="Delete owned objects no manifest names."),
        click.option(
            "--set",
            "set_name",
            type=SET_NAME,
            default="default",
            show_default=True,
            help="The named set these manifests form (scope of --prune).",
        ),
        click.option("--allow-empty", is_flag=True, help="Allow an empty desired set."),
        click.option(
            "--drift",
            type=click.Choice(POLICIES),
            default="heal",
            show_default=True,
            help="What to do when the host drifts; per resource: the recon.dev/drift annotation.",
        ),
        click.option(
            "--resync",
            type=POSITIVE_SECONDS,
            default=300.0,
            show_default=True,
            help="Seconds between full resyncs of the host.",
        ),
        click.option(
            "--settings-resync",
            type=SECONDS,
            default=15.0,
            show_default=True,
            help="Seconds between cheap looks at what no host event reports (the memory "
            "cgroups holding guarantees); a pass follows when one differs. 0: off.",
        ),
        click.option("--allow-replace", is_flag=True, help="Allow changes that recreate."),
        click.option(
            "--allow-restart",
            is_flag=True,
            help="Allow changes that restart a running guest (per resource: the "
            'recon.dev/allow-restart: "true" annotation). Off: shown Stalled in status.',
        ),
        click.option("--delete-volumes", is_flag=True, help="With --prune: delete disks too."),
        click.option("--shutdown-timeout", type=SECONDS, default=60.0, show_default=True),
        click.option(
            "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True
        ),
        click.option(
            "--metrics-addr",
            type=HOST_PORT,
            metavar="HOST:PORT",
            help="Serve Prometheus metrics here, e.g. 127.0.0.1:9464.",
        ),
        click.option(
            "--export-state",
            type=click.Path(dir_okay=False, path_type=Path),
            help="After each pass, write the host's state here (atomically) for "
            "`recon diff --host-state`.",
        ),
        click.option(
            "--no-host-events",
            is_flag=True,
            help="Do not subscribe to host events; rely on --resync.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _run(
    ctx: click.Context,
    desired: Callable[[], tuple[Desired, str | None]],
    source: str,
    kw: dict[str, Any],
    extra: Callable[[WorkQueue, threading.Event], Callable[[], None]],
) -> None:
    log = setup_logging(kw["log_format"])
    options = LoopOptions(
        prune=kw["prune"],
        set_name=kw["set_name"],
        allow_empty=kw["allow_empty"],
        drift=kw["drift"],
        resync=kw["resync"],
        settings_resync=kw["settings_resync"],
        allow_replace=kw["allow_replace"],
        allow_restart=kw["allow_restart"],
        delete_volumes=kw["delete_volumes"],
        shutdown_timeout=kw["shutdown_timeout"],
        export_state=kw["export_state"],
        secrets=ctx.obj["secrets"],
    )
    uri = host_uri(ctx)
    path = status_path(ctx.obj["home"], uri)
    status = load_status(path)
    status.host, status.source = uri, source
    metrics = PrometheusMetrics()
    if kw["metrics_addr"]:
        try:
            metrics.serve(kw["metrics_addr"])
        except (OSError, ValueError) as exc:
            # A port already taken, or not HOST:PORT: said in the log's own format, exit 2.
            log.error(
                "cannot serve metrics", extra={"address": kw["metrics_addr"], "error": str(exc)}
            )
            raise SystemExit(2) from None
    host = KeptHost(ctx)
    home = ctx.obj["home"]
    failed_builds: dict[str, tuple[float, str]] = {}

    def builds(resources: Sequence[Resource], report: Callable[[str], None]) -> dict[str, str]:
        return prepare_builds(resources, home, report, failed=failed_builds)

    # Host events are subscribed before the first pass; when the host cannot be reached yet
    # (libvirtd not started), after the first pass that reaches it.
    subscribe_later = False

    @contextmanager
    def session() -> Iterator[Provider]:
        nonlocal subscribe_later
        with host.session() as provider:
            yield provider
            if subscribe_later:
                subscribe_later = False
                subscribe(provider, late=True)

    def settings() -> list[str]:
        # The kept provider only: no lock, no reopening, no call to the daemon.
        return host.provider.host_settings_changed() if host.provider is not None else []

    controller = Controller(session, status, path, options, log, metrics, builds, settings)
    queue = WorkQueue()

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info(
            "stopping: the change under way finishes first",
            extra={"signal": signal.Signals(signum).name},
        )
        controller.stopping.set()
        queue.close()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stops: list[Callable[[], None]] = [extra(queue, controller.stopping)]

    def on_event(why: str) -> None:
        log.info("host event", extra={"why": why})
        queue.add(SET_KEY, HOST_EVENT_DELAY)

    def on_connection(up: bool, why: str) -> None:
        controller.host_connection(up, why)
        # Lost: a pass says so in the status (held by a backoff like any other).
        # Back: what changed while no event could come is looked at now.
        queue.add(SET_KEY, 0.0, urgent=up)

    def subscribe(provider: Provider, *, late: bool = False) -> None:
        try:
            stops.append(provider.subscribe(on_event, on_connection))
        except (ReconError, OSError) as exc:
            log.warning("no host events; relying on resync", extra={"error": str(exc)})
        else:
            if late:  # said only when the start said it could not
                log.info("host events subscribed")

    if not kw["no_host_events"]:
        try:
            first = host.open()
        except HostUnreachable as exc:
            subscribe_later = True
            log.warning(
                "host unreachable; host events are subscribed once it answers",
                extra={"error": str(exc)},
            )
        except (ReconError, OSError) as exc:
            log.warning("no host events; relying on resync", extra={"error": str(exc)})
        else:
            subscribe(first)
    log.info("started", extra={"source": source, "host": uri})
    try:
        run_loop(controller, queue, desired)
    finally:
        for fn in stops:
            try:
                fn()
            except Exception as exc:  # a source that cannot stop cleanly must not make it exit 1
                log.warning("while stopping a source", extra={"error": str(exc)})
        host.close()
        log.info("stopped")


@click.command()
@click.option(
    "-f",
    "--filename",
    "paths",
    multiple=True,
    required=True,
    help="Manifest files or directories to watch.",
)
@click.option(
    "--debounce",
    # Long enough for an editor's save (a temporary file renamed over the old one takes
    # milliseconds); a file caught half written keeps its last good version until the
    # write that completes it starts another pass.
    type=SECONDS,
    default=0.05,
    show_default=True,
    help="Quiet seconds after a file change before reconciling.",
)
@loop_options
@click.pass_context
def watch(ctx: click.Context, /, paths: tuple[str, ...], debounce: float, **kw: Any) -> None:
    """Keep the host equal to manifest files: on every change, on host events, and on a timer.

    A file that does not parse keeps its last good version (and the error is reported); a
    file deleted removes its resources (with --prune). Stop with SIGTERM or Ctrl-C.
    """
    files = FileSet(paths)

    def desired() -> tuple[Desired, str | None]:
        return files.load(), git_revision(paths)

    def start_watcher(queue: WorkQueue, _stopping: threading.Event) -> Callable[[], None]:
        watcher = FileWatcher(paths, debounce, lambda: queue.add(SET_KEY, urgent=True))
        watcher.start()
        return watcher.stop

    _run(ctx, desired, "files: " + ", ".join(paths), kw, start_watcher)


@click.command()
@click.option("--repo", required=True, help="Git repository URL (file://, ssh, https).")
@click.option("--ref", default="main", show_default=True, help="Branch to follow.")
@click.option("--path", "subdir", default="", help="Directory of manifests inside the repo.")
@click.option(
    "--interval",
    type=POSITIVE_SECONDS,
    default=60.0,
    show_default=True,
    help="Seconds between fetches. SIGUSR1 fetches now.",
)
@loop_options
@click.pass_context
def sync(
    ctx: click.Context, /, repo: str, ref: str, subdir: str, interval: float, **kw: Any
) -> None:
    """Keep the host equal to a branch of a git repository (GitOps).

    A commit is applied as a whole or not at all: an invalid commit keeps the last good one
    applied and reports why. Each object records the commit that last changed it.
    """
    digest = hashlib.sha256(repo.encode()).hexdigest()[:16]
    git = GitSource(repo, ref, subdir, ctx.obj["home"] / "git" / digest)
    # "good": the last commit whose manifests were valid (the loop's last good state).
    head: dict[str, str | None] = {"sha": None, "error": None, "good": None}
    lock = threading.Lock()

    def fetch() -> bool:
        try:
            sha = git.fetch()
        except (GitError, OSError) as exc:
            with lock:
                new_error = str(exc) != head["error"]
                head["error"] = str(exc)
            if new_error:  # said once, not at every interval
                logging.getLogger("recon").warning("git fetch failed", extra={"error": str(exc)})
            return False
        with lock:
            changed = sha != head["sha"]
            head["sha"], head["error"] = sha, None
        return changed

    def desired() -> tuple[Desired, str | None]:
        with lock:
            sha, error = head["sha"], head["error"]
        if sha is None:
            raise GitError(error or f"{repo}: no commit fetched yet")
        good = head["good"]
        root = git.checkout(sha, keep=[good] if good else [])
        docs, diags = read_sources([str(root)])
        result = validate_documents(docs)
        base = str(git.workdir / "commits" / sha) + "/"
        diags = [replace(d, file=d.file.removeprefix(base)) for d in diags + result.diagnostics]
        if diags:
            return Desired(None, diags, complete=False), sha
        head["good"] = sha
        return Desired(result.resources, []), sha

    def start_fetcher(queue: WorkQueue, stopping: threading.Event) -> Callable[[], None]:
        wake = threading.Event()

        def on_usr1(_signum: int, _frame: FrameType | None) -> None:
            wake.set()

        # Before the first fetch, which can take a while: a SIGUSR1 (`systemctl reload`)
        # arriving meanwhile must not kill the process (the default action of SIGUSR1).
        signal.signal(signal.SIGUSR1, on_usr1)
        fetch()

        def loop() -> None:
            while not stopping.is_set():
                wake.wait(interval)
                wake.clear()
                if fetch():
                    queue.add(SET_KEY, urgent=True)  # a new commit: not held by a backoff

        thread = threading.Thread(target=loop, name="git-fetch", daemon=True)
        thread.start()
        return wake.set

    _run(ctx, desired, f"git: {repo}#{ref}" + (f":{subdir}" if subdir else ""), kw, start_fetcher)


def _status_shown(ctx: click.Context) -> Status:
    """The status of the host --connect names; without --connect, of the host a loop from
    this RECON_HOME served last (a loop run with --connect qemu:///system records its status
    under that host, not the embedded one). Each status file says which host it is about."""
    home: Path = ctx.obj["home"]
    uri = host_uri(ctx)
    if ctx.obj["uri"] is not None:
        return load_status(status_path(home, uri))
    found = [load_status(p) for p in sorted((home / "status").glob("*.json"))]
    found = [st for st in found if st.runs and st.host]
    if not found:
        return load_status(status_path(home, uri))
    latest = max(found, key=lambda st: st.runs[-1].started)
    if latest.host != uri or len(found) > 1:
        others = sorted(st.host for st in found if st is not latest)
        click.echo(
            f"note: showing the host a loop served last from this RECON_HOME: {latest.host}"
            + (f" (also recorded: {', '.join(others)})" if others else "")
            + "; choose with --connect",
            err=True,
        )
    return latest


@click.command()
@click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.pass_context
def status(ctx: click.Context, output: str) -> None:
    """What the loop last saw: each resource Ready / Reconciling / Stalled / Drifted, with the
    reason, the last applied revision, the last error, and the last runs. Reads no host.
    While the loop cannot reach the host, what it last saw Ready is shown Unknown."""
    data = _status_shown(ctx).as_shown()
    if output == "json":
        print_json(data.to_json())
        return
    if not data.runs:
        click.echo(
            "no reconcile has run against this host yet (start `recon watch` or `recon sync`)"
        )
        return
    reach = f" (UNREACHABLE: {data.host_error})" if data.host_error else ""
    click.echo(
        f"host: {data.host}{reach}\nsource: {data.source}\nrevision: {data.revision or '-'}"
        f" (last good: {data.last_good_revision or '-'})\n"
    )
    rows = [["RESOURCE", "STATUS", "REASON", "REVISION", "LAST ERROR"]]
    for ref, st in sorted(data.resources.items()):
        rows.append(
            [
                ref,
                st.condition,
                st.reason,
                (st.last_applied_revision or "-")[:12],
                (st.last_error or "")[:80],
            ]
        )
    click.echo(table(rows))
    click.echo("\nlast runs:")
    rows = [["STARTED", "DURATION", "REVISION", "RESULT", "CHANGES"]]
    for run in data.runs[-5:]:
        rows.append(
            [
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started)),
                f"{run.duration:.3f}s",
                (run.revision or "-")[:12],
                run.result,
                str(run.changes),
            ]
        )
    click.echo(table(rows))
    for error in data.errors:
        click.echo(error, err=True)
    last = data.runs[-1]
    if last.error and last.error not in data.errors:
        # Why the last pass failed or was refused (a held lock, an object recon does not own).
        click.echo(f"last run {last.result}: {last.error}", err=True)
