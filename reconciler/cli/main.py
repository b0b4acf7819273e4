"""`recon`: the command group, its global options (--connect, --home, --secrets-*), and the
entry point `main()` (pyproject's `recon` script).

Every verb lives in a command module (*_cmds.py) by what it owns, and is imported only when
it runs: VERBS below names its module and the short help `recon --help` lists, so `--help`,
`--version` and a TAB on a verb import no command, no model and no host. This is the only
module that loads a command module; what the commands share lives in modules that load none:
host.py (opening the host), exported.py (an export instead), manifests.py (loading the
manifests, their git revision), output.py, render.py and markdown.py (printing).

To add a verb: write it as a click command in a *_cmds.py module and add one line to VERBS:
    "enter": ("guest_cmds", "An interactive terminal inside the guest NAME."),
(the attribute defaults to the verb's name; the help is the first sentence of its docstring,
which tests/cli/test_startup.py checks), and name the module in pyproject's import-linter
contract for the command modules.
"""

from __future__ import annotations

import gc
import importlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler import __version__
from reconciler.load.secret_policy import SecretPolicy
from reconciler.providers.home import default_home

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

_ENV_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# verb -> ("module[:attribute]" under reconciler.cli, its short help in `recon --help`).
VERBS: dict[str, tuple[str, str]] = {
    "apply": ("plan_cmds", "Make the host match the manifests (or a saved plan)."),
    "completion": ("completion_cmds", "Print the shell completion script for SHELL."),
    "delete": ("inventory_cmds", "Delete what the manifests (or KIND NAME) name."),
    "diff": (
        "plan_cmds",
        "Show what apply would change, field by field, with its disruption class.",
    ),
    "console": (
        "guest_cmds",
        "Attach the terminal to the console of the guest NAME (virsh console; Ctrl+] leaves).",
    ),
    "enter": ("guest_cmds", "An interactive terminal inside the guest NAME."),
    "exec": (
        "guest_cmds:exec_",
        "Run a command inside the guest NAME and exit with its exit code.",
    ),
    "explain": (
        "explain_cmds",
        "Describe a kind or one of its fields: type, default, allowed values, doc text.",
    ),
    "get": (
        "inventory_cmds",
        "List what is on the host: guests, pools, networks, templates (managed or not).",
    ),
    "observe": (
        "state_cmds",
        "Export what recon sees on the host, for `recon diff --host-state FILE`.",
    ),
    "schema": (
        "validate_cmds",
        "Print the JSON Schema of a kind (or write all of them, as in schemas/).",
    ),
    "status": (
        "control_cmds",
        "What the loop last saw: each resource Ready / Reconciling / Stalled / Drifted, "
        "with the reason, the last applied revision, the last error, and the last runs.",
    ),
    "sync": ("control_cmds", "Keep the host equal to a branch of a git repository (GitOps)."),
    "template": ("template_cmds", "Built templates (EZ template caches): list them, build one."),
    "validate": (
        "validate_cmds",
        "Check manifests offline: syntax, schema, types, references.",
    ),
    "watch": (
        "control_cmds",
        "Keep the host equal to manifest files: on every change, on host events, and on a timer.",
    ),
}


def load_verb(name: str) -> click.Command:
    """The command of a verb in VERBS, its module imported now."""
    module, _, attribute = VERBS[name][0].partition(":")
    command = getattr(importlib.import_module(f"reconciler.cli.{module}"), attribute or name)
    assert isinstance(command, click.Command), name
    return command


# Verbs that read the host whatever their manifests hold, and without the host lock: the
# host is opened in a thread before the verb's modules are imported (providers/ahead.py).
OPEN_AHEAD = frozenset({"diff"})


def _open_ahead(ctx: click.Context, args: list[str]) -> None:
    """Start opening the host the group's options name, as the group will read them. Not
    for a verb's --help, nor for a diff against an export (--host-state); not for a home
    with no embedded host yet (opening would create it)."""
    if any(arg in ("-h", "--help") or arg.startswith("--host-state") for arg in args):
        return
    from reconciler.providers import ahead

    uri: str | None = ctx.params.get("uri") or None
    home: str | None = ctx.params.get("home")
    if uri is not None:
        ahead.start(uri)
    elif home is None or home.strip():
        node_file = _state_dir(home) / "host.xml"
        if node_file.exists():
            ahead.start(ahead.node_file_uri(node_file), node_file)


def _state_dir(home: str | None) -> Path:
    return Path(home) if home else default_home()


class LazyGroup(click.Group):
    """`recon`'s verbs from VERBS, each imported when it is run (or its own --help is
    asked); the list in --help and the verbs a TAB offers come from the table."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] in OPEN_AHEAD and not ctx.resilient_parsing:
            _open_ahead(ctx, args[1:])
        return super().resolve_command(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *VERBS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in VERBS and cmd_name not in self.commands:
            return load_verb(cmd_name)
        return super().get_command(ctx, cmd_name)

    def _short_help(self, name: str, limit: int) -> str:
        if name in VERBS and name not in self.commands:
            # A stand-in with the table's text, shortened as click shortens a command's own.
            return click.Command(name, help=VERBS[name][1]).get_short_help_str(limit)
        command = self.commands[name]
        return command.get_short_help_str(limit)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        with formatter.section("Commands"):
            formatter.write_dl([(name, self._short_help(name, limit)) for name in names])

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        from click.shell_completion import CompletionItem

        verbs = [
            CompletionItem(name, help=self._short_help(name, 45))
            for name in self.list_commands(ctx)
            if name.startswith(incomplete)
        ]
        # The group's own options (click.Command's part of Group.shell_complete).
        return verbs + click.Command.shell_complete(self, ctx, incomplete)


@click.group(cls=LazyGroup, context_settings=CONTEXT)
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
    state = _state_dir(home)
    policy = SecretPolicy(
        Path(secrets_dir).absolute() if secrets_dir else state.absolute() / "secrets",
        secrets_env_prefix,
    )
    # An empty --connect means what an empty RECON_CONNECT means: the embedded host, never
    # libvirt's own default URI (which, as root, is the real qemu:///system).
    ctx.obj = {"uri": uri or None, "home": state, "secrets": policy}


# Python collects its youngest generation every 700 new containers by default: loading
# builds a dict, list or tuple for every node of every manifest, which kept the collector
# busy (and every tenth pass through the older objects) for about a tenth of a validate's
# CPU time. Cycles are still collected, only less often.
GC_THRESHOLDS = (10_000, 50, 100)


def main() -> None:
    gc.set_threshold(*GC_THRESHOLDS)
    cli()
