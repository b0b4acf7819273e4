"""`recon` entry point and verbs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import click
import yaml

from reconciler import __version__
from reconciler.cli.output import fail, print_diagnostics, print_json
from reconciler.cli.render import (
    echo_err,
    render_admission,
    render_change,
    render_inventory,
    render_plan,
    render_result,
)
from reconciler.engine.apply import apply_plan
from reconciler.engine.lock import HostLock
from reconciler.engine.plan import AdmissionError, PlanOptions, make_plan
from reconciler.load.graph import sort_key
from reconciler.load.manifests import load_manifests
from reconciler.load.sources import expand_paths, read_sources
from reconciler.load.validate import validate_documents
from reconciler.model.capabilities import check_manifest
from reconciler.model.diagnostics import Diagnostic, format_path
from reconciler.model.errors import ReconError
from reconciler.model.kinds import KINDS
from reconciler.model.plan import Action, Change, Disruption, Plan
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.model.schema import all_schemas, schema_filename
from reconciler.providers.base import ApplyContext, Observation, Provider
from reconciler.providers.registry import open_provider

FILES_HELP = "Manifest file or directory (read recursively); '-' reads standard input. Repeatable."

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _Commands(click.Group):
    """The loop's commands are imported when named (or listed by --help): they bring watchdog
    and prometheus_client, which the other commands do not need at start-up."""

    LOOP = ("status", "sync", "watch")

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LOOP])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LOOP:
            from reconciler.cli import control_cmds

            command: click.Command = getattr(control_cmds, cmd_name)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Commands, context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="recon")
@click.option(
    "--connect",
    "uri",
    envvar="RECON_CONNECT",
    metavar="URI",
    help="libvirt URI (qemu:///system, lxc:///system, vz:///system, test:///...). "
    "Default: the embedded host in $RECON_HOME. Env: RECON_CONNECT.",
)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="RECON_HOME",
    help="State directory (embedded host, locks). Env: RECON_HOME. Default: ~/.local/state/recon.",
)
@click.pass_context
def cli(ctx: click.Context, uri: str | None, home: Path | None) -> None:
    """recon: make a virtualization host match the manifests in git.

    \b
    Exit codes: 0 success (diff: no changes). 1: validate found invalid
    manifests, diff found changes, apply/delete failed or was refused, get
    found nothing. 2 or more: errors (bad usage, invalid manifests for diff or
    apply, host unreachable, a refused plan for diff).
    """
    from reconciler.providers.libvirt.embedded import default_home

    ctx.obj = {"uri": uri, "home": home or default_home()}


@cli.command()
@click.option("-f", "--filename", "paths", multiple=True, required=True, help=FILES_HELP)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json prints every diagnostic for CI.",
)
@click.option(
    "--driver",
    type=click.Choice(["test", "qemu", "kvm", "lxc", "vz"]),
    help="Also flag what this libvirt driver cannot do (see docs/real-hosts.md).",
)
def validate(paths: tuple[str, ...], output: str, driver: str | None) -> None:
    """Check manifests offline: syntax, schema, types, references. No host is contacted.

    Exits 0 when every manifest is valid and 1 when any is not; all problems are
    reported at once, each with FILE:LINE:COL, Kind/name and the field. With --driver,
    what that driver can never do is a problem too; what it may not do is a warning.
    """
    docs, read_diags = read_sources(paths, stdin=sys.stdin.buffer)
    result = validate_documents(docs, with_schema=True)
    result.files = sorted({d.file for d in docs})
    warnings: list[Diagnostic] = []
    if driver is not None and not read_diags and result.ok:
        marks = {(d.file, d.mark.line): d for d in docs}
        for res in result.resources:
            doc = marks[(res.file, res.line)]
            for problem in check_manifest(res.manifest, driver):
                mark = doc.mark_for(problem.path)
                diag = Diagnostic(
                    file=res.file,
                    line=mark.line,
                    column=mark.column,
                    message=problem.message,
                    kind=res.ref.kind,
                    name=res.ref.name,
                    field=format_path(problem.path),
                    hint=problem.hint,
                )
                (result.diagnostics if problem.error else warnings).append(diag)
    result.diagnostics = sorted(read_diags + result.diagnostics, key=lambda d: d.sort_key())
    if output == "json":
        print_json(
            {
                "valid": result.ok,
                "files": result.files,
                "resources": [str(r.ref) for r in result.resources] if result.ok else [],
                "diagnostics": [d.to_json() for d in result.diagnostics],
                "warnings": [d.to_json() for d in warnings],
            }
        )
    else:
        for warning in sorted(warnings, key=lambda d: d.sort_key()):
            click.echo("warning" + warning.render()[len("error") :], err=True)
        print_diagnostics(result.diagnostics)
        if result.ok:
            click.echo(f"{len(result.resources)} resources in {len(result.files)} files are valid")
        else:
            click.echo(f"{len(result.diagnostics)} problems found; nothing was applied", err=True)
    sys.exit(0 if result.ok else 1)


@cli.command()
@click.argument("kind", required=False, type=click.Choice(list(KINDS)))
@click.option(
    "--write",
    "write_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write one <kind>.json per kind into this directory.",
)
def schema(kind: str | None, write_dir: Path | None) -> None:
    """Print the JSON Schema of a kind (or write all of them, as in schemas/)."""
    schemas = all_schemas()
    if write_dir is not None:
        write_dir.mkdir(parents=True, exist_ok=True)
        for name, body in schemas.items():
            (write_dir / schema_filename(name)).write_text(json.dumps(body, indent=2) + "\n")
        click.echo(f"wrote {len(schemas)} schemas to {write_dir}", err=True)
        return
    print_json(schemas[kind] if kind else schemas)


def main() -> None:
    cli()


# --- verbs that talk to a host ------------------------------------------------------------------

KIND_ALIASES = {
    **{k.lower(): k for k in KINDS},
    **{k.lower() + "s": k for k in KINDS},
    "vm": "VirtualMachine",
    "vms": "VirtualMachine",
    "ct": "Container",
    "cts": "Container",
    "pool": "StoragePool",
    "pools": "StoragePool",
    "net": "Network",
    "nets": "Network",
    "networks": "Network",
    "network": "Network",
    "tmpl": "Template",
}


@contextmanager
def _host(ctx: click.Context, *, lock: bool) -> Iterator[Provider]:
    home: Path = ctx.obj["home"]
    uri: str | None = ctx.obj["uri"]
    guard: AbstractContextManager[object] = nullcontext()
    if lock:
        from reconciler.providers.libvirt.embedded import EmbeddedHost

        # Taken before the host is opened and released after it is closed: the embedded host
        # is read when opened and written when closed, so a run that read it before another
        # run's last write would write the old state back over that run's work.
        guard = HostLock(home, uri or EmbeddedHost(home / "host.xml").uri)
    with guard:
        try:
            provider = open_provider("libvirt", uri, home)
        except ReconError as exc:
            fail(str(exc), exc.hint or "check --connect and that libvirtd is running", code=2)
        try:
            yield provider
        finally:
            provider.close()


# What expand_paths says about a directory that holds no manifest file at all.
EMPTY_DIRECTORY = "directory contains no manifest files (*.yaml, *.yml)"


def _no_manifests(path: str) -> bool:
    """A readable directory without a single manifest file in it."""
    if not os.path.isdir(path):
        return False
    files, diags = expand_paths([path])
    return not files and [d.message for d in diags] == [EMPTY_DIRECTORY]


def _load(paths: Sequence[str], *, allow_empty: bool = False) -> list[Resource]:
    if allow_empty:
        # Once the last manifest is removed from a repository, its directory is the desired
        # set: empty. Without --allow-empty that is still refused as a likely mistake.
        paths = [p for p in paths if not _no_manifests(p)]
    result = load_manifests(paths, stdin=sys.stdin.buffer)
    if not result.ok:
        print_diagnostics(result.diagnostics)
        fail(
            f"{len(result.diagnostics)} problems in the manifests; nothing was done",
            "run `recon validate` for the full report",
            code=2,
        )
    return result.resources


def _load_refs(paths: Sequence[str]) -> list[ResourceRef]:
    """What `delete -f` names. Each document must be a valid resource, but what it refers to
    need not be in the files: deleting one guest's manifest file must not need the pool's."""
    docs, read_diags = read_sources(paths, stdin=sys.stdin.buffer)
    result = validate_documents(docs)
    if read_diags or len(result.resources) != len(docs):
        diags = sorted(read_diags + result.diagnostics, key=lambda d: d.sort_key())
        print_diagnostics(diags)
        fail(
            f"{len(diags)} problems in the manifests; nothing was done",
            "run `recon validate` for the full report",
            code=2,
        )
    return [r.ref for r in result.resources]


def _revision(paths: Sequence[str]) -> str | None:
    """The git commit the manifests come from, when they come from a clean work tree."""
    if os.environ.get("RECON_REVISION"):
        return os.environ["RECON_REVISION"]
    first = next((p for p in paths if p != "-"), None)
    if first is None:
        return None
    where = Path(first) if Path(first).is_dir() else Path(first).parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha[:12]}-dirty" if dirty else sha[:12]


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


def _plan_json(plan: Plan, resources: Sequence[Resource], set_name: str) -> dict[str, Any]:
    data = plan.to_json()
    data["recon-plan"] = 1
    # The set the plan was made for: what it creates must be stamped with it, or a later
    # `apply --prune` of another set would count those objects as its own.
    data["set"] = set_name
    data["resources"] = [
        {
            "file": r.file,
            "line": r.line,
            "manifest": r.manifest.model_dump(mode="json", by_alias=True, exclude_unset=True),
        }
        for r in resources
    ]
    return data


def _plan_from_json(data: dict[str, Any]) -> tuple[Plan, list[Resource]]:
    resources = []
    for item in data["resources"]:
        manifest = KINDS[item["manifest"]["kind"]].model_validate(item["manifest"])
        resources.append(Resource(manifest, item["file"], item["line"]))
    plan = Plan(
        changes=[Change.from_json(c) for c in data["changes"]],
        unchanged=[ResourceRef.parse(r) for r in data["unchanged"]],
        fingerprint=data["fingerprint"],
        revision=data.get("revision"),
        host=data["host"],
        warnings=data.get("warnings", []),
    )
    return plan, resources


def _saved_plan(paths: Sequence[str]) -> dict[str, Any] | None:
    if len(paths) != 1 or not paths[0].endswith(".json") or not Path(paths[0]).is_file():
        return None
    try:
        data = json.loads(Path(paths[0]).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        fail(f"{paths[0]}: not a readable plan file", code=2)
    if not isinstance(data, dict) or data.get("recon-plan") != 1:
        fail(f"{paths[0]}: not a plan saved by `recon diff --out`", code=2)
    return data


prune_option = click.option(
    "--prune", is_flag=True, help="Delete objects recon owns in this set that no manifest names."
)
set_option = click.option(
    "--set",
    "set_name",
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


@cli.command()
@click.option("-f", "--filename", "paths", multiple=True, required=True, help=FILES_HELP)
@click.option(
    "-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True
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
@click.pass_context
def diff(
    ctx: click.Context,
    paths: tuple[str, ...],
    output: str,
    out_file: Path | None,
    prune: bool,
    set_name: str,
    allow_empty: bool,
    adopt: bool,
) -> None:
    """Show what apply would change, field by field, with its disruption class.

    Exits 0 when the host matches, 1 when there are changes, 2 or more on errors.
    """
    resources = _load(paths, allow_empty=allow_empty)
    options = PlanOptions(
        prune=prune,
        set_name=set_name,
        allow_empty=allow_empty,
        adopt=adopt,
        revision=_revision(paths),
    )
    with _host(ctx, lock=False) as provider:
        plan = _plan_or_fail(resources, provider.observe(), options, code=2)
    if out_file is not None:
        out_file.write_text(json.dumps(_plan_json(plan, resources, set_name), indent=2) + "\n")
        echo_err(f"plan saved to {out_file}")
    if output == "json":
        print_json(plan.to_json())
    else:
        click.echo(render_plan(plan))
    sys.exit(0 if plan.empty else 1)


@cli.command()
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
@click.option("--dry-run", is_flag=True, help="Show the plan and stop.")
@click.option(
    "--allow-replace", is_flag=True, help="Allow changes that destroy and recreate objects."
)
@click.option(
    "--delete-volumes", is_flag=True, help="With --prune: also delete the disks of pruned guests."
)
@click.option(
    "--shutdown-timeout",
    default=60.0,
    show_default=True,
    help="Seconds to wait for a clean guest shutdown before forcing it off.",
)
@click.option(
    "-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.pass_context
def apply(
    ctx: click.Context,
    paths: tuple[str, ...],
    prune: bool,
    set_name: str,
    allow_empty: bool,
    adopt: bool,
    dry_run: bool,
    allow_replace: bool,
    delete_volumes: bool,
    shutdown_timeout: float,
    output: str,
) -> None:
    """Make the host match the manifests (or a saved plan). Exits 0 on success, 1 if not."""
    saved = _saved_plan(paths)
    if saved is None:
        resources = _load(paths, allow_empty=allow_empty)
        revision = _revision(paths)
    else:
        plan, resources = _plan_from_json(saved)
        revision = plan.revision
        set_name = saved.get("set", set_name)
    options = PlanOptions(
        prune=prune, set_name=set_name, allow_empty=allow_empty, adopt=adopt, revision=revision
    )
    try:
        with _host(ctx, lock=not dry_run) as provider:
            observation = provider.observe()
            if saved is None:
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
                sys.exit(0)
            context = ApplyContext(
                resources={r.ref: r for r in resources},
                observation=observation,
                revision=revision,
                set_name=set_name,
                delete_volumes=delete_volumes,
                shutdown_timeout=shutdown_timeout,
                progress=echo_err,
            )
            result = apply_plan(plan, resources, provider, context)
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
                "skipped": [str(c.ref) for c in result.skipped],
                "summary": result.summary(),
            }
        )
    else:
        for change, detail in result.applied:
            echo_err(f"{change.action.symbol} {change.ref}: {detail}")
        click.echo(render_result(result))
    sys.exit(0 if result.ok else 1)


def _select(observation: Observation, kind: str | None, name: str | None) -> list[Any]:
    objects = [o for o in observation.objects.values() if o.ref.kind != "HostPolicy"]
    if kind:
        resolved = KIND_ALIASES.get(kind.lower())
        if resolved is None:
            fail(f"unknown kind '{kind}'", "one of: " + ", ".join(KINDS), code=2)
        objects = [o for o in objects if o.ref.kind == resolved]
    if name:
        objects = [o for o in objects if o.ref.name == name]
        if not objects:
            fail(f"{kind}/{name} not found on the host", code=1)
    return sorted(objects, key=lambda o: sort_key(o.ref))


@cli.command()
@click.argument("kind", required=False)
@click.argument("name", required=False)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "wide", "yaml", "json"]),
    default="table",
    show_default=True,
)
@click.pass_context
def get(ctx: click.Context, kind: str | None, name: str | None, output: str) -> None:
    """List what is on the host: guests, pools, networks, templates (managed or not)."""
    with _host(ctx, lock=False) as provider:
        observation = provider.observe()
    objects = _select(observation, kind, name)
    if output in ("table", "wide"):
        click.echo(render_inventory(observation, objects, wide=output == "wide"))
        return
    data = [
        {
            "kind": o.ref.kind,
            "name": o.ref.name,
            "uuid": o.uuid,
            "managed": o.owned,
            "running": o.running,
            "fields": o.fields,
            "guaranteedBytes": o.guaranteed_bytes,
            "stamp": None
            if o.stamp is None
            else {
                "file": o.stamp.file,
                "specHash": o.stamp.spec_hash,
                "revision": o.stamp.revision,
                "set": o.stamp.set_name,
            },
        }
        for o in objects
    ]
    if output == "json":
        print_json(data)
    else:
        click.echo(yaml.safe_dump(data, sort_keys=False), nl=False)


@cli.command()
@click.argument("kind", required=False)
@click.argument("name", required=False)
@click.option("-f", "--filename", "paths", multiple=True, help=FILES_HELP)
@click.option("--delete-volumes", is_flag=True, help="Also delete the guests' disks.")
@click.option("--ignore-not-found", is_flag=True, help="Exit 0 when something is not there.")
@click.pass_context
def delete(
    ctx: click.Context,
    kind: str | None,
    name: str | None,
    paths: tuple[str, ...],
    delete_volumes: bool,
    ignore_not_found: bool,
) -> None:
    """Delete what the manifests (or KIND NAME) name. Only objects recon created."""
    if paths:
        refs = _load_refs(paths)
    elif kind and name:
        resolved = KIND_ALIASES.get(kind.lower())
        if resolved is None:
            fail(f"unknown kind '{kind}'", "one of: " + ", ".join(KINDS), code=2)
        refs = [ResourceRef(resolved, name)]
    else:
        fail("say what to delete: -f PATH, or KIND NAME", code=2)
    try:
        with _host(ctx, lock=True) as provider:
            observation = provider.observe()
            changes = []
            missing = 0
            for ref in sorted(refs, key=sort_key, reverse=True):
                obs = observation.objects.get(ref)
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
    click.echo(render_result(result))
    sys.exit(0 if result.ok and (missing == 0 or ignore_not_found) else 1)
