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
import re
import signal
import subprocess
from contextlib import suppress
from typing import Any

import libvirt

from reconciler.model.kinds import Container
from reconciler.model.plan import Action, Change
from reconciler.model.resource import Resource
from reconciler.providers.base import (
    ApplyContext,
    ExecResult,
    Observed,
    ProviderError,
    UnsupportedError,
)
from reconciler.providers.libvirt import host as lh
from reconciler.providers.libvirt.common import Host
from reconciler.providers.libvirt.guests import agent

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
    stdin: bytes | None = None,
) -> ExecResult:
    """Run argv (searched on the container's PATH) inside the running container; its exit
    status, stdout and stderr. After timeout seconds the command and what it started in its
    process group are killed and that is an error. stdin: bytes for its standard input (a
    pipe, never a file); none is /dev/null."""
    if not argv:
        raise ProviderError(f"Container/{dom.name()}: no command to run")
    pid = init_pid(host, dom)
    return run_inside(pid, argv, timeout, stdin, f"Container/{dom.name()}")


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


# --- settings inside the container -------------------------------------------------------------

# How long the settings and the read-back may take inside one container.
SETTINGS_TIMEOUT = 60.0
READ_TIMEOUT = 10.0
# What the read-back takes of each authorized_keys file at most.
_KEYS_BYTES = 65536

# Arguments: HOSTNAME ("" to leave it) PASSWORDS (1: chpasswd reads user:password lines on
# stdin), then per user: NAME COUNT KEY... (COUNT "-": the user's keys are not managed). Data
# travels as arguments (one each, each well under the kernel's 128 KiB limit for one) and
# passwords through the pipe only: nothing is quoted into the script.
_SETTINGS = r"""
set -eu
umask 022
name=$1 passwords=$2
shift 2
if [ -n "$name" ]; then
  printf '%s\n' "$name" > /etc/.hostname.recon
  mv -f /etc/.hostname.recon /etc/hostname
  if command -v hostname >/dev/null 2>&1; then hostname "$name"
  else printf '%s' "$name" > /proc/sys/kernel/hostname; fi
  echo "hostname set"
fi
while [ $# -gt 0 ]; do
  user=$1 count=$2
  shift 2
  if ! getent passwd "$user" >/dev/null; then
    useradd -m "$user"
    echo "user $user created"
  fi
  [ "$count" = - ] && continue
  home=$(getent passwd "$user" | cut -d: -f6)
  group=$(id -g "$user")
  if [ -z "$home" ] || [ ! -d "$home" ]; then
    echo "the home of $user ($home) is not a directory" >&2; exit 3
  fi
  if [ -L "$home/.ssh" ] || [ -L "$home/.ssh/authorized_keys" ]; then
    echo "$home/.ssh or its authorized_keys is a symbolic link: not followed" >&2; exit 3
  fi
  mkdir -p "$home/.ssh"
  chown "$user:$group" "$home/.ssh"
  chmod 700 "$home/.ssh"
  tmp=$home/.ssh/.authorized_keys.recon
  rm -f "$tmp"
  (umask 077; : > "$tmp")
  i=0
  while [ "$i" -lt "$count" ]; do
    printf '%s\n' "$1" >> "$tmp"
    shift
    i=$((i + 1))
  done
  chown "$user:$group" "$tmp"
  mv -f "$tmp" "$home/.ssh/authorized_keys"
  echo "ssh keys of $user set"
done
if [ "$passwords" = 1 ]; then
  chpasswd
  echo "passwords set"
fi
"""

# Arguments: the users whose keys to read. Prints the live hostname, /etc/hostname's first
# line, then per user a record separator (\036) and its name, and its authorized_keys.
_READ = r"""
uname -n
head -n 1 /etc/hostname 2>/dev/null || echo
for user do
  printf '\036%s\n' "$user"
  home=$(getent passwd "$user" | cut -d: -f6)
  [ -n "$home" ] && head -c {keys} "$home/.ssh/authorized_keys" 2>/dev/null
  echo
done
exit 0
""".replace("{keys}", str(_KEYS_BYTES))

_KEYS_FIELD = re.compile(r"^guest\.users\[([^\]]+)\]\.sshAuthorizedKeys$")
HOSTNAME_FIELDS = ("hostname", "guest.hostname")


def _hostname(manifest: Container) -> str | None:
    guest = manifest.spec.guest
    return manifest.spec.hostname or (guest.hostname if guest is not None else None)


