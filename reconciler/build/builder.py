"""Build a Template's artifact with mmdebstrap, into recon's artifact cache.

- Container templates (format tar): the root filesystem as a tar archive (xattrs kept),
  which a container's root is made from.
- VM templates (format qcow2): the same root made into an ext2 filesystem labelled `root`
  by genext2fs straight from that archive (reproducible, no mount, no loop device), converted
  to qcow2, plus the kernel and initrd copied out of it for direct kernel boot (a VM on a
  host without working KVM runs the image under TCG, where real-mode bootloader code is
  slowest and where KVM here stopped on it; see docs/real-hosts.md).

Reproducible: SOURCE_DATE_EPOCH is the repository's newest Release date, and the hooks
below write what mmdebstrap would copy from the build host (hostname, resolv.conf,
machine-id). The same revision against the same repository content gives the same bytes.

A build writes into a work directory in the cache and renames it into place when it is
complete: a failed or killed build leaves no artifact, and the next one removes what a killed
one left (after making sure nothing is still mounted there).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shlex
import shutil
import subprocess
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.build import sources as src
from reconciler.build import workdir
from reconciler.load.validate import ScriptError, script_digests
from reconciler.model.artifacts import (
    Artifact,
    appcache_revision,
    artifact_id,
    script_path,
    template_revision,
)
from reconciler.model.errors import ReconError
from reconciler.model.kinds import Template, duration_seconds
from reconciler.model.resource import Resource
from reconciler.providers.artifacts import cache_root, cached, entry_dir, file_sha256, read_entry

Progress = Callable[[str], None]

# What every template gets, whatever its package list: an init for a container, and for a
# VM a kernel, udev, networking and the guest agent recon's guest tools talk to.
CONTAINER_BASE = ("systemd-sysv", "dbus")
VM_BASE = ("systemd-sysv", "dbus", "udev", "iproute2", "qemu-guest-agent")
_KERNEL = {"x86_64": "linux-image-cloud-amd64", "aarch64": "linux-image-cloud-arm64"}
_DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "i386", "ppc64le": "ppc64el"}
TOOLS = ("mmdebstrap", "genext2fs", "qemu-img")
_INSTALL_HINT = "apt-get install mmdebstrap genext2fs qemu-utils (scripts/bootstrap does)"


class BuildError(ReconError):
    """A build that did not produce an artifact, with its cause in the builder's own words."""


def apt_cache(home: Path) -> Path:
    """Downloaded packages shared between builds (RECON_APT_CACHE overrides it)."""
    return Path(os.environ.get("RECON_APT_CACHE") or home / "cache" / "apt")


def revision_of(resource: Resource) -> str:
    manifest = resource.manifest
    assert isinstance(manifest, Template) and manifest.spec.source.build is not None
    try:
        return template_revision(manifest, script_digests(manifest, resource.file))
    except ScriptError as exc:
        raise BuildError(f"{resource.ref}: {exc}", exc.hint) from None


def expired(artifact: Artifact, template: Template, now: float | None = None) -> bool:
    """Older than the template's maxAge (never, without one)."""
    build = template.spec.source.build
    if build is None or build.max_age is None:
        return False
    built = dt.datetime.fromisoformat(artifact.built_at).timestamp()
    return (now if now is not None else dt.datetime.now(dt.UTC).timestamp()) - built > (
        duration_seconds(build.max_age)
    )


def check_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise BuildError(f"building templates needs {', '.join(missing)}", _INSTALL_HINT)
    if os.geteuid() != 0:
        raise BuildError(
            "building templates needs root (mmdebstrap --mode=root)",
            "run recon as root, or give the template a source.file built elsewhere",
        )


@dataclass(frozen=True, slots=True)
class Recipe:
    """What one build installs: the OS template's system (suite, variant, arch, repositories,
    format) with these packages, then these scripts. A template is one recipe; a container's
    application cache is its OS template's recipe plus its application templates'."""

    ref: str
    name: str
    os: Template
    packages: tuple[str, ...]
    scripts: tuple[Path, ...]
    revision: str


def recipe_of(resource: Resource) -> Recipe:
    manifest = resource.manifest
    assert isinstance(manifest, Template) and manifest.spec.source.build is not None
    return Recipe(
        str(resource.ref),
        manifest.name,
        manifest,
        tuple(manifest.spec.packages),
        _scripts(resource),
        revision_of(resource),
    )


def appcache_recipe(container: str, base: Resource, apps: Sequence[Resource]) -> Recipe:
    """A container's application cache: its OS template plus its application templates'
    packages and scripts, in the order the container lists them (vzpkg's appcache)."""
    os_recipe = recipe_of(base)
    packages = list(os_recipe.packages)
    scripts = list(os_recipe.scripts)
    revisions = []
    for app in apps:
        assert isinstance(app.manifest, Template)
        packages += app.manifest.spec.packages
        scripts += _scripts(app)
        revisions.append(revision_of(app))
    # Keyed as the provider finds it: by the Templates' revision fields.
    return Recipe(
        f"Container/{container}",
        container,
        os_recipe.os,
        tuple(packages),
        tuple(scripts),
        appcache_revision(os_recipe.revision, revisions),
    )


