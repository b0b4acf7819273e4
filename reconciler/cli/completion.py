"""Shell completion's callbacks (click's `shell_complete`): KIND from recon's kind names, NAME
from the objects on the host. No command lives here; `recon completion SHELL` prints the
script that calls them (completion_cmds.py).

A completion runs on every TAB: it never fails (no host, a bad --connect: no names), never
creates the embedded host, and takes no lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    # click.shell_completion is imported on a TAB only, not at every start.
    from click.shell_completion import CompletionItem

from reconciler.cli.kind_names import KIND_ALIASES
from reconciler.model.kinds import KINDS


def complete_kind(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    from click.shell_completion import CompletionItem

    words = sorted({*KINDS, *KIND_ALIASES})
    return [CompletionItem(w) for w in words if w.startswith(incomplete)]


def host_names(ctx: click.Context, kind: str | None, *more: str) -> list[str]:
    """Names on the host (of KIND, or of any of the kinds given, if given), or none when the
    host cannot be read."""
    from reconciler.providers.home import default_home
    from reconciler.providers.registry import open_provider

    root = ctx.find_root().params
    uri: str | None = root.get("uri")
    home = Path(root.get("home") or default_home())
    # A word that names no kind filters nothing (it is still being typed).
    wanted = {KIND_ALIASES[k.lower()] for k in (kind, *more) if k and k.lower() in KIND_ALIASES}
    if uri is None and not (home / "host.xml").is_file():
        return []  # a TAB must not create the embedded host
    try:
        provider = open_provider("libvirt", uri, home)
        try:
            objects = provider.observe().objects
        finally:
            provider.close()
    except Exception:  # a completion prints nothing rather than a traceback
        return []
    return sorted(
        ref.name
        for ref in objects
        if ref.name and ref.kind != "HostPolicy" and (not wanted or ref.kind in wanted)
    )


def complete_name(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    from click.shell_completion import CompletionItem

    names = host_names(ctx, ctx.params.get("kind"))
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def complete_guest(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The guests on the host (VMs and containers), for exec, enter and console."""
    from click.shell_completion import CompletionItem

    names = host_names(ctx, "VirtualMachine", "Container")
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]
