"""Guest tools in containers on the real LXC driver (lxc:///system), with a container made from
the built example container template (debian-12-minimal: systemd, passwd, iproute2).

What runs inside runs through recon's own container_tools (nsenter on the container's init),
called here directly; what recon plans and heals is checked through the `recon` command (diff
and apply), and so is `recon enter` on a terminal. The skip rules are the lxc fixture's
(root, an LXC driver) and apply_or_skip's (a driver that cannot start containers on this
host).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from typing import Any

import libvirt
import pytest

from reconciler.providers.base import ExecResult, ProviderError
from reconciler.providers.libvirt.common import Host as ProviderHost
from reconciler.providers.libvirt.guests import container_tools
from tests.conftest import BUILD_ENV, RECON, output
from tests.integration.conftest import Host, Scene, free_subnet
from tests.integration.test_templates import built_template

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHd8hVq3yYq0r6G7mTjUQ1Z4YpZ9c3m2GQ3pXl0iJx0k ops@desk"
PASSWORD = "first-Ct-pw-7e1b2"
NEW_PASSWORD = "second-Ct-pw-90ac4"


def container(scene: Scene, **spec: Any) -> tuple[str, str]:
    """A container from the built example template with a hostname, a user with a key and a
    password (from CT_OPS_PASSWORD), on a NAT network at a fixed address with its resolver; its
    name and its address."""
    pool = scene.pool()
    template = built_template(scene, "debian-12-minimal")
    subnet = free_subnet()
    net = scene.put("Network", "net", {"mode": "nat", "ipv4": {"address": f"{subnet}.1/24"}})
    name = scene.name("ct")
    base: dict[str, Any] = {
        "template": template,
        "cpus": 1,
        "memory": "256Mi",
        "disk": {"pool": pool, "size": "1Gi"},
        "hostname": f"{name}.example",
        "guest": {
            "users": [
                {
                    "name": "ops",
                    "password": {"valueFrom": {"env": "CT_OPS_PASSWORD"}},
                    "sshAuthorizedKeys": [KEY],
                }
            ]
        },
        "interfaces": [
            {"network": net, "ipAddresses": [f"{subnet}.21/24"], "gateway": f"{subnet}.1"}
        ],
        # libvirt's dnsmasq answers on the NAT network's address.
        "dns": {"nameservers": [f"{subnet}.1"], "search": ["example"]},
    }
    base.update(spec)
    scene.put("Container", "ct", base)
    return name, f"{subnet}.21"


def recon(scene: Scene, verb: str, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
    return scene.recon(verb, *scene.files, env={"CT_OPS_PASSWORD": password})


def inside(lxc: Any, name: str, *argv: str, timeout: float = 30) -> ExecResult:
    host = ProviderHost(lxc, lxc.getURI(), "lxc", {}, True, None)
    return container_tools.exec_in_container(host, lxc.lookupByName(name), list(argv), timeout)


def text(result: ExecResult) -> str:
    assert result.exit_code == 0, result
    return result.stdout.decode()


def shadow(lxc: Any, name: str) -> str:
    line = text(inside(lxc, name, "getent", "shadow", "ops")).strip()
    return line.split(":")[1]


@pytest.fixture
def ct(host: Host, scene: Scene, example_templates: None, lxc: Any) -> tuple[str, str]:
    """The container, applied and running."""
    name, address = container(scene)
    scene.write()
    result = recon(scene, "apply")
    if result.returncode != 0 and "libvirt_lxc startup" in result.stdout:
        pytest.skip(f"the LXC driver cannot start containers on this host: {result.stdout}")
    assert result.returncode == 0, output(result)
    assert lxc.lookupByName(name).isActive()
    return name, address


def test_exec_returns_the_manifests_hostname_and_passes_the_exit_code_through(
    scene: Scene, lxc: Any, ct: tuple[str, str]
) -> None:
    name, _ = ct
    assert text(inside(lxc, name, "hostname")).strip() == f"{name}.example"
    assert text(inside(lxc, name, "cat", "/etc/hostname")).strip() == f"{name}.example"
    failed = inside(lxc, name, "sh", "-c", "echo to-stderr >&2; exit 3")
    assert (failed.exit_code, failed.stderr) == (3, b"to-stderr\n")
    missing = inside(lxc, name, "no-such-command")
    assert missing.exit_code == 127
    # recon's environment (its secrets among it) stays outside.
    assert b"CT_OPS_PASSWORD" not in text(inside(lxc, name, "env")).encode()


def test_a_command_past_its_timeout_is_killed_with_what_it_started(
    scene: Scene, lxc: Any, ct: tuple[str, str]
) -> None:
    name, _ = ct
    with pytest.raises(ProviderError, match="did not finish within 1s"):
        inside(lxc, name, "sh", "-c", "sleep 300 & sleep 301", timeout=1)
    left = inside(lxc, name, "sh", "-c", "ps -e -o args | grep '^sleep 30[01]' || true")
    assert text(left) == ""


def test_the_users_key_is_in_its_authorized_keys_with_its_owner_and_modes(
    scene: Scene, lxc: Any, ct: tuple[str, str]
) -> None:
    name, _ = ct
    assert text(inside(lxc, name, "cat", "/home/ops/.ssh/authorized_keys")) == KEY + "\n"
    modes = text(
        inside(lxc, name, "stat", "-c", "%U %a", "/home/ops/.ssh", "/home/ops/.ssh/authorized_keys")
    )
    assert modes.split("\n")[:2] == ["ops 700", "ops 600"]
    assert recon(scene, "diff").returncode == 0


def test_a_new_password_value_changes_the_users_shadow_entry(
    scene: Scene, lxc: Any, ct: tuple[str, str]
) -> None:
    name, _ = ct
    first = shadow(lxc, name)
    assert first.startswith("$"), "no password hash was set"
    plan = recon(scene, "diff", NEW_PASSWORD)
    assert plan.returncode == 1, output(plan)
    assert "guest.users[ops].password: (the value applied last) -> (a new value)" in plan.stdout
    applied = recon(scene, "apply", NEW_PASSWORD)
    assert applied.returncode == 0, output(applied)
    assert shadow(lxc, name) != first
    assert recon(scene, "diff", NEW_PASSWORD).returncode == 0
    # Neither value is in what recon printed or in the domain (its stamp holds digests).
    xml = lxc.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    for value in (PASSWORD, NEW_PASSWORD):
        assert value not in output(plan) + output(applied) + xml
    # Nor in any file recon keeps (its home: status, logs, caches) or wrote into the pool.
    for folder in (scene.recon.home, scene.pool_dir):
        found = subprocess.run(
            ["grep", "-rlaF", "-e", PASSWORD, "-e", NEW_PASSWORD, str(folder)],
            capture_output=True,
            text=True,
        )
        assert found.stdout == "", found.stdout


def test_a_hostname_or_key_changed_inside_is_drift_that_apply_heals(
    scene: Scene, lxc: Any, ct: tuple[str, str]
) -> None:
    name, _ = ct
    inside(lxc, name, "hostname", "changed-inside")
    inside(lxc, name, "sh", "-c", "echo 'ssh-rsa AAAAB3Nz added' >> /home/ops/.ssh/authorized_keys")
    plan = recon(scene, "diff")
    assert plan.returncode == 1, output(plan)
    assert f"hostname: changed-inside (/etc/hostname: {name}.example) -> {name}.example" in (
        plan.stdout
    ), output(plan)
    assert "guest.users[ops].sshAuthorizedKeys:" in plan.stdout
    # Set inside, live: the container keeps running (no restart).
    assert "(live)" in plan.stdout and "(restart)" not in plan.stdout
    healed = recon(scene, "apply")
    assert healed.returncode == 0, output(healed)
    assert text(inside(lxc, name, "hostname")).strip() == f"{name}.example"
    assert text(inside(lxc, name, "cat", "/home/ops/.ssh/authorized_keys")) == KEY + "\n"
    assert recon(scene, "diff").returncode == 0


def test_the_manifests_address_and_gateway_are_on_the_containers_interface(
    scene: Scene, lxc: Any, ct: tuple[str, str]
) -> None:
    name, address = ct
    addresses = text(inside(lxc, name, "ip", "-o", "-4", "addr", "show", "dev", "eth0"))
    assert f"inet {address}/24" in addresses, addresses
    gateway = address.rsplit(".", 1)[0] + ".1"
    routes = text(inside(lxc, name, "ip", "-4", "route", "show", "default"))
    assert f"default via {gateway} dev eth0" in routes, routes


def test_a_container_that_cannot_be_read_is_a_difference_and_says_why(
    scene: Scene, lxc: Any, ct: tuple[str, str]
) -> None:
    name, _ = ct
    status = json.loads(scene.recon.ok("get", "container", name, "-o", "json").stdout)["status"]
    assert status["guest"] == "read"
    # The read-back runs /bin/sh inside: without one, nothing can be read.
    text(inside(lxc, name, "mv", "/bin/sh", "/bin/sh.away"))
    try:
        plan = recon(scene, "diff")
        shown = json.loads(scene.recon.ok("get", "container", name, "-o", "json").stdout)
    finally:
        text(inside(lxc, name, "/usr/bin/mv", "/bin/sh.away", "/bin/sh"))
    assert plan.returncode == 1, output(plan)
    assert f"hostname: (none) -> {name}.example" in plan.stdout, output(plan)
    assert shown["status"]["guest"].startswith("not readable:"), shown["status"]
    assert recon(scene, "diff").returncode == 0


def test_enter_gives_a_login_shell_on_a_real_terminal(
    scene: Scene, lxc: Any, ct: tuple[str, str]
) -> None:
    """As a person would: `recon enter` in tmux, type into the shell, interrupt a command,
    leave with a status.

    The end is read from the shell that ran recon (it prints recon's exit status), not from
    tmux's "Pane is dead": tmux 3.3a with libutempter sets SIGCHLD to SIG_DFL while its
    utempter helper runs, which it does as soon as a pane's terminal closes, so the SIGCHLD of
    a pane process that exits in that moment is lost and tmux never reaps it nor marks the
    pane dead (seen here under load with a pane running only `sh -c 'exit 4'`, about one pane
    in five). A tmux server of the test's own (-L) keeps other users of tmux out of it."""
    if shutil.which("tmux") is None:
        pytest.skip("needs tmux")
    name, _ = ct
    session = scene.name("tmux")
    # The server's environment is the panes': recon's home, no RECON_* of the test run's, and a
    # variable that must not reach the shell inside.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
    env.update(RECON_HOME=str(scene.recon.home), NO_COLOR="1", CT_OPS_PASSWORD="outside")

    def tmux(*args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", session, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        return done.stdout

    def screen_has(what: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        shown = ""
        while time.monotonic() < deadline:
            shown = tmux("capture-pane", "-p", "-t", session)
            if what in shown:
                return shown
            time.sleep(0.2)
        processes = text(inside(lxc, name, "ps", "-e", "-o", "pid,ppid,stat,args"))
        pytest.fail(f"{what!r} not on the screen:\n{shown}\ninside:\n{processes}")

    command = f'{RECON} --connect {lxc.getURI()} enter {name}; echo "recon exited with $?"'
    # remain-on-exit in the same call, before recon can end: the screen stays to be read.
    tmux(
        "new-session",
        "-d",
        "-s",
        session,
        "-x",
        "120",
        "-y",
        "30",
        command,
        ";",
        "set-option",
        "-t",
        session,
        "remain-on-exit",
        "on",
    )
    try:
        screen_has(f"root@{name}")  # bash's prompt from root's login shell, inside
        tmux(
            "send-keys",
            "-t",
            session,
            'test -t 0 && echo "in=$0 ${CT_OPS_PASSWORD:-clean}"',
            "Enter",
        )
        screen_has("in=-bash clean")
        # SIGPIPE is at its default inside (recon is Python, which ignores it): yes dies of it.
        tmux(
            "send-keys",
            "-t",
            session,
            'yes | head -n1 >/dev/null; echo "pipe=${PIPESTATUS[0]}"',
            "Enter",
        )
        screen_has("pipe=141")
        tmux("send-keys", "-t", session, "sleep 300", "Enter")
        running = "ps -e -o args | grep -c '^sleep 300$' || true"
        deadline = time.monotonic() + 30
        while text(inside(lxc, name, "sh", "-c", running)).strip() != "1":
            assert time.monotonic() < deadline, "sleep 300 did not start"
            time.sleep(0.2)
        tmux("send-keys", "-t", session, "C-c")
        screen_has("^C")
        tmux("send-keys", "-t", session, "echo back; exit 4", "Enter")
        shown = screen_has("recon exited with 4", timeout=60)
        assert "^C" in shown and "back" in shown
    finally:
        subprocess.run(["tmux", "-L", session, "kill-server"], check=False, env=env)


def test_the_manifests_resolver_is_the_containers_resolv_conf_and_an_edit_is_healed(
    scene: Scene, lxc: Any, ct: tuple[str, str]
) -> None:
    name, address = ct
    gateway = address.rsplit(".", 1)[0] + ".1"
    resolv = text(inside(lxc, name, "cat", "/etc/resolv.conf"))
    assert f"nameserver {gateway}\nsearch example\n" in resolv, resolv
    inside(lxc, name, "sh", "-c", "echo 'nameserver 192.0.2.53' > /etc/resolv.conf")
    plan = recon(scene, "diff")
    assert plan.returncode == 1, output(plan)
    assert f'dns.nameservers: ["192.0.2.53"] -> ["{gateway}"]  (live)' in plan.stdout, output(plan)
    assert recon(scene, "apply").returncode == 0
    assert f"nameserver {gateway}\n" in text(inside(lxc, name, "cat", "/etc/resolv.conf"))
    assert recon(scene, "diff").returncode == 0


def test_the_templates_extended_attributes_are_in_the_containers_root(
    scene: Scene, lxc: Any, ct: tuple[str, str]
) -> None:
    """The example template's tar carries journald's ACLs on /var/log/journal (as pax xattr
    records): the container's root keeps them (tar --xattrs, then mke2fs -d)."""
    name, _ = ct
    root = scene.pool_dir / f"{name}_root.raw"
    listing = subprocess.run(
        ["debugfs", "-R", "ea_list /var/log/journal", str(root)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "system.posix_acl_default" in listing, listing


def test_watch_heals_a_hostname_changed_inside(scene: Scene, lxc: Any, ct: tuple[str, str]) -> None:
    """No host event says a hostname changed inside a container: the loop's resync reads it
    back and heals it by its drift policy (heal, the default)."""
    name, _ = ct
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
    env.update(RECON_HOME=str(scene.recon.home), NO_COLOR="1", CT_OPS_PASSWORD=PASSWORD)
    env.update(BUILD_ENV)
    log = scene.work / "watch.log"
    args = ["--connect", lxc.getURI(), "watch", *scene.files, "--resync", "2"]
    with log.open("w") as sink:
        loop = subprocess.Popen(
            [RECON, *args], cwd=scene.work, env=env, stdin=subprocess.DEVNULL, stderr=sink
        )
    try:
        text(inside(lxc, name, "hostname", "changed-inside"))
        deadline = time.monotonic() + 120
        while text(inside(lxc, name, "hostname")).strip() != f"{name}.example":
            assert loop.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"not healed:\n{log.read_text()}"
            time.sleep(0.5)
    finally:
        loop.send_signal(signal.SIGTERM)
        code = loop.wait(60)
    assert code == 0, log.read_text()
    assert "hostname" in log.read_text()
    assert PASSWORD not in log.read_text()


def test_a_failure_inside_fails_the_change_and_the_password_stays_planned(
    scene: Scene, lxc: Any, ct: tuple[str, str]
) -> None:
    name, _ = ct
    text(inside(lxc, name, "mv", "/usr/sbin/useradd", "/usr/sbin/useradd.away"))
    spec = scene.spec("Container", name)
    spec["guest"]["users"].append({"name": "dev", "sshAuthorizedKeys": [KEY]})
    scene.write()
    try:
        failed = recon(scene, "apply", NEW_PASSWORD)
    finally:
        text(inside(lxc, name, "mv", "/usr/sbin/useradd.away", "/usr/sbin/useradd"))
    assert failed.returncode != 0, output(failed)
    assert "setting the hostname and users inside failed" in output(failed), output(failed)
    assert "useradd" in output(failed)
    assert NEW_PASSWORD not in output(failed) and PASSWORD not in output(failed)
    # The stamp does not claim the new password: the next plan still sets it.
    plan = recon(scene, "diff", NEW_PASSWORD)
    assert "guest.users[ops].password: (not recorded as applied) -> (a new value)" in (
        plan.stdout
    ), output(plan)
    assert recon(scene, "apply", NEW_PASSWORD).returncode == 0
    assert text(inside(lxc, name, "cat", "/home/dev/.ssh/authorized_keys")) == KEY + "\n"
    assert recon(scene, "diff", NEW_PASSWORD).returncode == 0
