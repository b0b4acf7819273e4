"""The QEMU guest agent, as recon talks to it: waiting for it after a boot, raw agent commands
(guest-exec and its status) through `libvirt_qemu.qemuAgentCommand`, and libvirt's agent
errors turned into recon's.

What is set and read through it lives in vm_tools.py; this module only carries the calls.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import libvirt

from reconciler.providers.base import (
    AgentUnresponsive,
    ExecResult,
    ExecTimeout,
    GuestNotRunning,
    ProviderError,
    UnsupportedError,
)

T = TypeVar("T")

# How long an unanswered agent is waited for right after recon started the guest: a built
# Debian template under TCG answers guest-ping 37-43 s after start on this kind of machine
# (BACKENDS.md), a loaded host takes longer; KVM takes a few seconds. Bounded so that an
# image without qemu-guest-agent fails the apply rather than hanging it.
BOOT_WAIT = 180.0
# A guest recon did not just start answers at once or not at all.
SHORT_WAIT = 5.0
# guest-exec-status polled this often while a command runs.
_POLL = 0.2


def is_unresponsive(exc: libvirt.libvirtError) -> bool:
    return bool(exc.get_error_code() == libvirt.VIR_ERR_AGENT_UNRESPONSIVE)


def _no_channel(exc: libvirt.libvirtError) -> bool:
    """The domain has no guest agent channel at all (libvirt: "not configured")."""
    return exc.get_error_code() in (
        libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED,
        libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
    ) or "not configured" in (exc.get_error_message() or "")


def agent_error(name: str, exc: libvirt.libvirtError, doing: str) -> ProviderError:
    """libvirt's error from an agent call as recon's, naming the guest and what was tried.
    Messages are libvirt's: a password is an argument libvirt never echoes."""
    message = exc.get_error_message() or str(exc)
    if exc.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID and "not running" in message:
        return GuestNotRunning(
            f"{name} is not running: cannot {doing}", "start it first (state: Running)"
        )
    if exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
        return UnsupportedError(f"{name}: cannot {doing}: {message}")
    if is_unresponsive(exc):
        return AgentUnresponsive(
            f"{name}: cannot {doing}: the guest agent does not answer ({message})",
            "the guest must run qemu-guest-agent (recon's built VM templates do); a guest "
            "still booting answers a little later",
        )
    if _no_channel(exc):
        return UnsupportedError(
            f"{name}: cannot {doing}: the domain has no guest agent channel ({message})",
            "recon gives every VM it defines one; a VM defined elsewhere needs "
            "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/>",
        )
    return ProviderError(f"{name}: cannot {doing}: {message}")


def command(dom: libvirt.virDomain, execute: str, timeout: float, **arguments: Any) -> Any:
    """One raw agent command; its "return" value. Raises libvirt's error as it comes."""
    import libvirt_qemu

    payload: dict[str, Any] = {"execute": execute}
    if arguments:
        payload["arguments"] = arguments
    reply = libvirt_qemu.qemuAgentCommand(dom, json.dumps(payload), max(1, round(timeout)), 0)
    return json.loads(reply).get("return")


def patiently(call: Callable[[], T], wait: float) -> T:
    """call(), retried while the agent does not answer, for up to `wait` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return call()
        except libvirt.libvirtError as exc:
            if not is_unresponsive(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(1.0)


def wait_for(dom: libvirt.virDomain, wait: float) -> None:
    """Until guest-ping is answered (libvirt errors after `wait` seconds, as they come)."""
    patiently(lambda: command(dom, "guest-ping", SHORT_WAIT), wait)


def _decode(value: Any) -> bytes:
    try:
        return base64.b64decode(value or "", validate=True)
    except (binascii.Error, TypeError):
        return b""


def run(
    dom: libvirt.virDomain,
    argv: Sequence[str],
    timeout: float,
    wait: float = SHORT_WAIT,
    doing: str | None = None,
) -> ExecResult:
    """argv run inside the guest by its agent (guest-exec with its output captured), waited
    for up to `timeout` seconds. The agent searches the guest's PATH for argv[0]. A finished
    command's status can be read once only (BACKENDS.md): it is read until it says exited."""
    name = dom.name()
    if not argv:
        raise ProviderError(f"{name}: no command given")
    doing = doing or f"run {argv[0]}"
    try:
        started = patiently(
            lambda: command(
                dom,
                "guest-exec",
                SHORT_WAIT,
                path=argv[0],
                arg=list(argv[1:]),
                **{"capture-output": True},
            ),
            wait,
        )
    except libvirt.libvirtError as exc:
        raise agent_error(name, exc, doing) from None
    pid = int(started["pid"])
    deadline = time.monotonic() + timeout
    while True:
        try:
            status = command(dom, "guest-exec-status", SHORT_WAIT, pid=pid)
        except libvirt.libvirtError as exc:
            raise agent_error(name, exc, doing) from None
        if status.get("exited"):
            break
        if time.monotonic() >= deadline:
            raise ExecTimeout(
                f"{name}: cannot {doing}: {argv[0]} did not finish within {timeout:g} s; it "
                f"may still run in the guest (pid {pid})",
                "give it longer with --timeout",
            )
        time.sleep(_POLL)
    if "signal" in status and "exitcode" not in status:
        code = 128 + int(status["signal"])  # as a shell reports a command killed by a signal
    else:
        code = int(status.get("exitcode", 0))
    err = _decode(status.get("err-data"))
    if status.get("out-truncated") or status.get("err-truncated"):
        err += b"recon: the guest agent truncated the command's output\n"
    return ExecResult(code, _decode(status.get("out-data")), err)
