"""`recon get` and `recon delete`: what is on the host, listed by kind and name (guests,
pools, networks, templates, managed or not), and deleting what recon created.

main.py adds these commands to `recon`; this module imports no other command module.
"""

from __future__ import annotations

import sys
from typing import Any

import click
import yaml

from reconciler.cli.completion import complete_kind, complete_name
from reconciler.cli.host import open_host
from reconciler.cli.kind_names import KIND_ALIASES
from reconciler.cli.manifests import FILES_HELP, load_refs
from reconciler.cli.objects import as_list, display_name, to_object
from reconciler.cli.output import fail, print_json
from reconciler.cli.render import echo_err, render_change, render_inventory, render_result
from reconciler.cli.selection import select_observed, selector_option
from reconciler.cli.volumes import VOLUME_WORDS, render_volumes, volume_rows
from reconciler.engine.apply import apply_plan
from reconciler.engine.diff import GUESTS
from reconciler.engine.notes import host_policy_restore
from reconciler.load.graph import sort_key
from reconciler.model.errors import ReconError
from reconciler.model.kinds import KINDS
from reconciler.model.plan import Action, Change, Disruption, Plan
from reconciler.model.refs import ResourceRef
from reconciler.model.selectors import Selector
from reconciler.providers.base import ApplyContext, Observation


def _select(observation: Observation, kind: str | None, name: str | None) -> list[Any]:
    objects = list(observation.objects.values())
    if kind:
        resolved = KIND_ALIASES.get(kind.lower())
        if resolved is None:
            fail(f"unknown kind '{kind}'", "one of: " + ", ".join(KINDS), code=2)
        objects = [o for o in objects if o.ref.kind == resolved]
    else:
        # The host itself is listed only when asked for (`get hostpolicy`).
        objects = [o for o in objects if o.ref.kind != "HostPolicy"]
    if name:
        objects = [o for o in objects if display_name(o) == name]
        if not objects:
            fail(f"{kind}/{name} not found on the host", code=1)
    return sorted(objects, key=lambda o: sort_key(o.ref))


@click.command()
@click.argument("kind", required=False, shell_complete=complete_kind)
@click.argument("name", required=False, shell_complete=complete_name)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "wide", "yaml", "json"]),
    default="table",
    show_default=True,
)
@click.option(
    "--orphaned",
    is_flag=True,
    help="With `get volumes`: only guest volumes recon made that no domain uses.",
)
@selector_option
@click.pass_context
def get(
    ctx: click.Context,
    kind: str | None,
    name: str | None,
    output: str,
    orphaned: bool,
    selector: Selector | None,
) -> None:
    """List what is on the host: guests, pools, networks, templates (managed or not).

    -o yaml|json prints each object as a manifest (KIND NAME: the object; otherwise a
    List) with a status section; `recon apply -f -` takes it back and changes nothing.
    `get volumes [--orphaned]` lists pool volumes: size, the object recon made each for, and
    the guests that use it (NAME: POOL/VOLUME).
    """
    is_volumes = kind is not None and kind.lower() in VOLUME_WORDS
    if orphaned and not is_volumes:
        fail("--orphaned goes with `recon get volumes`", code=2)
    with open_host(ctx, lock=False) as provider:
        observation = provider.observe()
        if is_volumes:
            _get_volumes(observation, name, output, orphaned)
            return
        objects = select_observed(_select(observation, kind, name), selector)
        if output != "table":
            # What only a running guest can say (its agent's state, addresses, OS), asked
            # of the guests shown only.
            running = [o.ref for o in objects if o.running and o.ref.kind in GUESTS]
            if running:
                try:
                    found = provider.guest_status(running)
                except ReconError:
                    found = {}  # the listing stands without it
                for obs in objects:
                    obs.extra.update(found.get(obs.ref, {}))
    if name and not objects:
        fail(f"{kind}/{name} does not match the selector '{selector}'", code=1)
    if output in ("table", "wide"):
        click.echo(render_inventory(observation, objects, wide=output == "wide"))
        return
    # One object by name is the object, as kubectl prints it; otherwise a List.
    data = to_object(objects[0]) if name else as_list(objects)
    if output == "json":
        print_json(data)
    else:
        click.echo(yaml.safe_dump(data, sort_keys=False), nl=False)


