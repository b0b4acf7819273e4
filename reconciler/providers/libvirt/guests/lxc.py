"""A container's root filesystem on the LXC driver: an ext4 image in the container's raw
root volume, filled from its Template's archive on this host's disk (LXC mounts it through a
loop device). recon makes it itself, next to libvirtd, so only on a local host."""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path

import libvirt

from reconciler.model.artifacts import appcache_revision
from reconciler.model.kinds import Container
from reconciler.model.refs import ResourceRef
from reconciler.providers.artifacts import cached
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
    if manifest.spec.applications:
        return _appcache(host, manifest, context)
    return Path(templates.image_volume(host, manifest.spec.template, context, "tar").path)


def _appcache(host: Host, manifest: Container, context: ApplyContext) -> Path:
    """The container's application cache (its OS template plus its applications, built
    before the apply), read from recon's artifact cache on this host."""
    names = [manifest.spec.template, *manifest.spec.applications]
    found = [context.resources.get(ResourceRef("Template", n)) for n in names]
    revisions = [str(r.inputs.get("revision", "")) if r is not None else "" for r in found]
    artifact = None
    if host.home is not None and all(revisions):
        artifact = cached(host.home, appcache_revision(revisions[0], revisions[1:]))
    if artifact is None:
        cause = context.build_errors.get(f"Container/{manifest.name}")
        raise ProviderError(
            f"Container/{manifest.name}: {cause or 'its application cache is not built'}",
            None if cause else "apply again: the apply builds it first",
        )
    return artifact.image


def make_root(host: Host, vol: libvirt.virStorageVol, archive: Path) -> None:
    """Fill the new raw root volume. A root that could not be made is deleted again, so that
    the next run makes it rather than starting a container on an empty disk."""
    # The provider's trees outlive this root (the next container reuses them); a Host made
    # without them gets trees of its own for this root alone.
    trees = host.trees or lh.RootTrees(Path(vol.path()).parent)
    try:
        lh.make_root_filesystem(Path(vol.path()), archive, trees)
    except lh.HostCommandError as exc:
        with suppress(libvirt.libvirtError):
            vol.delete(0)
        raise ProviderError(f"making the container's root filesystem failed: {exc}") from None
    finally:
        if host.trees is None:
            trees.clear()
