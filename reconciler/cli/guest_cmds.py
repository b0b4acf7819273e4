"""`recon exec`, `recon enter` and `recon console`: into a guest on the host, by its name.

exec runs one command inside the guest (a VM's guest agent, a container's namespaces) and
becomes it: its output on recon's stdout and stderr, its exit code recon's. enter and console
hand the terminal over: recon finds the host command that attaches to the guest (virsh
console on a VM's serial port, the container's namespaces) and replaces itself with it.

main.py adds these commands to `recon`; this module imports no other command module.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys

import click

from reconciler.cli.completion import complete_guest
from reconciler.cli.host import open_host
from reconciler.cli.output import fail
from reconciler.model.errors import ReconError
from reconciler.model.refs import ResourceRef
from reconciler.providers.base import ExecTimeout

# The name is enough to find a guest (libvirt's names are unique on a host); the tools used
# are the host driver's, whatever the kind.
_GUEST = "Guest"
# Exit codes of recon's own, as `timeout` and shells use them.
TIMED_OUT = 124
NOT_FOUND = 127
# The signals Python ignores at startup (see _hand_over).
_RESTORED = (signal.SIGPIPE, signal.SIGXFSZ)


def _ref(name: str) -> ResourceRef:
    return ResourceRef(_GUEST, name)


@click.command(
    "exec",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("name", shell_complete=complete_guest)
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD [ARGS]...")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds the command may run; past them recon exits 124 (it may still run inside).",
)
@click.pass_context
def exec_(ctx: click.Context, name: str, argv: tuple[str, ...], timeout: float) -> None:
    """Run a command inside the guest NAME and exit with its exit code.

    \b
    A VM runs it through its guest agent (the guest's PATH is searched; no shell unless you
    run one: recon exec web-1 -- /bin/sh -c 'cmd | cmd'); a container in its namespaces.
    Its stdout and stderr come out on recon's, once it has finished.
    Exit codes: the command's own; 2 when it cannot be run (no such guest, the guest is
    stopped, its agent does not answer, the host cannot); 124 past --timeout.
    """
    command = _command(argv)
    if not command:
        raise click.UsageError("give the command to run after --", ctx)
    try:
        with open_host(ctx, lock=False) as provider:
            result = provider.exec(_ref(name), command, timeout)
    except ExecTimeout as exc:
        fail(str(exc), exc.hint, code=TIMED_OUT)
    except ReconError as exc:
        fail(str(exc), exc.hint, code=2)
    sys.stdout.buffer.write(result.stdout)
    sys.stdout.buffer.flush()
    sys.stderr.buffer.write(result.stderr)
    sys.stderr.buffer.flush()
    sys.exit(result.exit_code)


def _command(argv: tuple[str, ...]) -> list[str]:
    """The guest's command: what follows `--` (which click passes on once options stop being
    parsed), or the words after NAME without it."""
    words = list(argv)
    return words[1:] if words[:1] == ["--"] else words


def _hand_over(argv: list[str]) -> None:
    """Replace recon with argv (the terminal is the user's from here on)."""
    if shutil.which(argv[0]) is None:
        fail(
            f"{argv[0]} is not installed on this machine",
            "install libvirt-clients (it has virsh)",
            code=NOT_FOUND,
        )
    sys.stdout.flush()
    sys.stderr.flush()
    # Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored across exec: a
    # shell would keep them ignored for every command it runs (`yes | head` would end in
    # "Broken pipe" errors instead of quietly). What runs next gets the defaults, as
    # subprocess's restore_signals gives a child.
    before = {number: signal.signal(number, signal.SIG_DFL) for number in _RESTORED}
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        for number, handler in before.items():
            signal.signal(number, handler)
        fail(f"cannot run {argv[0]}: {exc.strerror}", code=2)


def _need_terminal(verb: str) -> None:
    if not sys.stdin.isatty():
        fail(
            f"recon {verb} needs a terminal on standard input",
            "run it from a terminal; for one command without one use `recon exec`",
            code=2,
        )


@click.command()
@click.argument("name", shell_complete=complete_guest)
@click.argument("argv", nargs=-1, type=click.UNPROCESSED, metavar="[-- CMD [ARGS]...]")
@click.pass_context
def enter(ctx: click.Context, name: str, argv: tuple[str, ...]) -> None:
    """An interactive terminal inside the guest NAME.

    A container: its shell (or CMD) in its namespaces. A VM: its serial console, where its
    getty asks for a login (a user and password from the manifest); Ctrl+] leaves.
    """
    _need_terminal("enter")
    try:
        with open_host(ctx, lock=False) as provider:
            command = provider.enter_argv(_ref(name), _command(argv))
    except ReconError as exc:
        fail(str(exc), exc.hint, code=2)
    _hand_over(command)


@click.command()
@click.argument("name", shell_complete=complete_guest)
@click.pass_context
def console(ctx: click.Context, name: str) -> None:
    """Attach the terminal to the console of the guest NAME (virsh console; Ctrl+] leaves).

    A VM's console is its serial port (every VM recon defines on QEMU has one, and a built
    template's kernel and getty use it).
    """
    _need_terminal("console")
    try:
        with open_host(ctx, lock=False) as provider:
            command = provider.console_argv(_ref(name))
    except ReconError as exc:
        fail(str(exc), exc.hint, code=2)
    _hand_over(command)