def _scripts(resource: Resource) -> tuple[Path, ...]:
    manifest = resource.manifest
    assert isinstance(manifest, Template) and manifest.spec.source.build is not None
    return tuple(
        script_path(resource.file, s).resolve() for s in manifest.spec.source.build.customize
    )


def build(
    home: Path,
    resource: Resource,
    *,
    refresh: bool = False,
    progress: Progress = lambda message: None,
) -> tuple[Artifact, bool]:
    """The artifact of the resource's revision: the cached one, or a new build. With refresh
    (or once the cached one is older than maxAge) the repository is asked whether it moved,
    and a moved one is built again. Returns the artifact and whether it was built now."""
    return build_recipe(home, recipe_of(resource), refresh=refresh, progress=progress)


def build_recipe(
    home: Path,
    recipe: Recipe,
    *,
    refresh: bool = False,
    progress: Progress = lambda message: None,
) -> tuple[Artifact, bool]:
    have = cached(home, recipe.revision)
    if have is not None and not refresh and not expired(have, recipe.os):
        return have, False
    try:
        apt_sources = src.sources_for(recipe.os)
        progress(f"{recipe.ref}: reading the repository's Release files")
        state = src.repository_state(apt_sources)
    except src.SourceError as exc:
        raise BuildError(f"{recipe.ref}: {exc}") from None
    wanted = artifact_id(recipe.revision, state)
    if have is not None and have.id == wanted:
        return have, False  # the repository has not moved: an age alone is no rebuild
    check_tools()
    return _build(home, recipe, apt_sources, state, progress), True


