"""Builds before an apply: every built Template's revision made ready in the artifact cache,
outside the host lock (a build reads the package repository, not the host; minutes of it
must not hold up other recon commands). A failed build is reported and handed to the apply,
where the Template's change fails with it and what needs the Template is not attempted;
everything else is still applied."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from reconciler.build import builder
from reconciler.model.kinds import Template
from reconciler.model.resource import Resource

Report = Callable[[str], None]


def built_templates(resources: Sequence[Resource]) -> list[Resource]:
    return [
        r
        for r in resources
        if isinstance(r.manifest, Template) and r.manifest.spec.source.build is not None
    ]


# A control loop tries a failed build of the same revision again only after this long: a
# build that failed on an unknown package fails the same way on the next pass.
RETRY_FAILED_AFTER = 300.0


def prepare_builds(
    resources: Sequence[Resource],
    home: Path,
    report: Report | None = None,
    *,
    refresh: bool = False,
    failed: dict[str, tuple[float, str]] | None = None,
) -> dict[str, str]:
    """Build what the cache lacks (or what is older than maxAge against a moved
    repository); template name -> error for each build that failed. `failed` (a loop's
    memory across passes, by revision) holds recent failures back from a retry."""
    say = report or _stderr
    errors: dict[str, str] = {}
    for resource in built_templates(resources):
        started = time.monotonic()
        key = f"{resource.ref.name}@{resource.inputs.get('revision')}"
        if failed is not None and key in failed:
            when, error = failed[key]
            if started - when < RETRY_FAILED_AFTER:
                errors[resource.ref.name] = error
                continue
        try:
            artifact, built = builder.build(home, resource, refresh=refresh, progress=say)
        except builder.BuildError as exc:
            errors[resource.ref.name] = str(exc)
            if failed is not None:
                failed[key] = (started, str(exc))
            say(f"error: {exc}" + (f"\n  hint: {exc.hint}" if exc.hint else ""))
            continue
        if built:
            say(
                f"{resource.ref}: built {artifact.volume(resource.ref.name)} "
                f"({artifact.size / 1e6:.0f} MB, {len(artifact.packages)} packages) "
                f"in {time.monotonic() - started:.0f} s"
            )
    return errors


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
