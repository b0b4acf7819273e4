"""The local host under libvirt: what recon reads and writes next to libvirtd, not through it.

Two things libvirt does not do for recon on this kind of host:
- memory guarantees: QEMU refuses <min_guarantee>, so a running guest's guarantee is written
  into its memory cgroup (cgroup v1 memory.soft_limit_in_bytes, cgroup v2 memory.min);
- KSM on/off: libvirt's node memory parameters cover the scanner's tuning but not
  /sys/kernel/mm/ksm/run.

And one thing libvirt's LXC driver expects to find ready: a container's root filesystem.
recon makes it from the Template's archive (an ext4 image in the container's raw volume).

And what libvirt does not say about containers that stop right after their start: root's
inotify limit and use (each systemd container holds a few instances against it), and whether a
container's init has forked yet.

All of these only make sense when recon runs on the host libvirtd runs on (`is_local`); over
a remote URI the guarantee is admission only and KSM's run switch is out of reach, and recon
says so.
Paths are parameters so that tests can point them at a scratch tree.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from reconciler.providers.base import InotifyUse

PROC = Path("/proc")
INOTIFY_MAX = Path("/proc/sys/fs/inotify/max_user_instances")
KSM_RUN = Path("/sys/kernel/mm/ksm/run")
LIBVIRT_RUN = Path("/run/libvirt")

# How a guarantee is held, as `recon get -o wide` prints it.
CGROUP_V1 = "cgroup-v1 soft limit"
CGROUP_V2 = "cgroup-v2 memory.min"
MIN_GUARANTEE = "min_guarantee"
ADMISSION_ONLY = "admission only"

# A v1 soft limit reads back as the page counter maximum when none is set.
_UNLIMITED = 1 << 62
# Threads libvirt moves into sub-groups of the domain's cgroup; the guarantee belongs to the
# domain's own group, which holds them all.
_THREAD_GROUP = re.compile(r"^(emulator|vcpu\d+|iothread\d+)$")
_DOMAIN_GROUP = re.compile(r"\.libvirt-(qemu|lxc)$")


def is_local(uri: str) -> bool:
    """True for a URI that reaches the libvirtd of this machine over its UNIX socket
    (qemu:///system, lxc:///system, qemu+unix:///system); False for any network transport or
    host name, even one that names this machine, since then recon may not run where it is."""
    parts = urlsplit(uri)
    transport = parts.scheme.partition("+")[2]
    return transport in ("", "unix") and not parts.netloc


@dataclass(frozen=True, slots=True)
class MemoryCgroup:
    """A domain's memory cgroup directory and the cgroup version it belongs to."""

    version: int
    path: Path

    @property
    def how(self) -> str:
        return CGROUP_V1 if self.version == 1 else CGROUP_V2

    @property
    def _file(self) -> Path:
        return self.path / ("memory.soft_limit_in_bytes" if self.version == 1 else "memory.min")

    def read(self) -> int:
        """Bytes protected now; 0 for none."""
        text = self._file.read_text().strip()
        if text == "max":
            return _UNLIMITED
        value = int(text)
        return 0 if self.version == 1 and value >= _UNLIMITED else value

    def write(self, nbytes: int) -> None:
        """Protect nbytes; 0 removes the protection."""
        # v1: -1 is "no soft limit", the guest is reclaimed like any other group.
        off = "-1" if self.version == 1 else "0"
        self._file.write_text((str(nbytes) if nbytes > 0 else off) + "\n")


def _unescape(field: str) -> str:
    """Mount points in mountinfo escape space, tab, newline and backslash as octal."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


@dataclass(frozen=True, slots=True)
class _Mount:
    root: str
    point: Path
    fstype: str
    options: frozenset[str]


def _cgroup_mounts(proc: Path) -> list[_Mount]:
    out = []
    for line in (proc / "self" / "mountinfo").read_text().splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        out.append(
            _Mount(
                _unescape(fields[3]),
                Path(_unescape(fields[4])),
                tail[0],
                frozenset(tail[2].split(",")),
            )
        )
    return out


def _domain_group(path: str) -> str:
    """The domain's own group for a process's cgroup path: libvirt puts QEMU's threads in
    emulator/vcpuN sub-groups of it (on cgroup v2 always), and names it `*.libvirt-qemu`."""
    parts = [p for p in path.split("/") if p]
    for index in range(len(parts), 0, -1):
        if _DOMAIN_GROUP.search(parts[index - 1]):
            return "/" + "/".join(parts[:index])
    while parts and _THREAD_GROUP.match(parts[-1]):
        parts.pop()
    return "/" + "/".join(parts)


def _under(mount: _Mount, group: str) -> Path:
    # A mount of a sub-tree (root other than "/") shows paths relative to that root.
    rel = group
    if mount.root != "/" and group.startswith(mount.root):
        rel = group[len(mount.root) :]
    return mount.point / rel.lstrip("/")


def memory_cgroup(pid: int, proc: Path = PROC) -> MemoryCgroup | None:
    """The memory cgroup of the domain whose process is pid: the v1 memory hierarchy when
    the host mounts one, else the v2 group when the v2 memory controller is on there."""
    try:
        lines = (proc / str(pid) / "cgroup").read_text().splitlines()
        mounts = _cgroup_mounts(proc)
    except OSError:
        return None
    v1: str | None = None
    v2: str | None = None
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    if v1 is not None:
        for mount in mounts:
            if mount.fstype == "cgroup" and "memory" in mount.options:
                candidate = _under(mount, _domain_group(v1))
                if (candidate / "memory.soft_limit_in_bytes").exists():
                    return MemoryCgroup(1, candidate)
    if v2 is not None:
        for mount in mounts:
            if mount.fstype == "cgroup2":
                candidate = _under(mount, _domain_group(v2))
                if (candidate / "memory.min").exists():
                    return MemoryCgroup(2, candidate)
    return None


def _memory_group_of(pid: int, proc: Path) -> str | None:
    """A process's memory cgroup path as the host sees it (v1 memory line, else v2)."""
    try:
        lines = (proc / str(pid) / "cgroup").read_text().splitlines()
    except OSError:
        return None
    v2 = None
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if "memory" in controllers.split(","):
            return path
        if hierarchy == "0" and controllers == "":
            v2 = path
    return v2


def processes_outside_cgroup(controller: int, proc: Path = PROC, limit: int = 4096) -> list[int]:
    """The processes of a container (the descendants of its libvirt_lxc controller) whose
    memory cgroup is not the container's own: libvirt 9.0 gives containers no cgroup
    namespace, and a container's systemd moves itself into the host's groups (seen here:
    /init.scope), where the container's limit and guarantee do not reach it."""
    own = _memory_group_of(controller, proc)
    if own is None:
        return []
    own = _domain_group(own)
    outside: list[int] = []
    todo = [controller]
    seen = 0
    while todo and seen < limit:
        pid = todo.pop()
        seen += 1
        try:
            children = (proc / str(pid) / "task" / str(pid) / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            cpid = int(child)
            todo.append(cpid)
            group = _memory_group_of(cpid, proc)
            if group is not None and not (group == own or group.startswith(own + "/")):
                outside.append(cpid)
    return outside


def memory_cgroup_version(proc: Path = PROC) -> int | None:
    """Which cgroup version holds the memory controller on this host, if any."""
    try:
        mounts = _cgroup_mounts(proc)
    except OSError:
        return None
    if any(m.fstype == "cgroup" and "memory" in m.options for m in mounts):
        return 1
    for mount in mounts:
        if mount.fstype == "cgroup2":
            try:
                if "memory" in (mount.point / "cgroup.controllers").read_text().split():
                    return 2
            except OSError:
                continue
    return None


def domain_pid(driver: str, name: str, run: Path = LIBVIRT_RUN) -> int | None:
    """The pid libvirtd recorded for a running domain (QEMU's, or LXC's controller)."""
    state = "lxc" if driver == "lxc" else "qemu"
    try:
        return int((run / state / f"{name}.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def container_init_pid(name: str, run: Path = LIBVIRT_RUN, proc: Path = PROC) -> int | None:
    """The pid (on this host) of a running LXC container's init: the child of the libvirt_lxc
    controller libvirtd recorded for it. The controller's command line must name the
    container, so a pid file left over from another container is never used."""
    controller = domain_pid("lxc", name, run)
    if controller is None:
        return None
    try:
        argv = (proc / str(controller) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if b"--name" not in argv or argv[argv.index(b"--name") + 1 :][:1] != [name.encode()]:
        return None
    children = _children(controller, proc)
    return children[0] if children else None


# --- KSM ---------------------------------------------------------------------------------------


def ksm_enabled(path: Path = KSM_RUN) -> bool | None:
    """Whether ksmd merges pages (run = 1); None when this kernel has no KSM."""
    try:
        return path.read_text().strip() == "1"
    except OSError:
        return None


def set_ksm_enabled(enabled: bool, path: Path = KSM_RUN) -> None:
    # 0 stops merging and keeps what is merged; 2 would also unmerge every page, a large
    # and slow change no manifest asked for.
    path.write_text("1\n" if enabled else "0\n")


# What the host's KSM settings were before recon's HostPolicy first changed them, so that
# deleting the policy can put them back. Host-wide, as KSM is: not in one operator's
# RECON_HOME. RECON_HOST_RECORD moves it (tests).
HOST_RECORD = Path("/var/lib/recon/host-policy.json")


def host_record_path() -> Path:
    return Path(os.environ.get("RECON_HOST_RECORD") or HOST_RECORD)


def read_host_record() -> dict[str, object] | None:
    """The KSM settings recorded before recon's first change, or None (none recorded, or
    a record that does not parse: then nothing is put back, rather than a guess)."""
    try:
        data = json.loads(host_record_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ksm = data.get("ksm") if isinstance(data, dict) else None
    return dict(ksm) if isinstance(ksm, dict) and ksm else None


def write_host_record(ksm: dict[str, object]) -> None:
    """Atomically (temp file, rename), root's only."""
    path = host_record_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".host-policy-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"ksm": ksm}, fh, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def drop_host_record() -> None:
    host_record_path().unlink(missing_ok=True)


# --- inotify and containers' inits ----------------------------------------------------------


def inotify_in_use(proc: Path = PROC, uid: int = 0) -> int:
    """The inotify instances the processes of uid hold (their fds that are one): the kernel
    counts them per user against fs.inotify.max_user_instances. An estimate: an instance
    shared by two processes counts twice, one whose creator changed user is missed."""
    count = 0
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            fds = os.scandir(Path(entry.path) / "fd")
        except OSError:
            continue  # gone, or not ours to read
        with fds:
            for fd in fds:
                try:
                    if os.readlink(fd.path) == "anon_inode:inotify":
                        count += 1
                except OSError:
                    continue
    return count


def inotify_use(proc: Path = PROC, limit: Path = INOTIFY_MAX) -> InotifyUse | None:
    """root's inotify limit and use; None when the kernel has no such limit to read."""
    try:
        most = int(limit.read_text().strip())
    except (OSError, ValueError):
        return None
    return InotifyUse(limit=most, in_use=inotify_in_use(proc))


def _children(pid: int, proc: Path) -> list[int]:
    out: list[int] = []
    try:
        tasks = list((proc / str(pid) / "task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out += [int(word) for word in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return out


def container_init_forked(controller: int, proc: Path = PROC) -> bool:
    """Whether a container's init (the child of libvirt's controller process) has started
    processes of its own: a systemd that did, got past setting itself up (where it stops when
    the host has no inotify instance left for it)."""
    return any(_children(init, proc) for init in _children(controller, proc))


# --- container root filesystems --------------------------------------------------------------


class HostCommandError(Exception):
    """A host tool (tar, mke2fs) failed; the message is its own."""


def _run(args: list[str]) -> None:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HostCommandError(f"{args[0]}: {exc}") from None
    if done.returncode != 0:
        raise HostCommandError(f"{args[0]}: {done.stderr.strip() or done.returncode}")


class RootTrees:
    """Template archives extracted once for every container root one provider makes: mke2fs
    -d only reads a tree, so N new containers from one template cost one extraction and N
    mke2fs runs. Each tree sits in a private directory under `base` named with this process's
    id (a tree a killed recon left is removed by the next one), and all go at `clear()`."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._trees: dict[tuple[str, int, int], Path] = {}

    def tree(self, archive: Path) -> Path:
        st = archive.stat()
        key = (str(archive.resolve()), st.st_size, st.st_mtime_ns)
        found = self._trees.get(key)
        if found is not None and found.is_dir():
            return found
        self.base.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._sweep()
        tree = Path(tempfile.mkdtemp(prefix=f".recon-tree-{os.getpid()}-", dir=self.base))
        try:
            # File capabilities and ACLs are extended attributes: the template's tar keeps
            # them, and the container's root must too.
            xattrs = ("--xattrs", "--xattrs-include=*")
            _run(["tar", "-x", "--numeric-owner", *xattrs, "-f", str(archive), "-C", str(tree)])
        except BaseException:
            shutil.rmtree(tree, ignore_errors=True)
            raise
        self._trees[key] = tree
        return tree

    def clear(self) -> None:
        for tree in self._trees.values():
            shutil.rmtree(tree, ignore_errors=True)
        self._trees.clear()

    def _sweep(self) -> None:
        for old in self.base.glob(".recon-tree-*"):
            pid = old.name.split("-")[2] if old.name.count("-") >= 3 else ""
            if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
                shutil.rmtree(old, ignore_errors=True)


def make_root_filesystem(image: Path, archive: Path, trees: RootTrees) -> None:
    """Turn image (a sparse raw file of the root's size) into an ext4 filesystem holding the
    files of archive (a tar of a root tree). mke2fs -d fills it from a directory, so nothing
    is mounted on the host; tar keeps owners, modes and extended attributes as root extracts
    them, and refuses members that would land outside the directory."""
    _run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(trees.tree(archive)), str(image)])
