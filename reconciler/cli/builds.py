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
from typing import TYPE_CHECKING

from reconciler.model.kinds import Container, Template
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource

if TYPE_CHECKING:
    from reconciler.build import builder

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
    repository); "Kind/name" -> error for each build that failed. `failed` (a loop's
    memory across passes, by revision) holds recent failures back from a retry."""
    # Imported here: the build machinery (urllib, the builder) is what `recon diff` and a
    # loop's pass without built templates need not load.
    from reconciler.build import builder

    say = report or _stderr
    errors: dict[str, str] = {}
    for recipe in recipes(resources, errors):
        started = time.monotonic()
        key = f"{recipe.ref}@{recipe.revision}"
        if failed is not None and key in failed:
            when, error = failed[key]
            if started - when < RETRY_FAILED_AFTER:
                errors[recipe.ref] = error
                continue
        try:
            artifact, built = builder.build_recipe(home, recipe, refresh=refresh, progress=say)
        except builder.BuildError as exc:
            errors[recipe.ref] = str(exc)
            if failed is not None:
                failed[key] = (started, str(exc))
            say(f"error: {exc}" + (f"\n  hint: {exc.hint}" if exc.hint else ""))
            continue
        if built:
            say(
                f"{recipe.ref}: built revision {artifact.revision[:12]} "
                f"({artifact.size / 1e6:.0f} MB, {len(artifact.packages)} packages) "
                f"in {time.monotonic() - started:.0f} s"
            )
    return errors


def recipes(resources: Sequence[Resource], errors: dict[str, str]) -> list[builder.Recipe]:
    """Every built OS template, then the application cache of every container that lists
    applications. An application template is built only inside such a cache."""
    from reconciler.build import builder

    by_ref = {r.ref: r for r in resources}
    out: list[builder.Recipe] = []
    for resource in built_templates(resources):
        assert isinstance(resource.manifest, Template)
        if resource.manifest.spec.type == "os":
            try:
                out.append(builder.recipe_of(resource))
            except builder.BuildError as exc:
                errors[str(resource.ref)] = str(exc)
    for resource in resources:
        manifest = resource.manifest
        if not isinstance(manifest, Container) or not manifest.spec.applications:
            continue
        base = by_ref.get(ResourceRef("Template", manifest.spec.template))
        apps = [by_ref.get(ResourceRef("Template", a)) for a in manifest.spec.applications]
        if base is None or any(a is None for a in apps):
            continue  # validation names what is missing
        try:
            out.append(
                builder.appcache_recipe(manifest.name, base, [a for a in apps if a is not None])
            )
        except builder.BuildError as exc:
            errors[str(resource.ref)] = str(exc)
    return out


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
