"""A plan as Markdown, for a pull request's comment (`recon diff -o markdown`): a compact table,
the most disruptive changes first, and the full text plan folded underneath."""

from __future__ import annotations

import json
from typing import Any

from reconciler.cli.render import render_plan
from reconciler.engine.plan import count_by_action
from reconciler.model.plan import Action, Change, Disruption, Plan

# Fields shown in a row before "and N more": the folded text plan has them all.
MAX_FIELDS = 6


def review_order(plan: Plan) -> list[Change]:
    """Replaces, then restarts, then the rest (live, then none), each group in plan order:
    what a reviewer must not miss comes first."""

    def rank(change: Change) -> int:
        if change.action is Action.REPLACE or change.disruption is Disruption.REPLACE:
            return 0
        if change.disruption is Disruption.RESTART:
            return 1
        return 2 + (Disruption.RESTART.rank - change.disruption.rank)

    return sorted(plan.changes, key=rank)


def _cell(text: str) -> str:
    """Text that stays inside one table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", "<br>").replace("`", "'")


def _value(value: Any) -> str:
    if value is None:
        return "(none)"
    return value if isinstance(value, str) else json.dumps(value)


def _details(change: Change) -> str:
    parts: list[str] = []
    if change.reason:
        parts.append(_cell(change.reason))
    fields = list(change.fields)
    for f in fields[:MAX_FIELDS]:
        if change.action is Action.CREATE:
            parts.append(f"`{_cell(f.path)}`: {_cell(_value(f.after))}")
        else:
            parts.append(
                f"`{_cell(f.path)}`: {_cell(_value(f.before))} → {_cell(_value(f.after))}"
                + (f" ({f.disruption.value})" if f.disruption is not change.disruption else "")
                + (f" ({_cell(f.note)})" if f.note else "")
            )
    if len(fields) > MAX_FIELDS:
        parts.append(f"… and {len(fields) - MAX_FIELDS} more")
    return "<br>".join(parts) or "-"


def render_markdown(plan: Plan, notes: list[str]) -> str:
    """notes: lines said under the heading (which export the plan was made against)."""
    counts = count_by_action(plan)
    lines = ["### recon plan", ""]
    if plan.empty:
        summary = f"No changes: the host matches the manifests ({len(plan.unchanged)} resources)."
    else:
        summary = (
            f"**{counts['create']}** to create, **{counts['update']}** to update, "
            f"**{counts['replace']}** to replace, **{counts['delete']}** to delete; "
            f"{len(plan.unchanged)} unchanged."
        )
    lines.append(summary)
    lines.append("")
    facts = [f"host `{plan.host}`"]
    if plan.revision:
        facts.append(f"revision `{plan.revision}`")
    lines.append(", ".join(facts) + ("  " if notes else ""))
    lines += [f"{_cell(n)}  " for n in notes]
    if plan.warnings:
        lines.append("")
    for warning in plan.warnings:
        lines.append(f"> **warning**: {_cell(warning)}  ")
    if plan.empty:
        return "\n".join(lines) + "\n"
    lines += ["", "| change | resource | disruption | reason / fields |", "|---|---|---|---|"]
    for change in review_order(plan):
        disruption = "-" if change.action is Action.CREATE else change.disruption.value
        if change.disruption in (Disruption.RESTART, Disruption.REPLACE):
            disruption = f"**{disruption}**"
        lines.append(
            f"| {change.action.symbol} {change.action.value} | `{change.ref}` | {disruption} "
            f"| {_details(change)} |"
        )
    lines += [
        "",
        "<details><summary>full plan</summary>",
        "",
        "```",
        render_plan(plan).replace("```", "'''"),
        "```",
        "",
        "</details>",
    ]
    return "\n".join(lines) + "\n"
