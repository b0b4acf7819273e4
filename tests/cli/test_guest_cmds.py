"""`recon exec`, `recon enter`, `recon console` on the embedded host (libvirt's test driver,
which runs nothing inside its guests): every way they cannot work is a clear error and
exit 2, never a traceback; the guest settings the test driver cannot apply stay recorded in
the stamp only, and nothing asks for an agent there.

What they do inside a real guest is tests/integration/test_guest_tools.py."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import RECON, Recon, output

VMS = """\
apiVersion: reconciler/v1
kind: VirtualMachine
metadata: {name: up}
spec:
  cpus: 1
  memory: 128Mi
  guest:
    hostname: up.example.internal
    users:
      - name: admin
        sshAuthorizedKeys:
          - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHJlY29uLWV4YW1wbGUta2V5LW5vdC1yZWFs a@b
---
apiVersion: reconciler/v1
kind: VirtualMachine
metadata: {name: down}
spec:
  cpus: 1
  memory: 128Mi
  state: Stopped
"""


@pytest.fixture
def guests(recon: Recon, tmp_path: Path) -> Recon:
    (tmp_path / "vms.yaml").write_text(VMS)
    recon.ok("apply", "-f", tmp_path / "vms.yaml")
    return recon


def test_exec_in_an_unknown_guest_exits_2_naming_it(guests: Recon) -> None:
    result = guests("exec", "nosuch", "--", "hostname")
    assert result.returncode == 2, output(result)
    assert result.stderr.startswith("error: nosuch: no such guest on test://")
    assert "hint:" in result.stderr and "Traceback" not in result.stderr


def test_exec_in_a_stopped_guest_exits_2_saying_so(guests: Recon) -> None:
    result = guests("exec", "down", "--", "hostname")
    assert result.returncode == 2, output(result)
    assert "error: down is not running" in result.stderr
    assert "hint: start it first" in result.stderr


def test_exec_on_the_test_driver_says_it_runs_nothing_inside(guests: Recon) -> None:
    result = guests("exec", "up", "--", "hostname")
    assert result.returncode == 2, output(result)
    assert "the test driver executes nothing inside its guests" in result.stderr
    assert result.stdout == ""


def test_exec_needs_a_command_and_a_positive_timeout(guests: Recon) -> None:
    assert guests("exec", "up").returncode == 2
    bad = guests("exec", "--timeout", "0", "up", "--", "hostname")
    assert bad.returncode == 2 and "--timeout" in bad.stderr, output(bad)
    assert "124" in guests.ok("exec", "--help").stdout


def test_enter_and_console_need_a_terminal(guests: Recon) -> None:
    for verb in ("enter", "console"):
        result = guests(verb, "up", stdin="")
        assert result.returncode == 2, output(result)
        assert f"recon {verb} needs a terminal" in result.stderr


def on_terminal(recon: Recon, *args: str) -> tuple[int, str]:
    """recon with all three streams on a pseudo-terminal; its exit code and what it showed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
    env.update(RECON_HOME=str(recon.home), NO_COLOR="1")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [RECON, *args], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=recon.cwd
    )
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    code = proc.wait(timeout=60)
    os.close(master)
    return code, seen.decode(errors="replace")


def test_console_on_the_test_driver_has_no_serial_console(guests: Recon) -> None:
    code, seen = on_terminal(guests, "console", "up")
    assert code == 2, seen
    assert "the test driver has no serial console" in seen


def test_enter_a_stopped_guest_or_an_unknown_one_exits_2(guests: Recon) -> None:
    code, seen = on_terminal(guests, "enter", "down")
    assert code == 2 and "down is not running" in seen, seen
    code, seen = on_terminal(guests, "enter", "nosuch")
    assert code == 2 and "no such guest" in seen, seen
    code, seen = on_terminal(guests, "enter", "up", "--", "ls")
    assert code == 2 and "recon exec up -- ls" in seen, seen


def test_the_test_driver_keeps_guest_settings_in_the_stamp_only(guests: Recon) -> None:
    shown = json.loads(guests.ok("get", "vm", "up", "-o", "json").stdout)
    # Nothing read from inside the guest (there is no agent to ask): the plan compares
    # with the stamp, and status says nothing about an agent.
    assert "guest.hostname" not in shown["status"]["observed"]
    assert "agent" not in shown["status"]
    assert shown["spec"]["guest"]["hostname"] == "up.example.internal"
    wide = guests.ok("get", "-o", "wide").stdout
    assert "AGENT" in wide and "ADDRESSES" in wide


def test_get_lists_no_agent_for_a_stopped_guest(guests: Recon) -> None:
    shown = json.loads(guests.ok("get", "vm", "down", "-o", "json").stdout)
    assert shown["status"]["running"] is False
    assert "agent" not in shown["status"]


def test_the_words_after_the_double_dash_are_the_command(guests: Recon) -> None:
    # `--` alone is no command (it is not sent to the guest as one).
    result = guests("exec", "up", "--")
    assert result.returncode == 2 and "give the command to run after --" in result.stderr
    code, seen = on_terminal(guests, "enter", "up", "--", "ls", "-l")
    assert code == 2 and "recon exec up -- ls -l" in seen, seen


def ignored_signals(status: str) -> set[int]:
    """The signal numbers a /proc/PID/status text says are ignored (its SigIgn mask)."""
    line = next(line for line in status.splitlines() if line.startswith("SigIgn:"))
    mask = int(line.split()[1], 16)
    return {number for number in range(1, 65) if mask & (1 << (number - 1))}


def status_after(exec_line: str) -> str:
    """/proc/self/status as cat sees it, exec'd by a Python that ignores SIGUSR1 too."""
    code = f"import os, signal\nsignal.signal(signal.SIGUSR1, signal.SIG_IGN)\n{exec_line}\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout


def test_what_recon_hands_the_terminal_to_gets_sigpipe_and_sigxfsz_back() -> None:
    """Python ignores SIGPIPE and SIGXFSZ, and exec keeps an ignored signal ignored: the shell
    `recon enter` execs would run every command with them ignored. The hand-over restores
    their defaults; what the caller ignored otherwise stays as it was (SIGUSR1 here)."""
    bare = ignored_signals(status_after("os.execvp('cat', ['cat', '/proc/self/status'])"))
    assert {signal.SIGPIPE, signal.SIGXFSZ, signal.SIGUSR1} <= bare  # what a bare exec passes
    handed = ignored_signals(
        status_after(
            "from reconciler.cli.guest_cmds import _hand_over\n"
            "_hand_over(['cat', '/proc/self/status'])"
        )
    )
    assert signal.SIGPIPE not in handed and signal.SIGXFSZ not in handed, handed
    assert signal.SIGUSR1 in handed
