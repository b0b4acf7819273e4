"""reconciler.providers.libvirt.host against scratch /proc and /sys trees: which URIs are
local, where a domain's memory cgroup is, how a guarantee is written and read back, KSM's run
switch, and container root filesystems."""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import tarfile
from pathlib import Path

import pytest

from reconciler.providers.libvirt import host as lh


@pytest.mark.parametrize(
    ("uri", "local"),
    [
        ("qemu:///system", True),
        ("lxc:///system", True),
        ("qemu+unix:///system", True),
        ("qemu:///session", True),
        ("qemu+ssh://node-1/system", False),
        ("qemu+tcp://node-1/system", False),
        ("qemu+ssh://localhost/system", False),
        ("qemu://node-1/system", False),
    ],
)
def test_only_unix_socket_uris_are_local(uri: str, local: bool) -> None:
    assert lh.is_local(uri) is local


def fake_host(tmp_path: Path, cgroup: str, mountinfo: str) -> Path:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "42").mkdir()
    (proc / "42" / "cgroup").write_text(cgroup)
    (proc / "self" / "mountinfo").write_text(mountinfo.replace("ROOT", str(tmp_path)))
    return proc


HYBRID = """\
25 20 0:22 / ROOT/cg/memory rw,relatime shared:9 - cgroup cgroup rw,memory
26 20 0:23 / ROOT/cg/cpu rw,relatime shared:10 - cgroup cgroup rw,cpu
27 20 0:24 / ROOT/cg/unified rw,relatime shared:11 - cgroup2 cgroup2 rw
"""
QEMU_V1 = """\
4:memory:/machine/qemu-3-web.libvirt-qemu
1:cpu:/machine/qemu-3-web.libvirt-qemu/emulator
0::/machine/qemu-3-web.libvirt-qemu/emulator
"""


def test_v1_memory_cgroup_of_a_qemu_domain(tmp_path: Path) -> None:
    proc = fake_host(tmp_path, QEMU_V1, HYBRID)
    group = tmp_path / "cg/memory/machine/qemu-3-web.libvirt-qemu"
    group.mkdir(parents=True)
    (group / "memory.soft_limit_in_bytes").write_text("9223372036854771712\n")
    found = lh.memory_cgroup(42, proc)
    assert found == lh.MemoryCgroup(1, group)
    assert found.how == "cgroup-v1 soft limit"
    assert found.read() == 0  # the kernel's "no limit"
    found.write(64 << 20)
    assert (group / "memory.soft_limit_in_bytes").read_text() == f"{64 << 20}\n"
    assert found.read() == 64 << 20
    found.write(0)
    assert (group / "memory.soft_limit_in_bytes").read_text() == "-1\n"
    assert lh.memory_cgroup_version(proc) == 1


def test_v2_memory_cgroup_is_the_domain_group_above_its_threads(tmp_path: Path) -> None:
    mountinfo = "30 20 0:25 / ROOT/cg rw,relatime shared:1 - cgroup2 cgroup2 rw\n"
    cgroup = "0::/machine.slice/machine-qemu\\x2d3\\x2dweb.scope/libvirt/vcpu0\n"
    proc = fake_host(tmp_path, cgroup, mountinfo)
    group = tmp_path / "cg/machine.slice/machine-qemu\\x2d3\\x2dweb.scope/libvirt"
    group.mkdir(parents=True)
    (group / "memory.min").write_text("0\n")
    (tmp_path / "cg" / "cgroup.controllers").write_text("cpu io memory pids\n")
    found = lh.memory_cgroup(42, proc)
    assert found == lh.MemoryCgroup(2, group)
    assert found.how == "cgroup-v2 memory.min"
    found.write(32 << 20)
    assert found.read() == 32 << 20
    found.write(0)
    assert (group / "memory.min").read_text() == "0\n"
    assert lh.memory_cgroup_version(proc) == 2


def test_no_memory_controller_means_no_cgroup(tmp_path: Path) -> None:
    # The hybrid host's v2 mount has no memory controller, and the v1 group is gone.
    proc = fake_host(tmp_path, QEMU_V1, HYBRID)
    assert lh.memory_cgroup(42, proc) is None
    assert lh.memory_cgroup(7, proc) is None  # no such process


def test_mount_points_with_escaped_spaces(tmp_path: Path) -> None:
    mountinfo = "25 20 0:22 / ROOT/c\\040g rw - cgroup cgroup rw,memory\n"
    proc = fake_host(tmp_path, "4:memory:/machine/lxc-9-ct.libvirt-lxc\n", mountinfo)
    group = tmp_path / "c g/machine/lxc-9-ct.libvirt-lxc"
    group.mkdir(parents=True)
    (group / "memory.soft_limit_in_bytes").write_text("-1\n")
    assert lh.memory_cgroup(42, proc) == lh.MemoryCgroup(1, group)


def test_domain_pid_from_libvirts_run_directory(tmp_path: Path) -> None:
    (tmp_path / "qemu").mkdir()
    (tmp_path / "qemu" / "web.pid").write_text("1234\n")
    assert lh.domain_pid("qemu", "web", tmp_path) == 1234
    assert lh.domain_pid("lxc", "web", tmp_path) is None


