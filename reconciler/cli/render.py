"""Plans, apply results and host inventories as text (Terraform-like, kubectl-like)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from reconciler.cli.objects import observed_state
from reconciler.cli.output import style
from reconciler.engine.apply import ApplyResult
from reconciler.engine.plan import AdmissionError, count_by_action, other_driver_holders
from reconciler.model.plan import Action, Change, Plan
from reconciler.model.quantity import format_quantity
from reconciler.providers.base import Observation, Observed

_COLOURS = {
    Action.CREATE: "green",
    Action.UPDATE: "yellow",
    Action.REPLACE: "magenta",
    Action.DELETE: "red",
}


def _value(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def render_change(change: Change) -> list[str]:
    symbol = style(f"{change.action.symbol:>3}", _COLOURS[change.action], bold=True)
    head = f"{symbol} {change.ref}  {change.action.value}"
    if change.action is not Action.CREATE:
        head += f" ({change.disruption.value})"
    if change.reason and (
        change.action in (Action.REPLACE, Action.DELETE)
        # A built Template's new build: what happens to the guests on its images.
        or (change.ref.kind == "Template" and any(f.path == "revision" for f in change.fields))
    ):
        head += f"  # {change.reason}"
    lines = [head]
    for f in change.fields:
        if change.action is Action.CREATE:
            lines.append(f"      {f.path}: {_value(f.after)}")
        else:
            lines.append(
                f"      {f.path}: {_value(f.before)} -> {_value(f.after)}  ({f.disruption.value})"
            )
            if f.note:
                lines.append(f"        note: {f.note}")
    if change.action is Action.UPDATE and not change.fields:
        lines.append(f"      (recon's stamp only: {change.reason})")
    return lines


def render_warnings(plan: Plan) -> str:
    return "\n".join(style("warning", "yellow", err=True) + f": {w}" for w in plan.warnings)


def render_plan(plan: Plan, *, warnings: bool = True) -> str:
    """warnings=False: the caller prints them on stderr (render_warnings)."""
    lines: list[str] = []
    for warning in plan.warnings if warnings else ():
        lines.append(style("warning", "yellow") + f": {warning}")
    if plan.empty and plan.unmet:
        n = len(plan.unmet)
        lines.append(
            f"No changes recon can make, but the host does not match the manifests: {n} "
            f"change{'s' if n != 1 else ''} this host cannot make (see the warnings)."
        )
        return "\n".join(lines)
    if plan.empty:
        lines.append(
            f"No changes. The host matches the manifests ({len(plan.unchanged)} resources)."
        )
        return "\n".join(lines)
    n = len(plan.changes)
    lines.append(f"recon will make {n} change{'s' if n != 1 else ''} on {plan.host}:")
    lines.append("")
    for change in plan.changes:
        lines += render_change(change)
    counts = count_by_action(plan)
    lines.append("")
    lines.append(
        f"Plan: {counts['create']} to create, {counts['update']} to update, "
        f"{counts['replace']} to replace, {counts['delete']} to delete; "
        f"{len(plan.unchanged)} unchanged."
    )
    return "\n".join(lines)


def render_admission(err: AdmissionError) -> str:
    rows = [("RESOURCE", "MANAGED", "MEMORY", "GUARANTEE", "PROMISED")]
    for h in sorted(err.holders, key=lambda h: -h.guaranteed):
        rows.append(
            (
                h.ref,
                "yes" if h.managed else "no",
                format_quantity(h.memory),
                f"{h.percent}%" if h.percent is not None else "-",
                format_quantity(h.guaranteed),
            )
        )
    rows.append(("total", "", "", "", format_quantity(err.promised)))
    rows.append(("host can promise", "", "", "", format_quantity(max(err.capacity, 0))))
    return table(rows)


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "   ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def render_result(result: ApplyResult, verb: str = "apply") -> str:
    """verb: the command that ran (`delete` reports its deletes, not an apply)."""
    counts = result.summary()
    if verb != "apply":
        counts = {"deleted": counts["deleted"]}
    text = ", ".join(f"{v} {k}" for k, v in counts.items())
    if result.ok and not result.skipped:
        return f"{verb.capitalize()} complete: {text}."
    lines = [f"{verb.capitalize()} incomplete: {text}."]
    for change, message in result.failures:
        lines.append(f"failed: {change.ref} ({change.action.value}): {message}")
    waiting = [c for c in result.skipped if c.ref in result.waits_for]
    for change in waiting:
        lines.append(f"not attempted: {change.ref} (needs {result.waits_for[change.ref]})")
    rest = [c for c in result.skipped if c.ref not in result.waits_for]
    if rest:
        lines.append("not attempted: " + ", ".join(str(c.ref) for c in rest))
    lines.append(f"hint: fix the cause and run {verb} again; it continues from where the host is")
    return "\n".join(lines)


def word(value: Any) -> str:
    """A cell as kubectl would print it: yes/no rather than Python's True/False."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "-" if value is None else str(value)


