"""`recon validate` and `recon schema`: the verbs that need no host. validate checks
manifests offline (syntax, schema, types, references, and with --driver what that driver can
do); schema prints or writes the JSON Schema of each kind.

main.py names these verbs in its table; this module imports no other command module.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from reconciler.cli.output import fail, print_diagnostics, print_json
from reconciler.cli.params import FILES_HELP
from reconciler.load.cross_checks import dangling_ref
from reconciler.load.secrets import SecretPolicy, check_places, read_secrets
from reconciler.load.sources import read_sources
from reconciler.load.validate import validate_documents
from reconciler.model.diagnostics import Diagnostic, format_path
from reconciler.model.kinds import KINDS
from reconciler.model.schema import all_schemas, schema_filename


@click.command()
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
        from reconciler.model.capability_checks import check_manifest  # only with --driver

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


@click.command()
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
