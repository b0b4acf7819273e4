"""`recon completion bash|zsh|fish`: the script that makes a shell complete recon's verbs,
options, kinds and the names of objects on the host (click's completion, `_RECON_COMPLETE`).

main.py adds this command to `recon`; this module imports no other command module.
"""

from __future__ import annotations

import click

SHELLS = ("bash", "zsh", "fish")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for SHELL.

    \b
    bash:  recon completion bash > ~/.local/share/bash-completion/completions/recon
    zsh:   recon completion zsh > "${fpath[1]}/_recon"
    fish:  recon completion fish > ~/.config/fish/completions/recon.fish
    or for this shell only: eval "$(recon completion bash)"
    """
    from click.shell_completion import get_completion_class

    root = ctx.find_root()
    cls = get_completion_class(shell)
    assert cls is not None  # every choice is one of click's shells
    name = root.info_name or "recon"
    script = cls(root.command, {}, name, "_RECON_COMPLETE").source()
    click.echo(script)