def test_ksm_run_switch(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert lh.ksm_enabled(run) is None
    run.write_text("0\n")
    assert lh.ksm_enabled(run) is False
    lh.set_ksm_enabled(True, run)
    assert run.read_text() == "1\n" and lh.ksm_enabled(run) is True
    lh.set_ksm_enabled(False, run)
    assert run.read_text() == "0\n"


@pytest.mark.skipif(
    not (shutil.which("mke2fs") and shutil.which("debugfs")), reason="needs e2fsprogs"
)
def test_container_roots_hold_the_template_with_its_xattrs_from_one_extraction(
    tmp_path: Path,
) -> None:
    tree = tmp_path / "tree"
    (tree / "sbin").mkdir(parents=True)
    init = tree / "sbin" / "init"
    init.write_text("#!/bin/sh\n")
    init.chmod(0o755)
    try:
        os.setxattr(init, "user.recon-test", b"kept")
    except OSError as exc:
        pytest.skip(f"this filesystem has no user xattrs: {exc}")
    archive = tmp_path / "t.tar"
    # As mmdebstrap writes a template: GNU tar with the extended attributes.
    subprocess.run(
        ["tar", "--xattrs", "--xattrs-include=*", "-cf", str(archive), "-C", str(tree), "."],
        check=True,
    )
    base = tmp_path / "trees"
    base.mkdir()
    (base / ".recon-tree-999999999-left").mkdir()  # a killed recon's
    trees = lh.RootTrees(base)
    images = [tmp_path / "a.raw", tmp_path / "b.raw"]
    for image in images:
        with image.open("wb") as fh:
            fh.truncate(16 << 20)
        lh.make_root_filesystem(image, archive, trees)
    assert len(list(base.glob(".recon-tree-*"))) == 1, "not one tree for both roots"
    for image in images:
        listing = subprocess.run(
            ["debugfs", "-R", "ls -l /sbin", str(image)], capture_output=True, text=True, check=True
        ).stdout
        assert "init" in listing
        attr = subprocess.run(
            ["debugfs", "-R", "ea_get /sbin/init user.recon-test", str(image)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "kept" in attr, attr
    trees.clear()
    assert not list(base.glob(".recon-tree-*")), "the unpacked tree is left behind"


def test_a_broken_template_is_a_host_command_error(tmp_path: Path) -> None:
    archive = tmp_path / "t.tar"
    archive.write_bytes(b"not a tar")
    image = tmp_path / "root.raw"
    image.write_bytes(b"")
    trees = lh.RootTrees(tmp_path / "trees")
    with pytest.raises(lh.HostCommandError, match="tar"):
        lh.make_root_filesystem(image, archive, trees)
    assert not list((tmp_path / "trees").glob(".recon-tree-*"))


# cap_net_raw+ep as the kernel stores it (struct vfs_cap_data, revision 2, effective).
_CAP_NET_RAW = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)


@pytest.mark.skipif(
    not (shutil.which("mke2fs") and shutil.which("debugfs")), reason="needs e2fsprogs"
)
def test_container_root_filesystem_keeps_file_capabilities_and_xattrs(tmp_path: Path) -> None:
    """A template's file capabilities (ping's cap_net_raw) are extended attributes in the
    archive (pax SCHILY.xattr records, as mmdebstrap writes them): the root keeps them."""
    if os.geteuid() != 0:
        pytest.skip("setting a file capability (security.capability) needs root")
    archive = tmp_path / "t.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        body = b"#!/bin/sh\n"
        member = tarfile.TarInfo("./bin/ping")
        member.size, member.mode = len(body), 0o755
        member.pax_headers = {
            "SCHILY.xattr.security.capability": _CAP_NET_RAW.decode("latin-1"),
            "SCHILY.xattr.user.origin": "template",
        }
        tar.addfile(member, io.BytesIO(body))
    image = tmp_path / "root.raw"
    with image.open("wb") as fh:
        fh.truncate(16 << 20)
    lh.make_root_filesystem(image, archive, lh.RootTrees(tmp_path / "trees"))
    listing = subprocess.run(
        ["debugfs", "-R", "ea_list /bin/ping", str(image)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "security.capability" in listing, listing
    assert "user.origin" in listing and "template" in listing, listing


def _controller(tmp_path: Path, name: str, children: str) -> tuple[Path, Path]:
    run, proc = tmp_path / "run", tmp_path / "proc"
    (run / "lxc").mkdir(parents=True)
    (run / "lxc" / f"{name}.pid").write_text("100\n")
    for task in ("100", "102"):
        (proc / "100" / "task" / task).mkdir(parents=True)
        (proc / "100" / "task" / task / "children").write_text("")
    (proc / "100" / "task" / "100" / "children").write_text(children)
    (proc / "100" / "cmdline").write_bytes(
        b"\0".join([b"/usr/lib/libvirt/libvirt_lxc", b"--name", name.encode(), b"--console", b""])
    )
    return run, proc


def test_a_containers_init_is_the_child_of_its_controller(tmp_path: Path) -> None:
    run, proc = _controller(tmp_path, "ct-1", "101 ")
    assert lh.container_init_pid("ct-1", run, proc) == 101


def test_a_pid_file_of_another_container_or_no_child_finds_no_init(tmp_path: Path) -> None:
    run, proc = _controller(tmp_path, "ct-1", "101 ")
    # The pid file says 100, but that controller runs ct-1: not ct-10's.
    (run / "lxc" / "ct-10.pid").write_text("100\n")
    assert lh.container_init_pid("ct-10", run, proc) is None
    assert lh.container_init_pid("ct-2", run, proc) is None  # no pid file
    (proc / "100" / "task" / "100" / "children").write_text("")
    assert lh.container_init_pid("ct-1", run, proc) is None
