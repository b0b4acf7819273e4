"""`recon observe`: export the host's state (the bulk observation) for planning elsewhere, as
`recon diff --host-state FILE` does in a pipeline that cannot reach the host.

main.py adds this command to `recon`; this module imports no other command module.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from reconciler.cli.host import open_host
from reconciler.cli.output import fail
from reconciler.cli.render import echo_err
from reconciler.model.errors import ReconError
from reconciler.model.host_state import FORMAT, host_state_schema
from reconciler.providers.snapshot import dump_host_state, write_host_state


@click.command()
@click.option(
    "--out",
    "out_file",
    default="-",
    show_default=True,
    metavar="PATH",
    help="Write the export here (atomically); '-' writes standard output.",
)
@click.option(
    "--schema",
    "print_schema",
    is_flag=True,
    help=f"Print the JSON Schema of the export format ({FORMAT}) and stop.",
)
@click.pass_context
def observe(ctx: click.Context, out_file: str, print_schema: bool) -> None:
    """Export what recon sees on the host, for `recon diff --host-state FILE`.

    Every object with its fields, recon's stamps, state, uuid and memory, the host's facts
    and capabilities, and the observation's fingerprint, as a versioned JSON document
    (schemas/host-state.json). Secret values are not in it: recon never keeps one.
    """
    if print_schema:
        click.echo(json.dumps(host_state_schema(), indent=2))
        return
    with open_host(ctx, lock=False) as provider:
        observation = provider.observe()
    if out_file == "-":
        click.echo(dump_host_state(observation), nl=False)
        return
    path = Path(out_file)
    try:
        write_host_state(path, observation)
    except (OSError, ReconError) as exc:
        fail(f"{path}: cannot write the host state ({exc})", code=2)
    echo_err(
        f"host state of {observation.host.uri} ({len(observation.objects)} objects) "
        f"written to {path}"
    )
