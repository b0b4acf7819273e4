"""The manifests a command is given with -f: the option's help (`FILES_HELP`, kept in
params.py so that `validate` need not import this module), loading them as the desired set
(`load_resources`) or as the names `delete -f` deletes (`load_refs`), and the git commit they
come from (`git_revision`).

Manifests with problems end the command here, with exit 2 and every problem reported. No
command lives here: the command modules import this one, never the other way round.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from reconciler.cli.output import fail, print_diagnostics
from reconciler.cli.params import FILES_HELP as FILES_HELP  # re-exported for the commands
from reconciler.load.cross_checks import dangling_ref
from reconciler.load.manifests import load_manifests
from reconciler.load.secrets import Contexts, SecretPolicy, check_places, read_secrets
from reconciler.load.sources import expand_paths, read_sources
from reconciler.load.validate import validate_documents
from reconciler.model.diagnostics import Diagnostic
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.model.selectors import Selector

# What expand_paths says about a directory that holds no manifest file at all.
EMPTY_DIRECTORY = "directory contains no manifest files (*.yaml, *.yml)"


def _no_manifests(path: str) -> bool:
    """A readable directory without a single manifest file in it."""
    if not os.path.isdir(path):
        return False
    files, diags = expand_paths([path])
    return not files and [d.message for d in diags] == [EMPTY_DIRECTORY]


def load_resources(
    paths: Sequence[str],
    *,
    allow_empty: bool = False,
    host_refs: list[Diagnostic] | None = None,
    secrets: SecretPolicy | None = None,
    values: dict[tuple[ResourceRef, str], str] | None = None,
) -> list[Resource]:
    """The desired set the manifests form; exits 2 when any of them has a problem.

    host_refs: references to objects no manifest defines are put there instead, for the
    caller to look up on the host (host_refs.py), when they are the only problems.
    secrets: a secret referenced outside what it allows is a problem. values: every secret
    the manifests reference is read into it, and one that cannot be read is a problem
    (read before the host is even opened, so nothing is applied without it)."""
    if allow_empty:
        # Once the last manifest is removed from a repository, its directory is the desired
        # set: empty. Without --allow-empty that is still refused as a likely mistake.
        paths = [p for p in paths if not _no_manifests(p)]
    result = load_manifests(paths, stdin=sys.stdin.buffer)
    if secrets is not None:
        result.diagnostics += check_places(result.resources, secrets, result.contexts)
        result.diagnostics.sort(key=lambda d: d.sort_key())
    if host_refs is not None and all(dangling_ref(d) for d in result.diagnostics):
        host_refs += result.diagnostics
    elif not result.ok:
        print_diagnostics(result.diagnostics)
        fail(
            f"{len(result.diagnostics)} problems in the manifests; nothing was done",
            "run `recon validate` for the full report",
            code=2,
        )
    if secrets is not None and values is not None:
        read_values(result.resources, secrets, values, result.contexts)
    return result.resources


def read_values(
    resources: Sequence[Resource],
    policy: SecretPolicy,
    values: dict[tuple[ResourceRef, str], str],
    contexts: Contexts | None = None,
) -> None:
    """Every secret the resources reference, into values; exits 2 naming each one that
    cannot be read (all of them at once), before anything is applied."""
    found, missing = read_secrets(resources, policy, contexts)
    if missing:
        print_diagnostics(missing)
        fail(
            f"{len(missing)} secrets cannot be read; nothing was applied",
            "`recon validate --secrets` checks them without a host",
            code=2,
        )
    values.update(found)


def load_refs(paths: Sequence[str], selector: Selector | None = None) -> list[ResourceRef]:
    """What `delete -f` names. Each document must be a valid resource, but what it refers to
    need not be in the files: deleting one guest's manifest file must not need the pool's."""
    docs, read_diags = read_sources(paths, stdin=sys.stdin.buffer)
    result = validate_documents(docs)
    if read_diags or len(result.resources) != len(docs):
        diags = sorted(read_diags + result.diagnostics, key=lambda d: d.sort_key())
        print_diagnostics(diags)
        fail(
            f"{len(diags)} problems in the manifests; nothing was done",
            "run `recon validate` for the full report",
            code=2,
        )
    chosen = result.resources
    if selector is not None:
        chosen = [r for r in chosen if selector.matches(r.manifest.metadata.labels)]
    return [r.ref for r in chosen]


def git_revision(paths: Sequence[str]) -> str | None:
    """The git commit the manifests come from, when they come from a clean work tree."""
    if os.environ.get("RECON_REVISION"):
        return os.environ["RECON_REVISION"]
    first = next((p for p in paths if p != "-"), None)
    if first is None:
        return None
    where = Path(first) if Path(first).is_dir() else Path(first).parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha[:12]}-dirty" if dirty else sha[:12]
