"""The checks a provider leaves for the end of an apply (ApplyContext.settle): one that fails
turns its change, counted applied until then, into a failure; a change that failed already
gets the check's error first. Also the plan's warning when the containers it starts will not
fit a local LXC host's inotify limit. A hand-written provider: the engine is pure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler.engine.apply import ApplyResult, apply_plan
from reconciler.engine.plan import make_plan
from reconciler.model.plan import Action, Change, Disruption, Plan
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.providers.base import (
    ApplyContext,
    HostFacts,
    HostUnreachable,
    InotifyUse,
    Observation,
    ProviderError,
)
from tests.engine.test_diff_plan import as_applied, container, observation

A, B, C = (ResourceRef("Container", n) for n in ("a", "b", "c"))


class Starter:
    """Applies every change and leaves a check for it; `stops` say how each check ends."""

    name = "starter"

    def __init__(self, stops: dict[ResourceRef, Exception], fails: set[ResourceRef]) -> None:
        self.stops = stops
        self.fails = fails
        self.checked: list[ResourceRef] = []

    def apply(self, change: Change, resource: Resource | None, context: ApplyContext) -> str:
        context.settle.append((change.ref, self._check(change.ref)))
        if change.ref in self.fails:
            raise ProviderError(f"{change.ref}: its guest settings could not be set")
        return "defined, started"

    def _check(self, ref: ResourceRef) -> Callable[[], None]:
        def check() -> None:
            self.checked.append(ref)
            if ref in self.stops:
                raise self.stops[ref]

        return check


def run(
    stops: dict[ResourceRef, Exception], fails: frozenset[ResourceRef] = frozenset()
) -> tuple[ApplyResult, Starter]:
    plan = Plan(changes=[Change(ref, Action.CREATE, Disruption.NONE) for ref in (A, B, C)])
    provider = Starter(stops, set(fails))
    facts = HostFacts("lxc:///system", "h", "lxc", 0, 1)
    context = ApplyContext(resources={}, observation=Observation(facts, {}))
    result = apply_plan(plan, [], provider, context)  # type: ignore[arg-type]
    assert context.settle == []
    return result, provider


def test_a_guest_that_stopped_by_the_end_of_the_apply_fails_its_change() -> None:
    result, provider = run({B: ProviderError("Container/b: stopped right after it was started")})
    assert provider.checked == [A, B, C]
    assert [c.ref for c, _ in result.applied] == [A, C]
    assert [(c.ref, m) for c, m in result.failures] == [
        (B, "Container/b: stopped right after it was started")
    ]
    assert not result.ok and result.summary()["created"] == 2


def test_failures_stay_in_plan_order_and_an_earlier_error_comes_after_the_stop() -> None:
    result, _ = run(
        {A: ProviderError("a stopped"), B: ProviderError("b stopped")}, fails=frozenset({B})
    )
    assert [(c.ref, m) for c, m in result.failures] == [
        (A, "a stopped"),
        (B, "b stopped (then: Container/b: its guest settings could not be set)"),
    ]


def test_a_lost_host_during_the_checks_ends_them() -> None:
    result, provider = run({A: HostUnreachable("libvirtd is gone")})
    assert provider.checked == [A]
    assert result.host_lost
    assert [c.ref for c, _ in result.failures] == [A]


def test_checks_that_pass_change_nothing() -> None:
    result, _ = run({})
    assert result.ok and [c.ref for c, _ in result.applied] == [A, B, C]


def lxc_observation(use: InotifyUse | None, *objects: Any) -> Observation:
    obs = observation(*objects)
    obs.host.driver = "lxc"
    obs.host.inotify = use
    return obs


def test_plan_warns_when_the_containers_it_starts_do_not_fit_the_inotify_limit() -> None:
    wanted = [container(f"ct-{i}") for i in range(3)]
    plan = make_plan(wanted, lxc_observation(InotifyUse(limit=128, in_use=115)))
    (warning,) = [w for w in plan.warnings if "inotify" in w]
    assert warning == (
        "3 containers to start need about 21 inotify instances (7 each for systemd), but "
        "fs.inotify.max_user_instances=128 has 13 left (115 in use): about 2 of them would "
        "stop right after their start; raise it first "
        "(sysctl -w fs.inotify.max_user_instances=1024)"
    )


def test_no_inotify_warning_when_they_fit_or_run_already_or_stay_stopped() -> None:
    fits = make_plan([container("ct-0")], lxc_observation(InotifyUse(128, 115)))
    assert not any("inotify" in w for w in fits.warnings)
    # Running already (a change to its cpus): it takes nothing new.
    running = container("ct-0", cpus=2)
    seen = as_applied(container("ct-0"), running=True)
    plan = make_plan([running], lxc_observation(InotifyUse(128, 127), seen))
    assert plan.changes and not any("inotify" in w for w in plan.warnings)
    stopped = make_plan([container("ct-0", state="Stopped")], lxc_observation(InotifyUse(128, 127)))
    assert not any("inotify" in w for w in stopped.warnings)
    # A stopped container the plan starts counts.
    again = make_plan(
        [container("ct-0")],
        lxc_observation(InotifyUse(128, 127), as_applied(container("ct-0"), running=False)),
    )
    assert any("inotify" in w for w in again.warnings)


def test_no_inotify_warning_where_nothing_was_read() -> None:
    plan = make_plan([container(f"ct-{i}") for i in range(30)], lxc_observation(None))
    assert not any("inotify" in w for w in plan.warnings)
