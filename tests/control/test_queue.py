"""The keyed work queue and the backoff, pure: a hand-turned clock, no sleeping for a result."""

from __future__ import annotations

import threading

from reconciler.control.queue import Backoff, WorkQueue


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def drain(queue: WorkQueue) -> list[str]:
    """Every key ready now, each marked done at once."""
    keys = []
    while (key := queue.get(timeout=0)) is not None:
        keys.append(key)
        queue.done(key)
    return keys


# --- WorkQueue -----------------------------------------------------------------------------------


def test_a_key_added_many_times_is_handed_out_once() -> None:
    queue = WorkQueue(Clock())
    for _ in range(5):
        queue.add("set")
    queue.add("other")
    assert queue.depth() == 2
    assert sorted(drain(queue)) == ["other", "set"]
    assert queue.depth() == 0


def test_keys_come_out_when_due_in_time_order() -> None:
    clock = Clock()
    queue = WorkQueue(clock)
    queue.add("late", 10)
    queue.add("soon", 5)
    assert queue.get(timeout=0) is None
    clock.now += 5
    assert drain(queue) == ["soon"]
    clock.now += 5
    assert drain(queue) == ["late"]


def test_the_earliest_time_wins() -> None:
    clock = Clock()
    queue = WorkQueue(clock)
    queue.add("set", 300)  # the resync
    queue.add("set", 0)  # a file changed: now
    assert queue.get(timeout=0) == "set"
    queue.done("set")
    # ... and a later time never postpones an earlier one.
    queue.add("set", 1)
    queue.add("set", 300)
    assert queue.depth() == 1
    clock.now += 1
    assert drain(queue) == ["set"]
    clock.now += 300
    assert drain(queue) == []  # the superseded entry is not handed out again


def test_a_key_added_while_active_is_not_handed_out_twice_and_comes_back_after_done() -> None:
    clock = Clock()
    queue = WorkQueue(clock)
    queue.add("set")
    assert queue.get(timeout=0) == "set"
    queue.add("set")  # an event during the pass
    queue.add("set", 50)
    assert queue.get(timeout=0) is None  # not while the pass runs
    queue.done("set")
    assert queue.get(timeout=0) == "set"  # at the earliest time it was asked for
    queue.done("set")
    assert queue.get(timeout=0) is None


def test_a_key_added_while_active_with_a_delay_keeps_the_delay() -> None:
    clock = Clock()
    queue = WorkQueue(clock)
    queue.add("set")
    assert queue.get(timeout=0) == "set"
    queue.add("set", 30)
    queue.done("set")
    assert queue.get(timeout=0) is None
    clock.now += 30
    assert queue.get(timeout=0) == "set"


def test_get_times_out_and_close_wakes_a_waiting_get() -> None:
    queue = WorkQueue()
    assert queue.get(timeout=0.05) is None
    got: list[str | None] = []
    waiter = threading.Thread(target=lambda: got.append(queue.get()))
    waiter.start()
    queue.close()
    waiter.join(10)
    assert not waiter.is_alive()
    assert got == [None]
    queue.add("set")
    assert queue.get(timeout=0) is None  # closed: nothing more is handed out


def test_an_add_wakes_a_waiting_get() -> None:
    queue = WorkQueue()
    got: list[str | None] = []
    waiter = threading.Thread(target=lambda: got.append(queue.get(timeout=30)))
    waiter.start()
    queue.add("set")
    waiter.join(30)
    assert got == ["set"]


# --- Backoff -------------------------------------------------------------------------------------


def test_backoff_doubles_per_key_up_to_the_cap_and_resets_on_success() -> None:
    backoff = Backoff(base=1.0, cap=300.0)
    assert [backoff.failure("a") for _ in range(5)] == [1, 2, 4, 8, 16]
    assert backoff.failure("b") == 1  # per key
    assert [backoff.failure("a") for _ in range(6)] == [32, 64, 128, 256, 300, 300]
    assert backoff.failures("a") == 11
    backoff.success("a")
    assert backoff.failures("a") == 0
    assert backoff.failure("a") == 1
    assert backoff.failure("b") == 2


def test_backoff_stays_at_the_cap_however_long_the_failures_last() -> None:
    # A host down for days: thousands of failures at the cap, never an overflow.
    backoff = Backoff(base=1.0, cap=300.0)
    delays = [backoff.failure("set") for _ in range(5000)]
    assert delays[-1] == 300.0
    assert max(delays) == 300.0


# --- Backoff in the queue: what asks for a look cannot cut a failing key's wait short ---------


def test_an_event_during_a_failed_pass_waits_for_the_backoff() -> None:
    # The failed attempt itself raises host events on the guest (a start, a stop): they arrive
    # while the pass runs, and must not bring the key back before its backoff.
    clock = Clock()
    queue = WorkQueue(clock)
    queue.add("set")
    assert queue.get(timeout=0) == "set"
    queue.add("set", 0.1)  # a host event during the pass
    queue.done("set", retry_in=4.0)
    clock.now += 3.9
    assert queue.get(timeout=0) is None
    queue.add("set", 0.1)  # another host event, after the pass
    assert queue.get(timeout=0) is None
    clock.now += 0.1
    assert queue.get(timeout=0) == "set"


def test_a_new_desired_state_skips_the_backoff_and_a_success_lifts_it() -> None:
    clock = Clock()
    queue = WorkQueue(clock)
    queue.add("set")
    assert queue.get(timeout=0) == "set"
    queue.done("set", retry_in=300.0)
    queue.add("set", 0.1)
    clock.now += 1
    assert queue.get(timeout=0) is None
    queue.add("set", urgent=True)  # a manifest edited, a new commit: tried at once
    assert queue.get(timeout=0) == "set"
    queue.done("set")  # the pass succeeded: no backoff left
    queue.add("set", 0.1)
    clock.now += 0.1
    assert queue.get(timeout=0) == "set"


def test_a_new_desired_state_during_a_failing_pass_is_tried_at_once() -> None:
    clock = Clock()
    queue = WorkQueue(clock)
    queue.add("set")
    assert queue.get(timeout=0) == "set"
    queue.add("set", urgent=True)  # the manifest was fixed while the pass failed
    queue.done("set", retry_in=60.0)
    assert queue.get(timeout=0) == "set"
