"""The Markdown plan for a pull request (`recon diff -o markdown`), rendered from plans made by
hand: most disruptive first, and a cell's text never breaks the table."""

from __future__ import annotations

from reconciler.cli.markdown import render_markdown, review_order
from reconciler.model.plan import Action, Change, Disruption, FieldChange, Plan
from reconciler.model.refs import ResourceRef


def change(name: str, action: Action, disruption: Disruption, reason: str = "") -> Change:
    field = FieldChange("memory", "1Gi", "2Gi", disruption)
    return Change(ResourceRef("VirtualMachine", name), action, disruption, (field,), reason)


def test_replaces_then_restarts_then_live_then_the_rest_each_in_plan_order() -> None:
    plan = Plan(
        changes=[
            change("a", Action.CREATE, Disruption.NONE),
            change("b", Action.UPDATE, Disruption.LIVE),
            change("c", Action.UPDATE, Disruption.RESTART),
            change("d", Action.REPLACE, Disruption.REPLACE),
            change("e", Action.UPDATE, Disruption.NONE),
            change("f", Action.UPDATE, Disruption.RESTART),
            change("g", Action.DELETE, Disruption.REPLACE),
        ]
    )
    assert [c.ref.name for c in review_order(plan)] == ["d", "g", "c", "f", "b", "a", "e"]


def test_a_cell_keeps_pipes_and_newlines_inside_the_table() -> None:
    plan = Plan(
        changes=[change("a", Action.REPLACE, Disruption.REPLACE, "a | b\nc")],
        host="test:///h",
    )
    text = render_markdown(plan, ["planned against x"])
    row = next(line for line in text.splitlines() if line.startswith("| -/+"))
    assert row.count(" | ") == 3, row
    assert "a \\| b<br>c" in row
    assert "planned against x" in text


def test_many_fields_are_cut_short_in_the_row() -> None:
    fields = tuple(FieldChange(f"f{i}", 1, 2, Disruption.LIVE) for i in range(10))
    plan = Plan(
        changes=[Change(ResourceRef("Container", "c"), Action.UPDATE, Disruption.LIVE, fields)]
    )
    row = next(line for line in render_markdown(plan, []).splitlines() if "`Container/c`" in line)
    assert "`f5`" in row and "`f6`" not in row
    assert "and 4 more" in row
