"""Inside a running container on libvirt's LXC driver: run a command, enter it with a
terminal. What runs there is nsenter (util-linux) on the container's init, on this host.

Why nsenter, and not the other ways in (see docs/guest-tools.md):
- `virsh lxc-enter-namespace` swallows the command's exit status (any non-zero status becomes
  virsh's own "unexpected exit status" error and 1), and execs without a PATH search;
- libvirt-python 9.0 binds lxcOpenNamespace but not lxcEnterNamespace, Python 3.11 has no
  os.setns, and setns through ctypes in a forked child of a process that runs libvirt's
  event thread is fragile (a fork of a threaded process may only exec);
- nsenter enters every namespace of the init (mount, UTS, IPC, network, PID; with `-a` the
  ones it shares with the host are left as they are), takes its root and working directory,
  forks into its PID namespace, and exits with the command's own status (126/127 when it
  cannot run it, like a shell).
The init is found through the libvirt_lxc controller libvirtd recorded for the container (its
pid file names the controller, whose command line must name the container): only on the host
libvirtd runs on.

The command gets a small environment of its own, never recon's (which may hold secret values
in the variables that manifests reference).
"""

from __future__ import annotations

import os
import signal
import subprocess
from contextlib import suppress

import libvirt

from reconciler.providers.base import ExecResult, ProviderError, UnsupportedError
from reconciler.providers.libvirt import host as lh
from reconciler.providers.libvirt.common import Host

NSENTER = "nsenter"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ENV = {"PATH": PATH, "HOME": "/root", "LC_ALL": "C"}
# A login shell as root: su's (it reads root's shell from the container's passwd and starts
# a clean login environment), else the container's sh.
LOGIN = [
    "/bin/sh",
    "-c",
    "if command -v su >/dev/null 2>&1; then exec su -l root; fi; exec /bin/sh -l",
]


def init_pid(host: Host, dom: libvirt.virDomain) -> int:
    """The host pid of the running container's init; a clear error when there is none."""
    name = dom.name()
    if host.driver != "lxc":
        raise UnsupportedError(
            f"Container/{name}: commands inside a container run on the lxc driver only "
            f"(this host is {host.driver})"
        )
    if not host.local:
        raise UnsupportedError(
            f"Container/{name}: recon enters a container with nsenter on the host itself, "
            "and this lxc host is remote",
            "run recon on the host (lxc:///system)",
        )
    if not dom.isActive():
        raise ProviderError(
            f"Container/{name} is not running",
            "start it: state: Running in its manifest, then recon apply",
        )
    pid = lh.container_init_pid(name)
    if pid is None:
        raise ProviderError(
            f"Container/{name}: its init process was not found (no libvirt_lxc controller "
            f"for it in {lh.LIBVIRT_RUN / 'lxc'})",
            "the container may be starting or stopping; try again",
        )
    return pid


def _nsenter(pid: int, argv: list[str]) -> list[str]:
    return [NSENTER, "-t", str(pid), "-a", "--", *argv]


def exec_in_container(
    host: Host,
    dom: libvirt.virDomain,
    argv: list[str],
    timeout: float,
) -> ExecResult:
    """Run argv (searched on the container's PATH) inside the running container, its standard
    input /dev/null; its exit status, stdout and stderr. After timeout seconds the command and
    what it started in its process group are killed and that is an error."""
    if not argv:
        raise ProviderError(f"Container/{dom.name()}: no command to run")
    pid = init_pid(host, dom)
    return run_inside(pid, argv, timeout, None, f"Container/{dom.name()}")


def run_inside(
    pid: int, argv: list[str], timeout: float, stdin: bytes | None, what: str
) -> ExecResult:
    try:
        proc = subprocess.Popen(
            _nsenter(pid, argv),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=ENV,
            # Its own process group: a timeout kills nsenter and the command it forked.
            start_new_session=True,
        )
    except OSError as exc:
        raise ProviderError(
            f"{what}: cannot run {NSENTER}: {exc.strerror}",
            "install util-linux on the host",
        ) from None
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise ProviderError(
            f"{what}: {argv[0]} did not finish within {timeout:g}s and was killed",
            "give it more time (a longer timeout), or look inside the container",
        ) from None
    except BaseException:
        _kill_group(proc)
        raise
    code = proc.returncode
    # Killed by a signal (nsenter re-raises the command's): reported as a shell does.
    return ExecResult(128 - code if code < 0 else code, out, err)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def enter_argv(host: Host, dom: libvirt.virDomain, argv: list[str]) -> list[str]:
    """The host command line (for os.execvp, with the caller's terminal) that runs argv
    inside the running container, by default a login shell as root. Its environment is
    replaced (env -i): only TERM is kept from the caller's."""
    pid = init_pid(host, dom)
    term = os.environ.get("TERM", "dumb")
    return [
        "env",
        "-i",
        f"TERM={term}",
        *(f"{key}={value}" for key, value in ENV.items() if key != "LC_ALL"),
        *_nsenter(pid, argv or LOGIN),
    ]
