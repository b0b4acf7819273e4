"""Progress of an apply, on standard error only: on a terminal one line, redrawn in place,
with a bar and the change under way; without one (CI, a pipe, a log) plain lines, one per
change and per note. Standard output carries only the result. No command lives here.
"""

from __future__ import annotations

import sys
from typing import TextIO

from reconciler.model.plan import Plan

_WIDTH = 20


class ApplyProgress:
    """The `progress` an apply reports to (ApplyContext.progress): the engine says when each
    change of the plan starts, a provider adds notes (a guest forced off)."""

    def __init__(self, plan: Plan, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total = len(plan.changes)
        # What the engine says as each change starts (engine/apply.py), to count them by.
        self.starts = {
            f"{c.action.symbol} {c.ref}: {c.action.value}...": i for i, c in enumerate(plan.changes)
        }
        self.line = ""

    def __call__(self, message: str) -> None:
        index = self.starts.get(message)
        if not self.tty:
            print(message, file=self.stream, flush=True)
            return
        if index is None:
            # A note stays on screen; the bar is drawn again under it.
            self._clear()
            print(message, file=self.stream)
            self._draw(self.line)
            return
        done = _WIDTH * index // max(self.total, 1)
        bar = "#" * done + "-" * (_WIDTH - done)
        self._draw(f"[{bar}] {index + 1}/{self.total} {message}")

    def _draw(self, line: str) -> None:
        self.line = line
        if line:
            self.stream.write("\r\x1b[K" + line)
            self.stream.flush()

    def _clear(self) -> None:
        if self.line:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def finish(self) -> None:
        """Take the bar away: what was done is printed next, line by line."""
        if self.tty:
            self._clear()
            self.line = ""
