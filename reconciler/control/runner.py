"""The loop itself: take the next key off the work queue, run a pass through the Controller,
schedule the next look (after a success: the resync; after a failure: the key's backoff), and
keep memory quiet between passes."""

from __future__ import annotations

import gc
import time

from reconciler.control.loop import SET_KEY, Controller, DesiredSource
from reconciler.control.queue import Backoff, WorkQueue
from reconciler.model.errors import ReconError


def _settle_memory() -> None:
    """Between passes: collect what the pass left, then move everything that survives (the
    manifests, the kept host's parses) out of the collector's sight. Otherwise a full
    collection, every few passes, walks all of it in the middle of a pass: 30-90 ms at a
    thousand resources, the slowest passes of a watch. What is frozen is still freed when
    nothing refers to it; only a reference cycle among frozen objects would stay, and the
    loop's long-lived objects form none."""
    gc.collect()
    gc.freeze()


def run_loop(
    controller: Controller, queue: WorkQueue, desired: DesiredSource, backoff: Backoff | None = None
) -> None:
    """Until stopped: take the next key, reconcile, schedule the next look."""
    backoff = backoff or Backoff()
    options = controller.options
    queue.add(SET_KEY)
    look = options.settings_resync
    next_look = time.monotonic() + look
    while not controller.stopping.is_set():
        key = queue.get(timeout=0.5)
        controller.metrics.queue_depth(queue.depth())
        if key is None:
            if look > 0 and time.monotonic() >= next_look:
                next_look = time.monotonic() + look
                if controller.host_settings_changed():
                    queue.add(SET_KEY)  # held by a backoff like a host event
            continue
        try:
            state, revision = desired()
            outcome = controller.reconcile(state, revision)
        except ReconError as exc:
            controller.log.error("cannot read the desired state", extra={"error": str(exc)})
            controller.source_failed(f"cannot read the desired state: {exc}")
            outcome = "retry"
        except BaseException:
            queue.done(key)
            raise
        if outcome in ("retry", "stalled"):
            # Held back in the queue itself: the failed attempt's own host events (and any
            # other "look again") wait for the retry; only a new desired state does not. A
            # refused pass (a missing secret, admission) is held too: host events cannot
            # change the answer, and each would repeat it.
            retry_in = backoff.failure(key)
            controller.log.info("retrying after a backoff", extra={"retry_in": retry_in})
            queue.done(key, retry_in=retry_in)
        else:
            backoff.success(key)
            queue.done(key)
        if controller.stopping.is_set():
            break
        _settle_memory()
        if outcome not in ("retry", "stalled"):
            queue.add(key, options.resync)