def container_settings(
    host: Host,
    dom: libvirt.virDomain,
    resource: Resource,
    change: Change,
    started: bool,
    context: ApplyContext,
) -> list[str]:
    """The hostname, users, their keys and passwords, set inside the running container when
    the change touches them (or it was just started, made or made again); notes for the
    apply's output. Only on the lxc driver: elsewhere they stay recorded in the stamp (the
    capability table says so). A stopped container gets them when recon starts it."""
    manifest = resource.manifest
    if not isinstance(manifest, Container) or host.driver != "lxc":
        return []
    users = manifest.spec.guest.users if manifest.spec.guest is not None else []
    name = _hostname(manifest)
    if name is None and not users:
        return []
    touched = (
        started
        or change.action in (Action.CREATE, Action.REPLACE)
        or any(f.path in HOSTNAME_FIELDS or f.path.startswith("guest.") for f in change.fields)
    )
    if not touched or not dom.isActive():
        return []
    args = [name or "", "0"]
    passwords = []
    for user in users:
        keys = user.ssh_authorized_keys
        managed = "ssh_authorized_keys" in user.model_fields_set
        args += [user.name, str(len(keys)) if managed else "-", *(keys if managed else [])]
        if user.password is not None:
            value = context.secrets[(resource.ref, f"guest.users[{user.name}].password")]
            if "\n" in value or "\r" in value:
                raise ProviderError(
                    f"{resource.ref}: the password of {user.name} holds a line break, which "
                    "chpasswd cannot set; nothing was set inside the container",
                    "put the password on one line in its secret",
                )
            passwords.append(f"{user.name}:{value}\n")
    if passwords:
        args[1] = "1"
    what = str(resource.ref)
    try:
        done = run_inside(
            init_pid(host, dom),
            ["/bin/sh", "-c", _SETTINGS, "recon-settings", *args],
            SETTINGS_TIMEOUT,
            "".join(passwords).encode() if passwords else None,
            what,
        )
    except ProviderError:
        _forget_passwords(dom)
        raise
    if done.exit_code != 0:
        _forget_passwords(dom)
        # Its messages are the script's and the tools' (useradd, chpasswd): they never
        # carry a password, which reaches chpasswd on its standard input only.
        why = done.stderr.decode(errors="replace").strip().splitlines()
        raise ProviderError(
            f"{what}: setting the hostname and users inside failed (exit {done.exit_code}): "
            + (why[-1] if why else "no message"),
            "the next apply tries again",
        )
    return [line for line in done.stdout.decode(errors="replace").splitlines() if line]


def _forget_passwords(dom: libvirt.virDomain) -> None:
    """Passwords are not read back: a stamp that recorded them as set would make no later
    apply try again. (The hostname and keys are read back, so their drift shows anyway.)"""
    agent._forget_applied(dom, "guest.users", fields=False)


def observe_container_guest(
    host: Host, dom: libvirt.virDomain, observed: Observed
) -> dict[str, Any]:
    """The hostname and users' authorized keys of a running container recon owns, read from
    inside it, under the keys its stamp recorded them as applied (`hostname` or
    `guest.hostname`, `guest.users[NAME].sshAuthorizedKeys`); nothing for a container without
    them. One command per container, bounded in time and size. When it cannot be read, those
    keys are None (a difference, never "as applied") and observed.extra["guest"] says why."""
    stamp = observed.stamp
    if host.driver != "lxc" or not host.local or not observed.running or not observed.owned:
        return {}
    assert stamp is not None
    names = [key for key in HOSTNAME_FIELDS if key in stamp.applied]
    users = {}
    for key in stamp.applied:
        found = _KEYS_FIELD.match(key)
        if found is not None:
            users[found.group(1)] = key
    if not names and not users:
        return {}
    what = str(observed.ref)
    try:
        done = run_inside(
            init_pid(host, dom),
            ["/bin/sh", "-c", _READ, "recon-read", *users],
            READ_TIMEOUT,
            None,
            what,
        )
        if done.exit_code != 0:
            raise ProviderError(done.stderr.decode(errors="replace").strip() or "no message")
    except ProviderError as exc:
        observed.extra["guest"] = f"not readable: {exc}"
        return dict.fromkeys([*names, *users.values()])
    records = done.stdout.decode(errors="replace").split("\x1e")
    head = [*records[0].splitlines(), "", ""]
    live, written = head[0].strip(), head[1].strip()
    out: dict[str, Any] = {}
    # /etc/hostname edited without the live name: what the next boot takes is drift too.
    shown = live if written in ("", live) else f"{live} (/etc/hostname: {written})"
    for key in names:
        out[key] = shown
    for record in records[1:]:
        user, _, body = record.partition("\n")
        if user in users:
            out[users[user]] = [
                line.rstrip("\r")
                for line in body.splitlines()
                if line.strip() and not line.lstrip().startswith("#")
            ]
    observed.extra["guest"] = "read"
    return out
