"""A keyed work queue: one entry per key, deduplicated, with delays and exponential backoff."""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable


class Backoff:
    """1 s, 2 s, 4 s ... up to `cap`, per key; reset by a success."""

    def __init__(self, base: float = 1.0, cap: float = 300.0) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[str, int] = {}

    def failure(self, key: str) -> float:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        # The exponent is bounded: after ~1000 failures (days at the cap) 2**n no longer fits
        # a float, and an OverflowError here would end the loop.
        return float(min(self.cap, self.base * (2.0 ** min(n, 64))))

    def success(self, key: str) -> None:
        self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)


class WorkQueue:
    """Keys become ready at a time; adding a key that is already waiting keeps the earlier time.

    A key being processed is not handed out twice: if it is added meanwhile, it is marked dirty
    and comes back once `done` is called, so no event is lost and no key runs concurrently.

    A key whose pass failed is held back until its retry (`done(key, retry_in=...)`): what
    only asks for another look (a host event, the resync timer) waits for it, since a failed
    attempt can raise host events itself and would otherwise retry at once, forever. A new
    desired state (`add(key, urgent=True)`: a manifest edited, a new commit) is a new attempt
    and is tried at once. A pass that succeeds (`done(key)`) lifts the hold.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._due: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._active: set[str] = set()
        self._dirty: dict[str, float] = {}
        self._held_until: dict[str, float] = {}
        self._urgent: set[str] = set()  # dirty keys a new desired state was added for
        self._closed = False

    def add(self, key: str, delay: float = 0.0, *, urgent: bool = False) -> None:
        with self._cond:
            when = self._clock() + delay
            if urgent:
                self._held_until.pop(key, None)
            else:
                when = max(when, self._held_until.get(key, when))
            if key in self._active:
                if urgent:
                    self._urgent.add(key)
                self._dirty[key] = min(when, self._dirty.get(key, when))
                return
            if key in self._due and self._due[key] <= when:
                return
            self._due[key] = when
            heapq.heappush(self._heap, (when, key))
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> str | None:
        """The next ready key, or None on timeout or when the queue is closed."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while not self._closed:
                while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
                    heapq.heappop(self._heap)  # superseded by an earlier time
                now = self._clock()
                if self._heap and self._heap[0][0] <= now:
                    _, key = heapq.heappop(self._heap)
                    del self._due[key]
                    self._active.add(key)
                    return key
                wait = self._heap[0][0] - now if self._heap else None
                if deadline is not None:
                    left = deadline - now
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)
            return None

    def done(self, key: str, retry_in: float | None = None) -> None:
        """The pass over `key` ended; `retry_in`: it failed, hold the key back that long and
        try it again then."""
        with self._cond:
            self._active.discard(key)
            when = self._dirty.pop(key, None)
            urgent = key in self._urgent
            self._urgent.discard(key)
            if retry_in is None or urgent:
                self._held_until.pop(key, None)
            else:
                self._held_until[key] = self._clock() + retry_in
            if retry_in is not None and when is None:
                when = self._clock() + retry_in
        if when is not None:
            self.add(key, max(0.0, when - self._clock()))

    def depth(self) -> int:
        with self._cond:
            return len(self._due)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
