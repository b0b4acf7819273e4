"""Built templates: what makes a template's revision, and the artifact a build leaves.

A Template with `source.build` is made from a package list. Its *revision* is a hash of
everything the build reads from the manifest and the repository next to it (the spec, less
where it is kept and how often it is refreshed, plus the content of its customize scripts),
so the same spec gives the same revision on any machine, and a change to a script is a change
to the template. The *artifact* is one build of a revision against one state of the package
repository: its id names the host's image volume, so a refresh against a moved repository
never overwrites an image that guests' disks back onto.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.model.kinds import Template

# Fields a stamp records that no manifest holds (Resource.inputs): a built Template's
# revision. A host object shown as a manifest leaves them out (status.artifact has it).
IMPLIED_FIELDS = frozenset({"revision"})
# Bumped when the builder makes something different from the same spec.
BUILDER_VERSION = "1"
# The kernel command line of a VM booted from a built template (direct kernel boot).
VM_CMDLINE = "root=LABEL=root rw console=ttyS0 net.ifnames=0"


def template_revision(manifest: Template, script_digests: Sequence[str]) -> str:
    """sha256 over what a build of this template reads (hex). pool and maxAge are left out:
    they say where the image is kept and when to look again, not what it is."""
    spec = manifest.spec
    assert spec.source.build is not None
    build = spec.source.build.model_dump(mode="json", by_alias=True)
    build.pop("maxAge", None)
    build["customize"] = list(script_digests)
    what = {
        "builder": BUILDER_VERSION,
        "osName": spec.os_name,
        "version": spec.version,
        "arch": spec.arch,
        "format": spec.format,
        "packages": list(spec.packages),
        "repositories": [r.model_dump(mode="json", by_alias=True) for r in spec.repositories],
        "build": build,
    }
    text = json.dumps(what, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def appcache_revision(os_revision: str, app_revisions: list[str]) -> str:
    """A container's application cache: its OS template's revision and its application
    templates' in order (each as the 12 hex digits of a Template's `revision` field)."""
    text = "\n".join(["appcache", os_revision[:12], *(r[:12] for r in app_revisions)])
    return hashlib.sha256(text.encode()).hexdigest()


def script_path(manifest_file: str, script: str) -> Path:
    path = Path(script)
    return path if path.is_absolute() else Path(manifest_file).parent / path


def artifact_id(revision: str, repository: Mapping[str, str]) -> str:
    """The id of one build: its revision against one state of the repository."""
    state = json.dumps(dict(repository), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{revision}\n{state}".encode()).hexdigest()


def image_volume_name(template: str, artifact: str, fmt: str) -> str:
    """The pool volume holding one build's image."""
    return f"template-{template}-{artifact[:12]}.{fmt}"


def boot_volume_names(image_volume: str) -> tuple[str, str]:
    """The kernel and initrd volumes that go with a VM template's image volume."""
    stem = image_volume.rsplit(".", 1)[0]
    return f"{stem}.vmlinuz", f"{stem}.initrd"


@dataclass(frozen=True, slots=True)
class Artifact:
    """One build of a template, in recon's artifact cache."""

    # The Template the build was made for (others with the same revision share it).
    template: str
    revision: str
    id: str
    format: str
    image: Path
    digest: str
    size: int
    built_at: str
    repository: Mapping[str, str]
    packages: Mapping[str, str] = field(default_factory=dict)
    kernel: Path | None = None
    initrd: Path | None = None

    def volume(self, template: str) -> str:
        """The pool volume of this build for a Template of that name (a build serves every
        Template with its revision, whatever the name)."""
        return image_volume_name(template, self.id, self.format)

    def record(self, template: str) -> dict[str, Any]:
        """What the host keeps about the build (the pool's stamp), and `get -o yaml` shows."""
        return {
            "revision": self.revision,
            "artifact": self.id,
            "image": self.volume(template),
            "digest": f"sha256:{self.digest}",
            "size": self.size,
            "builtAt": self.built_at,
            "repository": dict(self.repository),
            "packages": dict(self.packages),
            "boot": self.kernel is not None,
        }
