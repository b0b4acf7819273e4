"""Failpoints: named places in an apply where a test can kill the process or inject an error.

Switched on from the environment, so tests drive the real `recon` command:
- RECON_KILL_AT=N      the N-th failpoint crossed kills the process (os._exit(137)), as a
                       SIGKILL would: no cleanup, no flush. Used to kill an apply at every step.
- RECON_FAIL_AT=N      the N-th failpoint crossed raises an injected host error instead.
- RECON_FAILPOINT_LOG=PATH  append the name of every failpoint crossed (to count the steps).
Nothing happens when none is set; crossing a failpoint is then one dict lookup.
"""

from __future__ import annotations

import os

from reconciler.model.errors import ReconError

_count = 0


class InjectedFault(ReconError):
    """An error a test asked for through RECON_FAIL_AT."""


def _limit(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value and value.isdigit() else None


def failpoint(name: str) -> None:
    global _count
    if not (
        "RECON_KILL_AT" in os.environ
        or "RECON_FAIL_AT" in os.environ
        or "RECON_FAILPOINT_LOG" in os.environ
    ):
        return
    _count += 1
    log = os.environ.get("RECON_FAILPOINT_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"{_count} {name}\n")
    if _limit("RECON_KILL_AT") == _count:
        os._exit(137)
    if _limit("RECON_FAIL_AT") == _count:
        raise InjectedFault(f"injected fault at {name}")