def _build(
    home: Path,
    recipe: Recipe,
    apt_sources: list[src.AptSource],
    state: dict[str, str],
    progress: Progress,
) -> Artifact:
    spec = recipe.os.spec
    build_spec = spec.source.build
    assert build_spec is not None
    revision = recipe.revision
    root = cache_root(home)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    final = entry_dir(home, revision)
    with workdir.work_dir(root, final.name) as work:
        epoch = src.newest_epoch(state)
        fmt = spec.format
        base = (*VM_BASE, _KERNEL.get(spec.arch, "linux-image-generic"))
        packages = sorted({*recipe.packages, *(CONTAINER_BASE if fmt == "tar" else base)})
        sources_file = work / "sources.list"
        sources_file.write_text("".join(s.line() + "\n" for s in apt_sources))
        cache = apt_cache(home)
        cache.mkdir(parents=True, exist_ok=True, mode=0o700)
        archive = work / "root.tar"
        cmd = [
            "mmdebstrap",
            "--mode=root",
            f"--variant={build_spec.variant}",
            f"--architectures={_DEB_ARCH.get(spec.arch, 'amd64')}",
            f"--include={','.join(packages)}",
            "--aptopt=Acquire::Check-Valid-Until false",
            "--aptopt=Acquire::Languages none",
            # The shared package cache: packages come in from it and go back to it (apt
            # checks their hashes; mmdebstrap's cleanup removes them from the root).
            "--skip=essential/unlink",
            f'--setup-hook=mkdir -p "$1"/var/cache/apt/archives/ && '
            f'cp -a {shlex.quote(str(cache))}/. "$1"/var/cache/apt/archives/',
            *_customize_hooks(fmt, work, recipe.scripts),
            f'--customize-hook=cp -a "$1"/var/cache/apt/archives/*.deb {shlex.quote(str(cache))}/ '
            "2>/dev/null || true",
            src.suite_of(recipe.os),
            str(archive),
            str(sources_file),
        ]
        if any(s.uri.startswith("file://") for s in apt_sources):
            cmd.insert(1, "--hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount")
        proxy = src.apt_proxy()
        if proxy:
            cmd.insert(1, f"--aptopt=Acquire::http::Proxy {proxy}")
        env = {
            **os.environ,
            "SOURCE_DATE_EPOCH": str(epoch),
            "TMPDIR": str(work),
            "LC_ALL": "C.UTF-8",
        }
        progress(f"{recipe.ref}: building {fmt} from {len(packages)} packages (mmdebstrap)")
        _run(cmd, env, recipe.ref, progress, work)
        if fmt == "qcow2":
            image = work / "image.qcow2"
            _disk_image(archive, work, image, build_spec.disk_size, epoch, recipe.ref, progress)
            archive.unlink()
            boot = True
        else:
            image = work / "image.tar"
            archive.rename(image)
            boot = False
        progress(f"{recipe.ref}: recording the artifact")
        packages_seen = _packages(work / "packages.txt")
        digest, size = file_sha256(image)
        record: dict[str, Any] = {
            "template": recipe.name,
            "revision": revision,
            "artifact": artifact_id(revision, state),
            "format": fmt,
            "file": image.name,
            "digest": f"sha256:{digest}",
            "size": size,
            "builtAt": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
            "repository": state,
            "packages": packages_seen,
            "boot": boot,
        }
        (work / "packages.txt").unlink(missing_ok=True)
        sources_file.unlink()
        (work / "record.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        workdir.replace(work, final)
    artifact = read_entry(final)
    assert artifact is not None
    return artifact


def _customize_hooks(fmt: str, work: Path, scripts: Sequence[Path]) -> list[str]:
    """Write what mmdebstrap would copy from the build host, then the VM's boot pieces, then
    the template's own scripts, then the package list (after them: they may install more)."""
    hooks = [
        'echo localhost > "$1/etc/hostname"',
        'printf "127.0.0.1\\tlocalhost\\n::1\\tlocalhost ip6-localhost ip6-loopback\\n"'
        ' > "$1/etc/hosts"',
        ': > "$1/etc/resolv.conf"',
        # Empty: systemd makes one at the first boot of each guest (ConditionFirstBoot).
        'echo uninitialized > "$1/etc/machine-id"; rm -f "$1/var/lib/dbus/machine-id"',
        # Host keys made at build time would be the same in every guest: each guest makes
        # its own at first start instead.
        'if [ -d "$1/etc/ssh" ]; then rm -f "$1"/etc/ssh/ssh_host_*; '
        'mkdir -p "$1/etc/systemd/system/ssh.service.d"; '
        'printf "[Service]\\nExecStartPre=/usr/bin/ssh-keygen -A\\n" '
        '> "$1/etc/systemd/system/ssh.service.d/recon-host-keys.conf"; fi',
    ]
    if fmt == "qcow2":
        work_q = shlex.quote(str(work))
        hooks += [
            'printf "LABEL=root / ext4 errors=remount-ro 0 1\\n" > "$1/etc/fstab"',
            'mkdir -p "$1/etc/systemd/network"; '
            'printf "[Match]\\nName=eth* en*\\n\\n[Network]\\nDHCP=yes\\n" '
            '> "$1/etc/systemd/network/80-recon-dhcp.network"',
            'chroot "$1" systemctl enable systemd-networkd >/dev/null 2>&1',
            f'cp "$1"/boot/vmlinuz-* {work_q}/vmlinuz && cp "$1"/boot/initrd.img-* {work_q}/initrd',
        ]
    for script in scripts:
        hooks.append(f'{shlex.quote(str(script))} "$1"')
    hooks.append(
        "chroot \"$1\" dpkg-query -W -f='${Package}\\t${Version}\\n' > "
        + shlex.quote(str(work / "packages.txt"))
    )
    return [f"--customize-hook={hook}" for hook in hooks]


def _run(cmd: list[str], env: dict[str, str], ref: str, progress: Progress, work: Path) -> None:
    """Run a build step; its last lines (apt's own words) make the error when it fails.

    The step runs in a process group of its own (killed whole when recon gives up on it),
    recorded in the work directory: a recon killed with -9 cannot kill it, so the next build
    does (`workdir.stop_groups`) before it removes what this one left."""
    tail: deque[str] = deque(maxlen=60)
    with subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        text=True,
        errors="replace",
        start_new_session=True,
    ) as proc:
        assert proc.stderr is not None
        with (work / workdir.GROUPS).open("a") as groups:
            groups.write(f"{proc.pid}\n")
        try:
            for line in proc.stderr:
                line = line.rstrip()
                tail.append(line)
                if line.startswith("I: ") and not line.startswith("I: running "):
                    progress(f"{ref}: {line[3:]}")
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            raise
    if proc.returncode != 0:
        raise BuildError(
            f"{ref}: the build failed: {_cause(list(tail), cmd[0])}",
            "fix the template's packages, repositories or scripts and apply again",
        )


def _cause(lines: list[str], tool: str) -> str:
    errors = [ln for ln in lines if ln.startswith("E: ") and "mmdebstrap" not in ln]
    errors = errors or [ln for ln in lines if ln.startswith("E: ")]
    if errors:
        return "; ".join(dict.fromkeys(e[3:].strip() for e in errors))[:2000]
    useful = [ln for ln in lines if ln.strip()]
    return (useful[-1] if useful else f"{tool} failed")[:2000]


def _disk_image(
    archive: Path,
    work: Path,
    image: Path,
    size: int,
    epoch: int,
    ref: str,
    progress: Progress,
) -> None:
    progress(f"{ref}: making the root filesystem")
    raw = work / "root.raw"
    block = 4096
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
    _run(
        [
            "genext2fs",
            "-B",
            str(block),
            "-b",
            str(size // block),
            "-N",
            str(max(65536, size // 16384)),
            "-L",
            "root",
            "-a",
            str(archive),
            str(raw),
        ],
        env,
        ref,
        progress,
        work,
    )
    progress(f"{ref}: converting to qcow2")
    cmd = ["qemu-img", "convert", "-O", "qcow2", str(raw), str(image)]
    _run(cmd, env, ref, progress, work)
    raw.unlink()
    for name in ("vmlinuz", "initrd"):
        if not (work / name).is_file():
            raise BuildError(f"{ref}: the image has no /boot/{name}*: no kernel")
        (work / name).chmod(0o644)


def _packages(path: Path) -> dict[str, str]:
    try:
        text = path.read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        name, _, version = line.partition("\t")
        if name:
            out[name] = version
    return out
