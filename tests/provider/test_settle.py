"""A guest recon started that stopped right after: the check an apply leaves for its end
(guests/settle.py), the message that names the likely cause, and what it reads on the host
(root's inotify limit and use, a container init's children) against scratch /proc trees."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from reconciler.model.refs import ResourceRef
from reconciler.providers.base import (
    ApplyContext,
    HostFacts,
    InotifyUse,
    Observation,
    ProviderError,
)
from reconciler.providers.libvirt import host as lh
from reconciler.providers.libvirt.common import Host
from reconciler.providers.libvirt.guests import settle

CT = ResourceRef("Container", "ct-21")


def fake_proc(tmp_path: Path, processes: dict[int, tuple[int, list[str]]]) -> Path:
    """A /proc of processes: pid -> (owner uid, what each of its fds links to)."""
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "self").mkdir()  # not a pid: skipped
    for pid, (uid, links) in processes.items():
        fd = proc / str(pid) / "fd"
        fd.mkdir(parents=True)
        for number, target in enumerate(links):
            (fd / str(number)).symlink_to(target)
        os.chown(proc / str(pid), uid, uid)
    return proc


INOTIFY = "anon_inode:inotify"


@pytest.mark.skipif(os.geteuid() != 0, reason="making files owned by another user needs root")
def test_inotify_instances_of_root_are_counted_from_its_processes_fds(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path,
        {
            1: (0, [INOTIFY, "/dev/null", INOTIFY]),
            200: (0, ["socket:[123]", INOTIFY]),
            300: (100, [INOTIFY, INOTIFY]),  # another user's: its own count
            400: (0, ["anon_inode:[eventpoll]"]),
        },
    )
    assert lh.inotify_in_use(proc) == 3
    assert lh.inotify_in_use(proc, uid=100) == 2
    limit = tmp_path / "max_user_instances"
    limit.write_text("128\n")
    assert lh.inotify_use(proc, limit) == InotifyUse(limit=128, in_use=3)


def test_no_inotify_limit_to_read_is_none(tmp_path: Path) -> None:
    assert lh.inotify_use(tmp_path, tmp_path / "missing") is None


def test_the_estimate_counts_whole_containers_and_suggests_a_limit_that_fits() -> None:
    full = InotifyUse(limit=128, in_use=122)
    assert full.room() == 0 and full.near()
    assert full.needed(3) == 122 + 3 * 7
    assert full.suggested() == 1024
    roomy = InotifyUse(limit=3712, in_use=1268)
    assert roomy.room() == (3712 - 1268) // 7 and not roomy.near()
    # 400 more containers: 4068 in use; the suggestion is a power of two over twice that.
    assert roomy.suggested(400) == 8192
    assert InotifyUse(limit=128, in_use=200).room() == 0


def test_a_container_init_that_forked_is_told_from_one_that_did_not(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    for pid, kids in ((10, "11 "), (11, "12 13 "), (20, "21"), (21, "")):
        task = proc / str(pid) / "task" / str(pid)
        task.mkdir(parents=True)
        (task / "children").write_text(kids)
    assert lh.container_init_forked(10, proc)  # controller 10, init 11 with children
    assert not lh.container_init_forked(20, proc)  # init 21 has none yet
    assert not lh.container_init_forked(30, proc)  # controller gone


def test_the_message_names_the_guest_and_the_inotify_limit_when_it_is_used_up() -> None:
    message, hint = settle.stopped_message(CT, "lxc", "shut down", InotifyUse(128, 124))
    assert message.startswith(
        "Container/ct-21: stopped right after it was started: most likely its init found no "
        "inotify instance left, libvirt says shut down; "
    )
    assert (
        "fs.inotify.max_user_instances=128 is used up (124 in use): raise it "
        "(sysctl -w fs.inotify.max_user_instances=1024)" in message
    )
    assert hint in message and "the next apply starts it again" in hint


def test_with_room_left_the_message_points_at_the_containers_log_and_init() -> None:
    message, _ = settle.stopped_message(CT, "lxc", None, InotifyUse(3712, 1268))
    assert "inotify" not in message
    assert "/var/log/libvirt/lxc/ct-21.log" in message and "init" in message
    vm, _ = settle.stopped_message(ResourceRef("VirtualMachine", "web"), "kvm", None, None)
    assert "/var/log/libvirt/qemu/web.log" in vm


@pytest.fixture
def host() -> Iterator[Host]:
    conn = libvirt.open("test:///default")
    try:
        yield Host(conn, "test:///default", "test", {}, local=False, embedded=None)
    finally:
        conn.close()


@pytest.fixture
def dom(host: Host, request: pytest.FixtureRequest) -> libvirt.virDomain:
    """A running guest of this test's own (test:///default is shared within the process)."""
    name = f"settle-{request.node.name[-40:]}"
    found = host.conn.defineXML(
        f"<domain type='test'><name>{name}</name><memory>65536</memory>"
        "<os><type>hvm</type></os></domain>"
    )
    found.create()
    return found


def context() -> ApplyContext:
    facts = HostFacts("test:///default", "h", "test", 0, 1)
    return ApplyContext(resources={}, observation=Observation(facts, {}))


def test_a_started_guest_that_stopped_by_the_end_fails_its_check(
    host: Host, dom: libvirt.virDomain
) -> None:
    web = ResourceRef("VirtualMachine", dom.name())
    ctx = context()
    settle.after_start(host, dom, web, ctx)
    ((ref, check),) = ctx.settle
    assert ref == web
    check()  # still running: passes
    dom.destroy()
    with pytest.raises(ProviderError) as caught:
        check()
    assert str(caught.value).startswith(f"{web}: stopped right after it was started")


def test_a_paused_or_deleted_guest_passes_its_check(host: Host, dom: libvirt.virDomain) -> None:
    ctx = context()
    settle.after_start(host, dom, ResourceRef("VirtualMachine", dom.name()), ctx)
    dom.suspend()
    ctx.settle[0][1]()
    dom.destroy()
    dom.undefine()
    ctx.settle[0][1]()
