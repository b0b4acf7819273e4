"""Asking before a disruptive apply, as an interactive user expects and CI never sees.

`apply` on a terminal (standard input and standard error both TTYs) asks before it restarts,
replaces or deletes anything, unless given --yes. Without a terminal it never asks: a pipeline
has nobody to answer, and its review is `diff` (exit 1 when changes are pending).
"""

from __future__ import annotations

import sys

import click

from reconciler.model.plan import Change, Disruption, Plan


def interactive() -> bool:
    """Someone at a terminal can answer: stdin to read from, stderr to ask on."""
    return sys.stdin.isatty() and sys.stderr.isatty()


def disruptive(plan: Plan) -> list[Change]:
    """The changes worth a question: a guest restarted, or an object destroyed."""
    return [c for c in plan.changes if c.disruption.rank >= Disruption.RESTART.rank]


def confirmed(plan: Plan) -> bool:
    """Whether to go on: always without a terminal or without a disruptive change."""
    changes = disruptive(plan)
    if not changes or not interactive():
        return True
    # Asked with the host locked and observed: what is confirmed is what will be applied.
    what = ", ".join(f"{c.ref} ({c.disruption.value})" for c in changes)
    return click.confirm(f"This apply will disrupt {what}. Go on?", default=False, err=True)
