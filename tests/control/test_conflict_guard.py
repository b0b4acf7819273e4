"""The loop's bookkeeping of fights (control/conflict.py), pure: what counts as another
writer changing a resource back, and what does not."""

from __future__ import annotations

from reconciler.control.conflict import LIMIT, ConflictGuard
from reconciler.model.plan import Action, Change, Disruption, FieldChange
from reconciler.model.refs import ResourceRef

WEB = ResourceRef("VirtualMachine", "web-1")


def _change(before: object, after: object) -> Change:
    field = FieldChange("autostart", before, after, Disruption.NONE)
    return Change(WEB, Action.UPDATE, Disruption.NONE, (field,), "differs")


def test_a_resource_restamped_and_changed_back_each_pass_is_held_after_the_limit() -> None:
    guard = ConflictGuard()
    hashes = {str(WEB): "mine"}
    for _ in range(LIMIT - 1):
        guard.applied([_change(False, True)], hashes)
        assert guard.check([_change(False, True)], hashes, {str(WEB): "theirs"}) == {}
    guard.applied([_change(False, True)], hashes)
    held = guard.check([_change(False, True)], hashes, {str(WEB): "theirs"})
    assert "another writer keeps changing it back: autostart" in held[str(WEB)]
    # Held until the manifest changes.
    assert str(WEB) in guard.check([_change(False, True)], hashes, {str(WEB): "theirs"})
    assert guard.check([_change(False, True)], {str(WEB): "edited"}, {str(WEB): "x"}) == {}


def test_a_change_the_host_did_not_take_is_not_a_fight() -> None:
    guard = ConflictGuard()
    hashes = {str(WEB): "mine"}
    for _ in range(LIMIT * 2):
        guard.applied([_change(False, True)], hashes)
        # The stamp is still this loop's: nobody else applied; the host just did not take it.
        assert guard.check([_change(False, True)], hashes, {str(WEB): "mine"}) == {}


def test_a_pass_that_finds_the_resource_as_left_forgets_the_count() -> None:
    guard = ConflictGuard()
    hashes = {str(WEB): "mine"}
    for _ in range(LIMIT * 2):
        guard.applied([_change(False, True)], hashes)
        # Without the reset in between, the third round would hold it.
        assert guard.check([_change(False, True)], hashes, {str(WEB): "theirs"}) == {}
        assert guard.check([], hashes, {}) == {}  # as the loop left it: the count restarts