def _get_volumes(observation: Observation, name: str | None, output: str, orphaned: bool) -> None:
    rows = volume_rows(observation)
    if orphaned:
        rows = [r for r in rows if r.orphaned]
    if name:
        rows = [r for r in rows if f"{r.pool}/{r.name}" == name]
        if not rows:
            fail(f"volume {name} not found on the host", "name it as POOL/VOLUME", code=1)
    if output in ("table", "wide"):
        click.echo(render_volumes(rows))
        return
    data = {"kind": "VolumeList", "items": [r.to_json() for r in rows]}
    if output == "json":
        print_json(data)
    else:
        click.echo(yaml.safe_dump(data, sort_keys=False), nl=False)


def _volume_on_host(observation: Observation, name: str) -> bool:
    return any(f"{r.pool}/{r.name}" == name for r in volume_rows(observation))


def _owned_matching(ctx: click.Context, kind: str | None, selector: Selector) -> list[ResourceRef]:
    """What `delete [KIND] -l SELECTOR` deletes: objects recon owns whose labels match."""
    with open_host(ctx, lock=False) as provider:
        observation = provider.observe()
    chosen = select_observed(_select(observation, kind, None), selector)
    return [o.ref for o in chosen if o.owned]


@click.command()
@click.argument("kind", required=False, shell_complete=complete_kind)
@click.argument("name", required=False, shell_complete=complete_name)
@click.option("-f", "--filename", "paths", multiple=True, help=FILES_HELP)
@click.option("--delete-volumes", is_flag=True, help="Also delete the guests' disks.")
@click.option("--ignore-not-found", is_flag=True, help="Exit 0 when something is not there.")
@selector_option
@click.pass_context
def delete(
    ctx: click.Context,
    kind: str | None,
    name: str | None,
    paths: tuple[str, ...],
    delete_volumes: bool,
    ignore_not_found: bool,
    selector: Selector | None,
) -> None:
    """Delete what the manifests (or KIND NAME) name. Only objects recon created.

    With -l: the manifests whose labels match (-f), or the objects recon owns whose recorded
    labels match (of KIND, or of every kind).
    """
    if paths:
        refs = load_refs(paths, selector)
    elif selector is not None and not name:
        refs = _owned_matching(ctx, kind, selector)
    elif kind and name and kind.lower() in VOLUME_WORDS:
        if name.count("/") != 1 or not all(name.split("/")):
            fail(f"volume '{name}': name it as POOL/VOLUME", code=2)
        refs = [ResourceRef("Volume", name)]
    elif kind and name:
        resolved = KIND_ALIASES.get(kind.lower())
        if resolved is None:
            fail(f"unknown kind '{kind}'", "one of: " + ", ".join(KINDS), code=2)
        refs = [ResourceRef(resolved, name)]
    else:
        fail("say what to delete: -f PATH, KIND NAME, or -l SELECTOR [KIND]", code=2)
    try:
        with open_host(ctx, lock=True) as provider:
            observation = provider.observe()
            changes = []
            missing = 0
            for ref in sorted(refs, key=sort_key, reverse=True):
                obs = observation.objects.get(ref)
                if ref.kind == "HostPolicy":
                    restore = host_policy_restore(ref, observation)
                    if restore is not None:
                        changes.append(restore)
                        continue
                if ref.kind == "Volume":
                    if not _volume_on_host(observation, ref.name):
                        echo_err(f"volume {ref.name}: not on the host")
                        missing += 1
                        continue
                    changes.append(Change(ref, Action.DELETE, Disruption.NONE, (), "delete"))
                    continue
                if ref.kind == "HostPolicy" or obs is None:
                    echo_err(f"{ref}: not on the host")
                    missing += ref.kind != "HostPolicy"
                    continue
                if not obs.owned:
                    fail(f"{ref} was not created by recon; left untouched", code=1)
                changes.append(
                    Change(
                        ref,
                        Action.DELETE,
                        Disruption.REPLACE,
                        (),
                        "delete",
                        obs.stamp.file if obs.stamp else None,
                    )
                )
            plan = Plan(changes=changes, host=observation.host.uri)
            for change in changes:
                echo_err("\n".join(render_change(change)))
            context = ApplyContext(
                resources={},
                observation=observation,
                delete_volumes=delete_volumes,
                progress=echo_err,
            )
            result = apply_plan(plan, [], provider, context)
    except ReconError as exc:
        fail(str(exc), exc.hint, code=1)
    for change, detail in result.applied:
        echo_err(f"{change.action.symbol} {change.ref}: {detail}")
    click.echo(render_result(result, "delete"))
    sys.exit(0 if result.ok and (missing == 0 or ignore_not_found) else 1)
