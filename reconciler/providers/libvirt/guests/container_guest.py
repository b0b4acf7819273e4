"""A container's settings inside it on libvirt's LXC driver: hostname, resolver, users, their
ssh keys and passwords, set through its namespaces (container_tools) and read back from it, so
that a change made inside is drift. See docs/guest-tools.md."""

from __future__ import annotations

import re
import time
from typing import Any

import libvirt

from reconciler.model.kinds import Container
from reconciler.model.plan import Action, Change
from reconciler.model.resource import Resource
from reconciler.providers.base import ApplyContext, Observed, ProviderError
from reconciler.providers.libvirt.common import Host, forget_applied
from reconciler.providers.libvirt.guests.container_tools import init_pid, run_inside

# How long the settings and the read-back may take inside one container.
SETTINGS_TIMEOUT = 60.0
READ_TIMEOUT = 10.0
# Tries of the settings right after a start.
_BOOT_ATTEMPTS = 3
# What the read-back takes of each authorized_keys file at most.
_KEYS_BYTES = 65536

# Arguments: HOSTNAME ("" to leave it) PASSWORDS (1: chpasswd reads user:password lines on
# stdin) RESOLV (the whole of /etc/resolv.conf; "" to leave it), then per user: NAME COUNT
# KEY... (COUNT "-": the user's keys are not managed). Data travels as arguments (one each,
# each well under the kernel's 128 KiB limit for one) and passwords through the pipe only:
# nothing is quoted into the script.
_SETTINGS = r"""
set -eu
umask 022
name=$1 passwords=$2 resolv=$3
shift 3
if [ -n "$resolv" ]; then
  printf '%s' "$resolv" > /etc/.resolv.conf.recon
  mv -f /etc/.resolv.conf.recon /etc/resolv.conf
  echo "resolv.conf written"
fi
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

# Arguments: RESOLV (1: read /etc/resolv.conf), then the users whose keys to read. Prints the
# live hostname, /etc/hostname's first line, resolv.conf after a group separator (\035), then
# per user a record separator (\036), its name, and its authorized_keys.
_READ = r"""
uname -n
head -n 1 /etc/hostname 2>/dev/null || echo
if [ "$1" = 1 ]; then printf '\035'; head -c 8192 /etc/resolv.conf 2>/dev/null; fi
shift
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


def resolv_conf(manifest: Container) -> str:
    """The container's /etc/resolv.conf from spec.dns; "" when it has none."""
    dns = manifest.spec.dns
    if dns is None:
        return ""
    lines = ["# written by recon from the manifest's spec.dns"]
    lines += [f"nameserver {address}" for address in dns.nameservers]
    if dns.search:
        lines.append("search " + " ".join(dns.search))
    return "\n".join(lines) + "\n"


def _resolver(text: str) -> dict[str, list[str]]:
    """dns.nameservers and dns.search as a resolv.conf says them (the last search wins)."""
    nameservers: list[str] = []
    search: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            nameservers.append(words[1])
        elif words and words[0] in ("search", "domain"):
            search = words[1:]
    return {"dns.nameservers": nameservers, "dns.search": search}


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
    if name is None and not users and manifest.spec.dns is None:
        return []
    touched = (
        started
        or change.action in (Action.CREATE, Action.REPLACE)
        or any(
            f.path in HOSTNAME_FIELDS or f.path.startswith(("guest.", "dns."))
            for f in change.fields
        )
    )
    if not touched or not dom.isActive():
        return []
    args = [name or "", "0", resolv_conf(manifest)]
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
    # Just started, its own boot may hold the password files' lock for a moment (systemd-
    # sysusers, tmpfiles): the script is safe to run again.
    attempts = _BOOT_ATTEMPTS if started else 1
    for attempt in range(attempts):
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
        if done.exit_code == 0 or attempt == attempts - 1:
            break
        time.sleep(1.0)
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
    forget_applied(dom, "guest.users", fields=False)


_RESOLVER_FIELDS = ("dns.nameservers", "dns.search")


def reads_back(host: Host, obs: Observed) -> bool:
    """Whether observe reads this container's settings from inside: a running container recon
    owns on a local lxc host whose stamp records a hostname, keys or a resolver. Others cost
    the observation nothing (no lookup, no command)."""
    if host.driver != "lxc" or not host.local or not obs.running or not obs.owned:
        return False
    assert obs.stamp is not None
    return any(
        key in HOSTNAME_FIELDS or key in _RESOLVER_FIELDS or _KEYS_FIELD.match(key)
        for key in obs.stamp.applied
    )


def observe_container_guest(
    host: Host, dom: libvirt.virDomain, observed: Observed
) -> dict[str, Any]:
    """The hostname and users' authorized keys of a running container recon owns, read from
    inside it, under the keys its stamp recorded them as applied (`hostname` or
    `guest.hostname`, `guest.users[NAME].sshAuthorizedKeys`); nothing for a container without
    them. One command per container, bounded in time and size. When it cannot be read, those
    keys are None (a difference, never "as applied") and observed.extra["guest"] says why."""
    if not reads_back(host, observed):
        return {}
    stamp = observed.stamp
    assert stamp is not None
    names = [key for key in HOSTNAME_FIELDS if key in stamp.applied]
    users = {}
    for key in stamp.applied:
        found = _KEYS_FIELD.match(key)
        if found is not None:
            users[found.group(1)] = key
    resolver = [key for key in _RESOLVER_FIELDS if key in stamp.applied]
    what = str(observed.ref)
    try:
        done = run_inside(
            init_pid(host, dom),
            ["/bin/sh", "-c", _READ, "recon-read", "1" if resolver else "0", *users],
            READ_TIMEOUT,
            None,
            what,
        )
        if done.exit_code != 0:
            raise ProviderError(done.stderr.decode(errors="replace").strip() or "no message")
    except ProviderError as exc:
        observed.extra["guest"] = f"not readable: {exc}"
        return dict.fromkeys([*names, *users.values(), *resolver])
    records = done.stdout.decode(errors="replace").split("\x1e")
    first, _, resolv = records[0].partition("\x1d")
    head = [*first.splitlines(), "", ""]
    live, written = head[0].strip(), head[1].strip()
    out: dict[str, Any] = {}
    # /etc/hostname edited without the live name: what the next boot takes is drift too.
    shown = live if written in ("", live) else f"{live} (/etc/hostname: {written})"
    for key in names:
        out[key] = shown
    found_dns = _resolver(resolv)
    for key in resolver:
        out[key] = found_dns[key]
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
