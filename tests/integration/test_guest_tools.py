"""Guest tools on the real libvirtd, in a VM booted under TCG from the built example VM
template: settings applied inside the guest through its agent (hostname, a user made with
its ssh key and password) and read back, `recon exec` and its exit codes, drift inside the
guest healed, the serial console, and a guest whose agent does not answer.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from typing import Any

import pytest

from tests.conftest import RECON, SECRET, output
from tests.integration.conftest import Host, Scene
from tests.integration.test_templates import booted_vm

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHJlY29uLWV4YW1wbGUta2V5LW5vdC1yZWFs admin@example"
OTHER_SECRET = "zq7-another-unique-value-77aa1c"
UNKNOWN = "(unknown: the guest agent does not answer)"


def guest_spec(hostname: str) -> dict[str, Any]:
    return {
        "hostname": hostname,
        "users": [
            {
                "name": "admin",
                "password": {"valueFrom": {"env": "WEB_ADMIN_PASSWORD"}},
                "sshAuthorizedKeys": [KEY],
            }
        ],
    }


def inside(scene: Scene, vm: str, *argv: str, env: dict[str, str] | None = None) -> str:
    result = scene.recon("exec", vm, "--", *argv, env=env)
    assert result.returncode == 0, output(result)
    return result.stdout


def watching(scene: Scene, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`recon watch` of the scene, resyncing every few seconds."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
    full.update(RECON_HOME=str(scene.recon.home), NO_COLOR="1", **env)
    return subprocess.Popen(
        [RECON, "--connect", scene.host.uri, "watch", *scene.files, "--resync", "3"],
        cwd=scene.work,
        env=full,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def shadow_hash(scene: Scene, vm: str) -> str:
    return inside(scene, vm, "getent", "shadow", "admin").split(":")[1]


def test_a_vm_gets_its_settings_and_recon_exec_runs_in_it(
    host: Host, scene: Scene, example_templates: None
) -> None:
    hostname = f"{scene.prefix}.example.internal"
    vm = booted_vm(scene, guest=guest_spec(hostname))
    applied = scene.apply()
    said = output(applied)
    # The apply waited for the agent of the guest it started, then set everything.
    for note in ("hostname", "user admin created", "ssh keys of admin set", "password of admin"):
        assert note in said, said
    assert SECRET not in said

    # recon exec: the guest's stdout and exit code are recon's.
    assert inside(scene, vm, "hostname") == hostname + "\n"
    failing = scene.recon("exec", vm, "--", "/bin/sh", "-c", "echo oops >&2; exit 3")
    assert failing.returncode == 3, output(failing)
    assert failing.stderr == "oops\n"
    missing = scene.recon("exec", "--timeout", "30", vm, "--", "/no/such/command")
    assert missing.returncode == 2 and "error:" in missing.stderr, output(missing)
    assert "/no/such/command" in missing.stderr

    # The user exists, with the manifest's key and a password.
    assert KEY in inside(scene, vm, "cat", "/home/admin/.ssh/authorized_keys")
    first_hash = shadow_hash(scene, vm)
    assert first_hash.startswith("$"), first_hash

    # Read back: the guest matches its manifest (and says so through its agent).
    scene.converged()
    shown = scene.get()[f"VirtualMachine/{vm}"]
    assert shown["fields"]["guest.hostname"] == hostname
    assert shown["fields"]["guest.users[admin].sshAuthorizedKeys"] == [KEY]
    wide = scene.recon.ok("get", "vm", vm, "-o", "wide").stdout
    assert "connected" in wide, wide
    status = scene.recon.ok("get", "vm", vm, "-o", "yaml").stdout
    assert "agent: connected" in status and "addresses:" in status, status

    # A new secret value: the shadow entry changes, and the value is nowhere.
    changed = {"WEB_ADMIN_PASSWORD": OTHER_SECRET}
    plan = scene.recon("diff", *scene.files, env=changed)
    assert plan.returncode == 1 and "password" in plan.stdout, output(plan)
    again = scene.recon.ok("apply", *scene.files, env=changed)
    assert OTHER_SECRET not in output(plan) + output(again)
    assert shadow_hash(scene, vm) != first_hash
    assert OTHER_SECRET not in host.domain(vm).XMLDesc(0)

    # The hostname changed inside the guest: drift, and apply heals it.
    inside(scene, vm, "hostname", "somebody-else")
    drift = scene.recon("diff", *scene.files, env=changed)
    assert drift.returncode == 1, output(drift)
    assert "guest.hostname" in drift.stdout and "somebody-else" in drift.stdout, drift.stdout
    healed = scene.recon.ok("apply", *scene.files, env=changed)
    assert "hostname" in output(healed)
    assert inside(scene, vm, "hostname") == hostname + "\n"
    assert scene.recon("diff", *scene.files, env=changed).returncode == 0

    # ... and so does the loop, at its next resync (no host event says a hostname changed).
    inside(scene, vm, "hostname", "somebody-else")
    watch = watching(scene, changed)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and watch.poll() is None:
            if inside(scene, vm, "hostname") == hostname + "\n":
                break
            time.sleep(1)
        assert inside(scene, vm, "hostname") == hostname + "\n", "recon watch did not heal it"
    finally:
        watch.send_signal(signal.SIGTERM)
        assert watch.wait(120) == 0

    # The serial console recon gives every VM, where `recon console` attaches.
    xml = host.live_xml(vm)
    assert "<serial type='pty'>" in xml and "<console type='pty'" in xml, xml

    # A stopped guest: a clear error, exit 2.
    scene.spec("VirtualMachine", vm)["state"] = "Stopped"
    scene.write()
    scene.recon.ok("apply", *scene.files, "--yes", env=changed, timeout=400)
    stopped = scene.recon("exec", vm, "--", "hostname")
    assert stopped.returncode == 2 and "not running" in stopped.stderr, output(stopped)


def test_a_guest_whose_agent_does_not_answer_is_not_in_sync(host: Host, scene: Scene) -> None:
    """An OS-less VM (it idles in its firmware: no agent) that recon defined stopped, with a
    hostname, then started behind recon's back: its hostname is unknown, not matching."""
    vm = scene.vm(state="Stopped", guest={"hostname": "quiet.example.internal"})
    scene.apply()
    host.domain(vm).create()
    scene.spec("VirtualMachine", vm)["state"] = "Running"
    scene.write()
    plan = scene.diff()
    assert plan.returncode == 1, output(plan)
    assert "guest.hostname" in plan.stdout and UNKNOWN in plan.stdout, plan.stdout
    shown = scene.recon.ok("get", "vm", vm, "-o", "yaml").stdout
    assert "agent: unresponsive" in shown, shown
    refused = scene.recon("exec", vm, "--", "hostname")
    assert refused.returncode == 2, output(refused)
    assert "does not answer" in refused.stderr, refused.stderr