def observed_row(obs: Observed, wide: bool) -> list[str]:
    f = obs.fields
    state = observed_state(obs)
    row = [
        obs.ref.kind,
        obs.ref.name or "host",  # the HostPolicy: the host itself has no name
        word(state),
        word(f.get("cpus")),
        word(f.get("memory")),
        "yes" if obs.owned else "no",
    ]
    if wide:
        guarantee = "-"
        if obs.guaranteed_bytes:
            # How the host holds it: a cgroup, <min_guarantee>, or only recon's admission.
            how = obs.extra.get("guarantee", "admission only")
            guarantee = f"{format_quantity(obs.guaranteed_bytes)} ({how})"
        addresses = obs.extra.get("addresses")
        row += [
            guarantee,
            word(f.get("autostart")),
            # The guest's own word (its agent), asked by `get` for running guests.
            str(obs.extra.get("agent") or "-"),
            ",".join(addresses) if isinstance(addresses, list) and addresses else "-",
            obs.uuid or "-",
            (obs.stamp.revision or "-") if obs.stamp else "-",
            obs.stamp.file if obs.stamp else "-",
        ]
    return row


def render_inventory(observation: Observation, objects: Sequence[Observed], wide: bool) -> str:
    head = ["KIND", "NAME", "STATE", "CPUS", "MEMORY", "MANAGED"]
    if wide:
        head += ["GUARANTEE", "AUTOSTART", "AGENT", "ADDRESSES", "UUID", "REVISION", "FILE"]
    rows = [head] + [observed_row(o, wide) for o in objects]
    text = table(rows)
    if wide:
        text += "\n\n" + host_memory_line(observation)
    return text


def host_memory_line(observation: Observation) -> str:
    """The host's RAM against what is promised to every running guest on it (not only the
    ones listed), and how much is free now where the host can say."""
    host = observation.host
    running = [o for o in observation.objects.values() if o.running and o.guaranteed_bytes > 0]
    promised = sum(o.guaranteed_bytes for o in running)
    hows = sorted({str(o.extra.get("guarantee", "admission only")) for o in running})
    policy = next((o for o in observation.objects.values() if o.ref.kind == "HostPolicy"), None)
    available = policy.extra.get("memory_available") if policy is not None else None
    line = f"host {host.hostname} ({host.driver}): {_approx(host.memory_bytes)} RAM"
    if isinstance(available, int):
        line += f", {_approx(available)} available now"
    line += (
        f"; {format_quantity(promised)} promised to {len(running)} running "
        f"guest{'s' if len(running) != 1 else ''}"
    )
    if hows:
        line += f" ({', '.join(hows)})"
    other = policy.extra.get("otherDriver") if policy is not None else None
    beside = ""
    if isinstance(other, dict) and "error" in other:
        beside = f"\nnot counted: the guests of {other['uri']} ({other['error']})"
    elif isinstance(other, dict):
        # What admission counts of the other driver (each holder is "Kind/name (uri)").
        held = other_driver_holders(observation)
        total = sum(h.guaranteed for h in held)
        promised += total
        names = ", ".join(h.ref.rsplit(" (", 1)[0] for h in held[:5])
        names += f" and {len(held) - 5} more" if len(held) > 5 else ""
        beside = (
            f"\nalso counted, on the same host: {format_quantity(total)} promised to "
            f"{len(held)} running guest{'s' if len(held) != 1 else ''} of {other['uri']}"
            + (f" ({names})" if names else "")
        )
    line += f", {_approx(max(host.memory_bytes - promised, 0))} not promised"
    return line + beside


def _approx(nbytes: int) -> str:
    """A size to read, not to parse back: what the kernel reports is rarely a round number."""
    gib = nbytes / 1024**3
    return f"{gib:.1f}Gi" if gib >= 1 else f"{nbytes // 1024**2}Mi"


def echo_err(text: str) -> None:
    click.echo(text, err=True)
