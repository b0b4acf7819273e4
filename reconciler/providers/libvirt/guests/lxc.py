"""A container's root filesystem on the LXC driver: an ext4 image in the container's raw
root volume, filled from its Template's archive on this host's disk (LXC mounts it through a
loop device). recon makes it itself, next to libvirtd, so only on a local host."""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path

import libvirt

from reconciler.model.kinds import Container
from reconciler.providers.base import ApplyContext, ProviderError, UnsupportedError
from reconciler.providers.libvirt import host as lh
from reconciler.providers.libvirt import templates
from reconciler.providers.libvirt.common import Host


def root_archive(host: Host, manifest: Container, context: ApplyContext) -> Path:
    """The template archive a new container root is made from."""
    if not host.local:
        raise UnsupportedError(
            f"Container/{manifest.name}: recon makes a container's root filesystem on the "
            "host itself, and this lxc host is remote",
            "run recon on the host (lxc:///system)",
        )
    return Path(templates.image_volume(host, manifest.spec.template, context, "tar").path)


def make_root(vol: libvirt.virStorageVol, archive: Path) -> None:
    """Fill the new raw root volume. A root that could not be made is deleted again, so that
    the next run makes it rather than starting a container on an empty disk."""
    try:
        lh.make_root_filesystem(Path(vol.path()), archive)
    except lh.HostCommandError as exc:
        with suppress(libvirt.libvirtError):
            vol.delete(0)
        raise ProviderError(f"making the container's root filesystem failed: {exc}") from None