def _tmux(*args: str) -> str:
    return subprocess.run(
        ["tmux", *args], capture_output=True, text=True, check=True, timeout=30
    ).stdout


class Terminal:
    """A recon command in a tmux window, typed into and read as a person would."""

    def __init__(self, scene: Scene, session: str, *args: str) -> None:
        self.session = session
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
        env.update(RECON_HOME=str(scene.recon.home), NO_COLOR="1")
        command = " ".join([RECON, "--connect", scene.host.uri, *args])
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "30", command],
            check=True,
            env=env,
            timeout=30,
        )

    def screen(self) -> str:
        return _tmux("capture-pane", "-p", "-t", self.session)

    def type(self, text: str) -> None:
        _tmux("send-keys", "-t", self.session, "-l", text)
        _tmux("send-keys", "-t", self.session, "Enter")

    def wait_for(self, text: str, seconds: float = 120, poke: bool = False) -> str:
        deadline = time.monotonic() + seconds
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            if poke:
                _tmux("send-keys", "-t", self.session, "Enter")
            time.sleep(2)
        pytest.fail(f"{text!r} did not show in the terminal:\n{screen}")

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.session], check=False, timeout=30)


def test_console_and_enter_give_a_terminal_on_the_serial_console(
    host: Host, scene: Scene, example_templates: None
) -> None:
    """`recon console` and `recon enter` in a real terminal (tmux): the guest's getty answers
    on its serial port, and the manifest's user logs in there with the manifest's password."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (scripts/bootstrap installs it)")
    vm = booted_vm(scene, guest=guest_spec(f"{scene.prefix}-c"))
    scene.apply()
    console = Terminal(scene, f"{scene.prefix}-console", "console", vm)
    try:
        screen = console.wait_for("login:", poke=True)
        assert "Connected to domain" in screen, screen
    finally:
        console.close()
    enter = Terminal(scene, f"{scene.prefix}-enter", "enter", vm)
    try:
        enter.wait_for("login:", poke=True)
        enter.type("admin")
        enter.wait_for("Password:")
        enter.type(SECRET)
        enter.wait_for(f"admin@{scene.prefix}-c:~$")  # the shell's prompt
        enter.type("echo recon-$((6*7)) $(id -un)")
        screen = enter.wait_for("recon-42 admin")
        assert SECRET not in screen  # a password is not echoed
    finally:
        enter.close()
