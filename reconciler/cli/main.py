"""`recon`: the command group and its global options (--connect, --home), the verbs that
need no host (validate, schema), and the entry point `main()` (pyproject's `recon` script).

The other verbs live in one module each by what they own: plan_cmds.py (diff, apply),
inventory_cmds.py (get, delete), state_cmds.py (observe: the host's exported state),
guest_cmds.py (exec, enter, console: into a guest) and
control_cmds.py (watch, sync, status: the loop, imported only when named). This is the only
module that imports a command module; what the commands share lives in modules that import
none: host.py (opening the host), exported.py (an export instead), manifests.py (loading the
manifests, their git revision), output.py, render.py and markdown.py (printing).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from reconciler import __version__
from reconciler.cli.completion_cmds import completion
from reconciler.cli.explain_cmds import explain
from reconciler.cli.guest_cmds import console, enter, exec_
from reconciler.cli.inventory_cmds import delete, get
from reconciler.cli.manifests import FILES_HELP
from reconciler.cli.output import fail, print_diagnostics, print_json
from reconciler.cli.plan_cmds import apply, diff
from reconciler.cli.state_cmds import observe
from reconciler.cli.template_cmds import template
from reconciler.load.cross_checks import dangling_ref
from reconciler.load.secrets import SecretPolicy, check_places, read_secrets
from reconciler.load.sources import read_sources
from reconciler.load.validate import validate_documents
from reconciler.model.capability_checks import check_manifest
from reconciler.model.diagnostics import Diagnostic, format_path
from reconciler.model.kinds import KINDS
from reconciler.model.schema import all_schemas, schema_filename

_ENV_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _Commands(click.Group):
    """The loop's commands (control_cmds.py) are imported when named (or listed by --help):
    they bring watchdog and prometheus_client, which the other commands do not need at
    start-up."""

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
    "Default (and an empty value): the embedded host in $RECON_HOME. Env: RECON_CONNECT.",
)
@click.option(
    "--home",
    metavar="DIRECTORY",
    envvar="RECON_HOME",
    help="State directory (embedded host, locks). Env: RECON_HOME. Default: ~/.local/state/recon.",
)
@click.option(
    "--secrets-dir",
    metavar="DIRECTORY",
    envvar="RECON_SECRETS_DIR",
    help="The only directory valueFrom.file may read (paths are relative to it). "
    "Env: RECON_SECRETS_DIR. Default: $RECON_HOME/secrets.",
)
@click.option(
    "--secrets-env-prefix",
    metavar="PREFIX",
    envvar="RECON_SECRETS_ENV_PREFIX",
    help="valueFrom.env may name only variables starting with this. "
    "Env: RECON_SECRETS_ENV_PREFIX. Default: only names ending in _PASSWORD.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    uri: str | None,
    home: str | None,
    secrets_dir: str | None,
    secrets_env_prefix: str | None,
) -> None:
    """recon: make a virtualization host match the manifests in git.

    \b
    Exit codes: 0 success (diff, apply --dry-run: no changes). 1: validate
    found invalid manifests, diff or apply --dry-run found changes,
    apply/delete failed or was refused, get found nothing. 2 or more: errors
    (bad usage, invalid manifests for diff or apply, host unreachable, a
    refused plan for diff).
    """
    from reconciler.providers.libvirt.embedded import default_home

    if home is not None and not home.strip():
        # An empty RECON_HOME would put host.xml and the locks in the current directory.
        raise click.BadParameter(
            "give a directory, or leave it out for the default", ctx, param_hint="--home"
        )
    for value, flag in (
        (secrets_dir, "--secrets-dir"),
        (secrets_env_prefix, "--secrets-env-prefix"),
    ):
        if value is not None and not value.strip():
            # Empty must not quietly mean "anywhere" or "any variable".
            raise click.BadParameter(
                "give a value, or leave it out for the default", ctx, param_hint=flag
            )
    if secrets_env_prefix is not None and not _ENV_PREFIX.fullmatch(secrets_env_prefix):
        raise click.BadParameter(
            "a prefix of environment variable names: letters, digits and _",
            ctx,
            param_hint="--secrets-env-prefix",
        )
    state = Path(home) if home else default_home()
    policy = SecretPolicy(
        Path(secrets_dir).absolute() if secrets_dir else state.absolute() / "secrets",
        secrets_env_prefix,
    )
    # An empty --connect means what an empty RECON_CONNECT means: the embedded host, never
    # libvirt's own default URI (which, as root, is the real qemu:///system).
    ctx.obj = {"uri": uri or None, "home": state, "secrets": policy}


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
@click.option(
    "--allow-host-refs",
    is_flag=True,
    help="References to objects no manifest defines are notes, not problems: apply looks "
    "for them among what recon owns on the host.",
)
@click.option(
    "--secrets",
    "read_values",
    is_flag=True,
    help="Also read every secret the manifests reference; a missing or unreadable one "
    "exits 2. The values are never printed.",
)
@click.pass_context
def validate(
    ctx: click.Context,
    paths: tuple[str, ...],
    output: str,
    driver: str | None,
    allow_host_refs: bool,
    read_values: bool,
) -> None:
    """Check manifests offline: syntax, schema, types, references. No host is contacted.

    Exits 0 when every manifest is valid and 1 when any is not; all problems are
    reported at once, each with FILE:LINE:COL, Kind/name and the field. With --driver,
    what that driver can never do is a problem too; what it may not do is a warning. A
    secret referenced outside the secrets directory or env prefix is a problem; with
    --secrets, a secret that cannot be read exits 2.
    """
    policy: SecretPolicy = ctx.obj["secrets"]
    docs, read_diags = read_sources(paths, stdin=sys.stdin.buffer)
    result = validate_documents(docs, with_schema=True)
    result.files = sorted({d.file for d in docs})
    result.diagnostics += check_places(result.resources, policy, result.contexts)
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
    notes: list[Diagnostic] = []
    if allow_host_refs:
        notes = [d for d in result.diagnostics if dangling_ref(d)]
        result.diagnostics = [d for d in result.diagnostics if not dangling_ref(d)]
    if output == "json":
        print_json(
            {
                "valid": result.ok,
                "files": result.files,
                "resources": [str(r.ref) for r in result.resources] if result.ok else [],
                "diagnostics": [d.to_json() for d in result.diagnostics],
                "warnings": [d.to_json() for d in warnings],
                "notes": [d.to_json() for d in notes],
            }
        )
    else:
        for warning in sorted(warnings, key=lambda d: d.sort_key()):
            click.echo("warning" + warning.render()[len("error") :], err=True)
        for note in notes:
            head = note.render().partition("\n")[0][len("error") :]
            click.echo(f"note{head}; apply looks for it on the host", err=True)
        print_diagnostics(result.diagnostics)
        if result.ok:
            click.echo(f"{len(result.resources)} resources in {len(result.files)} files are valid")
        else:
            click.echo(f"{len(result.diagnostics)} problems found; nothing was applied", err=True)
    if result.ok and read_values:
        _values, missing = read_secrets(result.resources, policy, result.contexts)
        if missing:
            print_diagnostics(missing)
            fail(f"{len(missing)} secrets cannot be read; nothing was applied", code=2)
        click.echo(f"{len(_values)} secrets can be read", err=True)
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


# The verbs that talk to a host, from the modules that own them.
cli.add_command(diff)
cli.add_command(apply)
cli.add_command(get)
cli.add_command(delete)
cli.add_command(observe)
cli.add_command(explain)
cli.add_command(completion)
cli.add_command(template)
cli.add_command(exec_)
cli.add_command(enter)
cli.add_command(console)


def main() -> None:
    cli()
