"""`recon diff` and `recon apply`: the plan that makes the host match the manifests, shown,
saved (`diff --out PLAN.json`) and applied (from manifests, or from a saved plan once the host
is checked to be as the plan saw it).

main.py adds these commands to `recon`; this module imports no other command module.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from reconciler.cli.builds import prepare_builds
from reconciler.cli.confirm import confirmed
from reconciler.cli.exported import host_state_note, load_host_state
from reconciler.cli.host import EarlyObservation, open_host
from reconciler.cli.host_refs import resolve_on_host
from reconciler.cli.manifests import FILES_HELP, git_revision, load_resources, read_values
from reconciler.cli.markdown import render_markdown
from reconciler.cli.output import fail, print_diagnostics, print_json
from reconciler.cli.params import SECONDS, SET_NAME
from reconciler.cli.progress import ApplyProgress
from reconciler.cli.render import (
    echo_err,
    render_admission,
    render_plan,
    render_result,
    render_warnings,
)
from reconciler.cli.saved_plans import (
    plan_from_json,
    plan_json,
    same_as_saved,
    saved_options,
    saved_plan,
)
from reconciler.cli.selection import select_resources, selector_option
from reconciler.engine.apply import apply_plan
from reconciler.engine.plan import AdmissionError, PlanOptions, make_plan
from reconciler.load.secrets import SecretPolicy, check_places
from reconciler.model.diagnostics import Diagnostic
from reconciler.model.errors import ReconError
from reconciler.model.plan import Action, Plan
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.model.secrets import secret_fields
from reconciler.model.selectors import Selector
from reconciler.providers.base import ApplyContext, Observation


def _plan_or_fail(
    resources: Sequence[Resource], observation: Observation, options: PlanOptions, code: int
) -> Plan:
    """code: the exit code of a refused plan (diff: 2, apply: 1, as the README says)."""
    try:
        return make_plan(resources, observation, options)
    except AdmissionError as exc:
        echo_err(render_admission(exc))
        fail(str(exc), exc.hint, code=code)
    except ReconError as exc:
        fail(str(exc), exc.hint, code=code)


def _quiet(_message: str) -> None:
    """No build progress under -o json: stdout is the document, stderr stays quiet."""


def _selected(
    resources: list[Resource], selector: Selector | None, allow_empty: bool
) -> list[Resource]:
    """The manifests -l selects (all of them were validated together, references and all)."""
    chosen = select_resources(resources, selector)
    if selector is not None and not chosen and not allow_empty:
        fail(
            f"no manifest matches the selector '{selector}'; nothing was done",
            "with --prune --allow-empty it would delete what recon owns that matches",
            code=2,
        )
    return chosen


prune_option = click.option(
    "--prune",
    is_flag=True,
    help="Delete objects recon owns in this set that no manifest names (with -l: only those "
    "whose labels match).",
)
set_option = click.option(
    "--set",
    "set_name",
    type=SET_NAME,
    default="default",
    show_default=True,
    help="The named set these manifests form (scope of --prune).",
)
empty_option = click.option(
    "--allow-empty",
    is_flag=True,
    help="Allow an empty desired set (with --prune: delete everything in the set).",
)
adopt_option = click.option(
    "--adopt",
    is_flag=True,
    help="Take over existing objects with wanted names that recon did not create.",
)


delete_volumes_option = click.option(
    "--delete-volumes",
    is_flag=True,
    help="With --prune: also delete the disks of pruned guests (so a pool they alone filled "
    "can go too).",
)


@click.command()
@click.option("-f", "--filename", "paths", multiple=True, required=True, help=FILES_HELP)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="markdown: a table for a pull request's comment, most disruptive first.",
)
@click.option(
    "--host-state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Plan against this export (`recon observe --out`) instead of the host.",
)
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Save the plan (JSON) for a later `recon apply -f PLAN.json`.",
)
@prune_option
@set_option
@empty_option
@adopt_option
@delete_volumes_option
@selector_option
@click.pass_context
def diff(
    ctx: click.Context,
    paths: tuple[str, ...],
    output: str,
    host_state: Path | None,
    out_file: Path | None,
    prune: bool,
    set_name: str,
    allow_empty: bool,
    adopt: bool,
    delete_volumes: bool,
    selector: Selector | None,
) -> None:
    """Show what apply would change, field by field, with its disruption class.

    Exits 0 when the host matches, 1 when there are changes (a change this host cannot
    make too), 2 or more on errors.
    """
    host_refs: list[Diagnostic] = []
    policy: SecretPolicy = ctx.obj["secrets"]
    # Against an export (CI) no secret is at hand, nor needed: it is not compared there.
    values: dict[tuple[ResourceRef, str], str] | None = {} if host_state is None else None
    early = EarlyObservation(ctx) if host_state is None else None
    resources = load_resources(
        paths, allow_empty=allow_empty, host_refs=host_refs, secrets=policy, values=values
    )
    resources = _selected(resources, selector, allow_empty)
    options = PlanOptions(
        prune=prune,
        set_name=set_name,
        allow_empty=allow_empty,
        adopt=adopt,
        revision=git_revision(paths),
        delete_volumes=delete_volumes,
        selector=selector,
        secrets=values,
    )
    notes: list[str] = []
    if host_state is None:
        assert early is not None
        # What the plan needs of the manifests, computed while the host is still being read.
        for res in resources:
            res.compute_views()
        observation = early.result()
    else:
        # The same engine path, over the exported observation: a read-only provider.
        snapshot = load_host_state(host_state)
        notes.append(host_state_note(snapshot))
        echo_err(notes[-1])
        if any(secret_fields(r.manifest) for r in resources):
            notes.append(
                "secrets were not read: a changed secret value shows in a diff on the host"
            )
            echo_err(notes[-1])
        observation = snapshot.observe()
    resolve_on_host(host_refs, observation, prune=prune, set_name=set_name)
    plan = _plan_or_fail(resources, observation, options, code=2)
    if out_file is not None:
        out_file.write_text(json.dumps(plan_json(plan, resources, options), indent=2) + "\n")
        echo_err(f"plan saved to {out_file}")
    if output == "json":
        print_json(plan.to_json())
    elif output == "markdown":
        click.echo(render_markdown(plan, notes), nl=False)
    else:
        # Warnings are messages, on stderr like every other; stdout carries the plan.
        if plan.warnings:
            echo_err(render_warnings(plan))
        click.echo(render_plan(plan, warnings=False))
    # A change the host cannot make is still a difference: never "in sync" (exit 0).
    sys.exit(0 if plan.in_sync else 1)


@click.command()
@click.option(
    "-f",
    "--filename",
    "paths",
    multiple=True,
    required=True,
    help=FILES_HELP + " Or a plan saved by `recon diff --out`.",
)
@prune_option
@set_option
@empty_option
@adopt_option
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show the plan and stop; exit 0 when the host matches, 1 when changes are pending "
    "(as diff).",
)
@click.option(
    "-y",
    "--yes",
    is_flag=True,
    help="Do not ask before restarting, replacing or deleting (asked only on a terminal).",
)
@click.option(
    "--allow-replace", is_flag=True, help="Allow changes that destroy and recreate objects."
)
@delete_volumes_option
@click.option(
    "--shutdown-timeout",
    type=SECONDS,
    default=60.0,
    show_default=True,
    help="Seconds to wait for a clean guest shutdown before forcing it off.",
)
@click.option(
    "-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@selector_option
@click.pass_context
def apply(
    ctx: click.Context,
    paths: tuple[str, ...],
    prune: bool,
    set_name: str,
    allow_empty: bool,
    adopt: bool,
    dry_run: bool,
    yes: bool,
    allow_replace: bool,
    delete_volumes: bool,
    shutdown_timeout: float,
    output: str,
    selector: Selector | None,
) -> None:
    """Make the host match the manifests (or a saved plan). Exits 0 on success, 1 if not.

    With --dry-run it only shows the plan, and exits as diff does: 0 when the host matches,
    1 when changes are pending. On a terminal it asks before a change that restarts,
    replaces or deletes (--yes does not ask); without one (CI) it never asks.
    """
    saved = saved_plan(paths)
    host_refs: list[Diagnostic] = []
    policy: SecretPolicy = ctx.obj["secrets"]
    # Every secret is read before the host is opened: one missing stops the run (exit 2)
    # before its first action, and no stamp can claim a value that was never set.
    values: dict[tuple[ResourceRef, str], str] = {}
    if saved is None:
        resources = load_resources(
            paths, allow_empty=allow_empty, host_refs=host_refs, secrets=policy, values=values
        )
        resources = _selected(resources, selector, allow_empty)
        revision = git_revision(paths)
    elif selector is not None:
        fail("-l does not apply to a saved plan: it was made for what it shows", code=2)
    else:
        plan, resources = plan_from_json(saved)
        places = check_places(resources, policy)
        if places:
            print_diagnostics(places)
            fail(f"{len(places)} problems in the saved plan's manifests; nothing was applied")
        read_values(resources, policy, values)
    # A saved plan is applied with the options it was made with, never this command line's.
    options = (
        PlanOptions(
            prune=prune,
            set_name=set_name,
            allow_empty=allow_empty,
            adopt=adopt,
            revision=revision,
            delete_volumes=delete_volumes,
            selector=selector,
            secrets=values,
        )
        if saved is None
        else saved_options(saved, values)
    )
    revision, set_name = options.revision, options.set_name
    delete_volumes = options.delete_volumes
    # Built templates are made before the host is locked: a build never touches the host.
    build_errors = (
        {}
        if dry_run
        else prepare_builds(resources, ctx.obj["home"], None if output == "text" else _quiet)
    )
    try:
        with open_host(ctx, lock=not dry_run) as provider:
            observation = provider.observe()
            from_host: list[Resource] = []
            if saved is None:
                from_host = resolve_on_host(host_refs, observation, prune=prune, set_name=set_name)
                plan = _plan_or_fail(resources, observation, options, code=1)
            elif plan.host and plan.host != observation.host.uri:
                fail(
                    f"this plan was made for {plan.host}, not {observation.host.uri}",
                    "apply it with the --connect it was made with",
                    code=1,
                )
            elif observation.fingerprint() != plan.fingerprint:
                fail(
                    "the host changed since this plan was made; it was not applied",
                    "run `recon diff --out` again and review the new plan",
                    code=1,
                )
            else:
                same_as_saved(plan, resources, observation, options)
            if output == "text":
                echo_err(render_plan(plan))
            replaces = [c for c in plan.changes if c.action is Action.REPLACE]
            if replaces and not allow_replace and not dry_run:
                fail(
                    "the plan replaces "
                    + ", ".join(str(c.ref) for c in replaces)
                    + "; nothing was applied",
                    "review it, then pass --allow-replace",
                    code=1,
                )
            if dry_run or plan.empty:
                if output == "json":
                    print_json({"plan": plan.to_json(), "applied": []})
                sys.exit(0 if plan.in_sync or (plan.empty and not dry_run) else 1)
            if not yes and not confirmed(plan):
                fail("not confirmed; nothing was applied", code=1)
            progress = ApplyProgress(plan)
            context = ApplyContext(
                resources={r.ref: r for r in [*from_host, *resources]},
                observation=observation,
                revision=revision,
                set_name=set_name,
                delete_volumes=delete_volumes,
                adopt=options.adopt,
                shutdown_timeout=shutdown_timeout,
                progress=progress,
                build_errors=build_errors,
                secrets=values,
            )
            try:
                result = apply_plan(plan, resources, provider, context)
            finally:
                progress.finish()
    except ReconError as exc:
        fail(str(exc), exc.hint, code=1)
    if output == "json":
        print_json(
            {
                "plan": plan.to_json(),
                "applied": [
                    {"resource": str(c.ref), "action": c.action.value, "detail": d}
                    for c, d in result.applied
                ],
                "failed": None
                if result.failed is None
                else {"resource": str(result.failed[0].ref), "error": result.failed[1]},
                "failures": [
                    {"resource": str(c.ref), "action": c.action.value, "error": message}
                    for c, message in result.failures
                ],
                "skipped": [str(c.ref) for c in result.skipped],
                "waitsFor": {str(k): str(v) for k, v in result.waits_for.items()},
                "summary": result.summary(),
            }
        )
    else:
        for change, detail in result.applied:
            echo_err(f"{change.action.symbol} {change.ref}: {detail}")
        click.echo(render_result(result))
    sys.exit(0 if result.ok else 1)
