"""The reconcile loop: take a key off the queue, re-read the desired state, re-observe the host,
plan, apply what the drift policy allows, record status. Level-triggered throughout."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from reconciler.control.conflict import ConflictGuard, brief
from reconciler.control.desired import Desired
from reconciler.control.drift import (
    RESTART_ANNOTATION,
    allows_restart,
    is_suspended,
    split_plan,
)
from reconciler.control.metrics import Metrics, NoMetrics
from reconciler.control.status import (
    BUILDING,
    DRIFTED,
    READY,
    RECONCILING,
    STALLED,
    SUSPENDED,
    Run,
    Status,
    save_status,
)
from reconciler.engine.apply import apply_plan
from reconciler.engine.plan import PlanOptions, PlanRefused, make_plan
from reconciler.load.secrets import SecretPolicy, read_secrets
from reconciler.model.errors import ReconError
from reconciler.model.plan import Action, Change, Disruption
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.providers.base import ApplyContext, HostUnreachable, Observation, Provider
from reconciler.providers.snapshot import write_host_state

SET_KEY = "set"


@dataclass(frozen=True, slots=True)
class LoopOptions:
    prune: bool = False
    set_name: str = "default"
    allow_empty: bool = False
    drift: str = "heal"
    resync: float = 300.0
    # Seconds between cheap looks at host-side settings no event reports (a guarantee's
    # cgroup): a pass is queued when one differs. 0: only at the resync.
    settings_resync: float = 15.0
    allow_replace: bool = False
    # Changes that restart a running guest: refused (Stalled, NeedsRestart) unless this, or
    # the resource's recon.dev/allow-restart annotation, allows them.
    allow_restart: bool = False
    delete_volumes: bool = False
    shutdown_timeout: float = 60.0
    # Where each pass publishes the host's state (`--export-state`), for pipelines that plan
    # without reaching the host (`recon diff --host-state`).
    export_state: Path | None = None
    # Where secrets may be read from; each pass reads them all before it plans.
    secrets: SecretPolicy | None = None


HostSession = Callable[[], AbstractContextManager[Provider]]
DesiredSource = Callable[[], tuple[Desired, str | None]]
# Makes the built Templates of a set ready before a pass takes the host (reconciler.build,
# given by the CLI); template name -> why its build failed.
# Its second argument reports progress: "Template/NAME: stage".
Builds = Callable[[Sequence[Resource], Callable[[str], None]], Mapping[str, str]]


class Controller:
    """One reconcile pass at a time; a pass never stops half way through a change."""

    def __init__(
        self,
        session: HostSession,
        status: Status,
        status_file: Path,
        options: LoopOptions,
        log: logging.Logger,
        metrics: Metrics | None = None,
        builds: Builds | None = None,
        settings: Callable[[], list[str]] | None = None,
    ) -> None:
        self.session = session
        # Asks the kept provider which guests' host-side settings changed (no lock, no call
        # to the daemon); None: nothing to ask.
        self.settings = settings
        self.builds = builds
        self._status_written = 0.0
        self.status = status
        self.status_file = status_file
        self.options = options
        self.log = log
        self.metrics = metrics or NoMetrics()
        self.stopping = threading.Event()
        self.last_good: tuple[list[Resource], str | None] | None = None
        self.conflicts = ConflictGuard()

    def reconcile(self, desired: Desired, revision: str | None) -> str:
        """One pass. Returns "ok", "retry" (temporary failure: back off), "stalled", or
        "stopped" (the loop was asked to stop half way through the plan)."""
        started = time.time()
        clock = time.monotonic()
        self.status.errors = [d.render() for d in desired.diagnostics]
        for diag in desired.diagnostics:
            self.log.error("manifest error", extra={"diagnostic": diag.render()})
        if desired.kept:
            self.log.warning(
                "keeping the last good version of broken files", extra={"files": desired.kept}
            )
        prune = self.options.prune and desired.complete
        # `revision` is what the source offers now (recorded as the current revision, even
        # when invalid); `applied` is what this pass applies and stamps.
        self.status.revision = revision
        if desired.resources is None:
            problems = f"{len(desired.diagnostics)} problems in the manifests"
            if self.last_good is None:
                return self._finish(
                    started,
                    clock,
                    revision,
                    "invalid",
                    0,
                    f"{problems}; nothing was applied",
                )
            # Keep the host on the last good state (healing drift), without pruning.
            resources, applied = self.last_good
            prune = False
            result_if_ok = "invalid"
            error: str | None = f"{problems}; the last good revision stays applied"
        else:
            resources, applied = desired.resources, revision
            self.last_good = (resources, revision)
            result_if_ok = ""
            error = None
        try:
            outcome, changes, failures = self._pass(resources, applied, prune)
        except ReconError as exc:
            if isinstance(exc, HostUnreachable):
                self.status.host_error = str(exc)
            self.metrics.error(type(exc).__name__)
            self.log.error("reconcile failed", extra={"error": str(exc)})
            self.status.errors.append(str(exc))
            temporary = exc.temporary or not isinstance(exc, PlanRefused)
            return self._finish(
                started,
                clock,
                revision,
                "failed" if temporary else "refused",
                0,
                str(exc),
                "retry" if temporary else "stalled",
            )
        if outcome == "ok" and result_if_ok == "":
            self.status.last_good_revision = revision
        if result_if_ok == "" and desired.complete:
            # What no manifest names any more is not this loop's to report (with --prune it
            # was deleted; without, it is left on the host, unmanaged by the loop).
            wanted = {str(r.ref) for r in resources}
            for stale in set(self.status.resources) - wanted:
                del self.status.resources[stale]
        result = result_if_ok or ("applied" if changes else "no changes")
        if outcome != "ok":
            result = "stopped" if outcome == "stopped" else "failed"
        if failures:
            # Each failure said where an operator looks: the log (field `error`), the run and
            # the status's errors (the resource itself carries it as its last error).
            for ref, message in failures:
                self.log.error("reconcile failed", extra={"resource": ref, "error": message})
            said = [f"{ref}: {message}" for ref, message in failures]
            self.status.errors.extend(said)
            error = "; ".join(([error] if error else []) + said)
        return self._finish(started, clock, revision, result, changes, error, outcome)

    def host_settings_changed(self) -> bool:
        """Whether a host-side setting changed behind recon's back since the last pass."""
        if self.settings is None:
            return False
        try:
            changed = self.settings()
        except (ReconError, OSError):
            return False  # the next pass says what is wrong
        if changed:
            self.log.warning("host settings changed", extra={"guests": changed})
        return bool(changed)

    def host_connection(self, up: bool, why: str) -> None:
        """The host's event connection was lost or is back (called from another thread).
        Only logged here: the pass this prompts records it in the status."""
        if up:
            self.log.info("host connection back; events subscribed again")
        else:
            self.log.warning("host connection lost", extra={"error": why})

    def source_failed(self, error: str) -> None:
        """The desired state could not be read at all (a git remote unreachable, a branch
        that does not exist yet): recorded as a failed run, so `recon status` says why."""
        self.metrics.error("source")
        self.status.errors = [error]
        self._finish(time.time(), time.monotonic(), self.status.revision, "failed", 0, error)

    def _building(self, message: str) -> None:
        """A build's progress: logged, and the Template shown as Building with the stage in
        `recon status` (written at most once a second)."""
        self.log.info(message)
        ref, sep, stage = message.partition(": ")
        if not sep or not ref.startswith("Template/"):
            return
        self.status.set(ref, BUILDING, stage[:200])
        now = time.monotonic()
        if now - self._status_written > 1.0:
            self._status_written = now
            save_status(self.status_file, self.status)

    def _pass(
        self, resources: Sequence[Resource], revision: str | None, prune: bool
    ) -> tuple[str, int, list[tuple[str, str]]]:
        """One pass over the host: the outcome, how many changes were applied, and the
        changes that failed (resource, error)."""
        values: dict[tuple[ResourceRef, str], str] = {}
        if self.options.secrets is not None:
            values, problems = read_secrets(resources, self.options.secrets)
            if problems:
                # Nothing of this pass is applied: a stamp must never claim a secret that was
                # not there. A permanent problem until the operator provides it.
                for res in resources:
                    self.status.set(str(res.ref), STALLED, "SecretMissing")
                raise PlanRefused(
                    "; ".join(d.render().replace("\n", " ") for d in problems)
                    + "; nothing was applied"
                )
        options = PlanOptions(
            prune=prune,
            set_name=self.options.set_name,
            allow_empty=self.options.allow_empty,
            revision=revision,
            delete_volumes=self.options.delete_volumes,
            fingerprint=False,
            secrets=values if self.options.secrets is not None else None,
        )
        build_errors = self.builds(resources, self._building) if self.builds is not None else {}
        with self.session() as provider:
            observation = provider.observe()
            self.status.host_error = None  # it answered
            try:
                plan = make_plan(resources, observation, options)
            except PlanRefused as exc:
                for res in resources:
                    self.status.set(str(res.ref), STALLED, "PlanRefused", error=str(exc))
                raise
            # What was on the host at some point: a create for it is drift (someone deleted
            # it). Drifted counts: a deletion reported under `warn` stays drift on every pass.
            previously = {
                ref
                for ref, st in self.status.resources.items()
                if st.last_applied_revision is not None or st.condition in (READY, DRIFTED)
            }
            split = split_plan(plan, resources, observation, self.options.drift, previously)
            for change, policy in split.drift:
                self.metrics.drift(change.ref.kind, policy)
                self.log.warning(
                    "drift",
                    extra={
                        "resource": str(change.ref),
                        "policy": policy,
                        "fields": [f.path for f in change.fields],
                    },
                )
                if policy == "warn":
                    self.status.set(
                        str(change.ref),
                        DRIFTED,
                        "host differs: " + ", ".join(f.path for f in change.fields),
                    )
            # Suspended whether or not the host differs: the loop does not look after them.
            suspended = {r.ref for r in resources if is_suspended(r)}
            for ref in suspended:
                self.status.set(str(ref), SUSPENDED, "recon.dev/suspend annotation")
            todo = split.plan
            held: set[str] = set()  # refused on this pass: stay Stalled, not "matches"
            hashes = {str(r.ref): r.desired_hash() for r in resources}
            fought = self.conflicts.check(todo.changes, hashes, _stamped(observation))
            for key, why in fought.items():
                self.log.warning("conflict", extra={"resource": key, "error": why})
                self.status.set(key, STALLED, "Conflict", error=why)
            held.update(fought)
            todo.changes = [c for c in todo.changes if str(c.ref) not in fought]
            if not self.options.allow_replace:
                blocked = [c for c in todo.changes if c.action is Action.REPLACE]
                held.update(str(c.ref) for c in blocked)
                for change in blocked:
                    self.status.set(
                        str(change.ref),
                        STALLED,
                        "NeedsReplace",
                        error="the change recreates it; run with --allow-replace",
                    )
                todo.changes = [c for c in todo.changes if c.action is not Action.REPLACE]
            if not self.options.allow_restart:
                by_ref = {r.ref: r for r in resources}
                restarts = [
                    c
                    for c in todo.changes
                    if c.disruption is Disruption.RESTART and not allows_restart(by_ref.get(c.ref))
                ]
                for change in restarts:
                    self._refuse_restart(change)
                held.update(str(c.ref) for c in restarts)
                todo.changes = [c for c in todo.changes if c not in restarts]
            for change in todo.changes:
                self.status.set(str(change.ref), RECONCILING, change.action.value)
            context = ApplyContext(
                resources={r.ref: r for r in resources},
                observation=observation,
                revision=revision,
                set_name=self.options.set_name,
                delete_volumes=self.options.delete_volumes,
                shutdown_timeout=self.options.shutdown_timeout,
                progress=lambda message: self.log.info(message),
                build_errors=build_errors,
                secrets=values,
            )
            result = apply_plan(
                todo, resources, provider, context, should_stop=self.stopping.is_set
            )
            if self.options.export_state is not None:
                # The host as this pass leaves it: observed again when the pass changed it.
                changed = bool(result.applied) or bool(result.failures)
                self._export(provider, None if changed else observation)
        self.conflicts.applied((c for c, _ in result.applied), hashes)
        if result.host_lost:
            self.status.host_error = result.failures[-1][1]
        touched = {c.ref for c, _ in result.applied}
        for change, _detail in result.applied:
            if change.action is Action.DELETE:
                self.status.resources.pop(str(change.ref), None)
            else:
                self.status.set(str(change.ref), READY, "applied", revision=revision or "")
        blocked_refs = {str(r) for r in suspended} | {
            str(c.ref) for c, p in split.drift if p == "warn"
        }
        for res in resources:
            key = str(res.ref)
            if res.ref in touched or key in blocked_refs or key in held:
                continue
            if res.ref not in {c.ref for c in todo.changes}:
                self.status.set(key, READY, "matches the host")
        if result.failures:
            for change, message in result.failures:
                self.metrics.error("apply")
                self.status.set(str(change.ref), RECONCILING, "ApplyFailed", error=message)
            for skipped in result.skipped:
                blocker = result.waits_for.get(skipped.ref)
                self.status.set(
                    str(skipped.ref),
                    RECONCILING,
                    f"waiting for {blocker}" if blocker else "waiting for an earlier change",
                )
            failures = [(str(c.ref), message) for c, message in result.failures]
            return "retry", len(result.applied), failures
        if result.skipped:
            # Asked to stop: the change under way finished, the rest was not started.
            for skipped in result.skipped:
                self.status.set(str(skipped.ref), RECONCILING, "not started: the loop stopped")
            return "stopped", len(result.applied), []
        return "ok", len(result.applied), []

    def _refuse_restart(self, change: Change) -> None:
        """A change that would restart a running guest, left undone and said: in the log and
        in the status, with what would change (as `recon diff` shows it)."""
        fields = [f for f in change.fields if f.disruption is Disruption.RESTART] or list(
            change.fields
        )
        shown = ", ".join(f"{f.path}: {brief(f.before)} -> {brief(f.after)}" for f in fields)
        self.log.warning(
            "not applied: the change restarts the guest",
            extra={"resource": str(change.ref), "fields": [f.path for f in fields]},
        )
        self.status.set(
            str(change.ref),
            STALLED,
            "NeedsRestart",
            error=f"the change restarts the running guest ({shown}); run the loop with "
            f'--allow-restart, or annotate the resource {RESTART_ANNOTATION}: "true"',
        )

    def _export(self, provider: Provider, observation: Observation | None) -> None:
        path = self.options.export_state
        assert path is not None
        try:
            write_host_state(path, observation or provider.observe())
        except (OSError, ReconError) as exc:
            # The host was reconciled; only its published picture is late. Said, not retried.
            self.metrics.error("export")
            self.log.error(
                "cannot export the host state", extra={"path": str(path), "error": str(exc)}
            )

    def _finish(
        self,
        started: float,
        clock: float,
        revision: str | None,
        result: str,
        changes: int,
        error: str | None,
        outcome: str = "stalled",
    ) -> str:
        duration = time.monotonic() - clock
        self.status.add_run(Run(started, round(duration, 4), revision, result, changes, error))
        save_status(self.status_file, self.status)
        self.metrics.observe_run(duration, result)
        self.log.info(
            "reconciled",
            extra={
                "result": result,
                "changes": changes,
                "revision": revision,
                "seconds": round(duration, 3),
            },
        )
        return outcome


def _stamped(observation: Observation) -> dict[str, str | None]:
    return {
        str(ref): obs.stamp.spec_hash if obs.stamp is not None else None
        for ref, obs in observation.objects.items()
    }
