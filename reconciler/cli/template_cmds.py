"""`recon template list | build`: what vzpkg shows and does for EZ template caches.

- `list`: every template on the host (its image, revision, digest, build time, age, size and
  how many disks back onto it) and every build in recon's artifact cache not (yet) on it;
- `build NAME -f DIR`: build a template's revision into the cache now (what `apply` would do
  first), `--refresh` also when the cache has it but the repository moved since.

main.py adds this group to `recon`; this module imports no other command module.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import click

from reconciler.build import builder
from reconciler.cli.builds import recipes
from reconciler.cli.host import open_host
from reconciler.cli.manifests import FILES_HELP, load_resources
from reconciler.cli.output import fail, print_json
from reconciler.cli.render import echo_err, table
from reconciler.model.errors import ReconError
from reconciler.providers.artifacts import entries


@click.group()
def template() -> None:
    """Built templates (EZ template caches): list them, build one."""


@template.command("list")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def list_templates(ctx: click.Context, output: str) -> None:
    """Templates on the host and builds in recon's artifact cache."""
    home = ctx.obj["home"]
    try:
        with open_host(ctx, lock=False) as provider:
            observation = provider.observe()
    except ReconError as exc:
        fail(str(exc), exc.hint, code=2)
    rows: list[dict[str, Any]] = []
    on_host: set[str] = set()
    for ref, obs in sorted(observation.objects.items(), key=lambda item: str(item[0])):
        if ref.kind != "Template" or obs.stamp is None:
            continue
        record = obs.stamp.record
        applied = obs.stamp.applied
        on_host.add(str(record.get("artifact", ""))[:12])
        # Older images kept for the disks made from them: their builds are on the host too.
        on_host.update(
            str(image).removeprefix(f"template-{ref.name}-")[:12]
            for image in record.get("images", ())
        )
        rows.append(
            {
                "name": ref.name,
                "os": f"{applied.get('osName', '-')} {applied.get('version', '')}".strip(),
                "format": obs.fields.get("format"),
                "where": f"host ({obs.fields.get('pool')})",
                "revision": str(record.get("revision", ""))[:12] or None,
                "image": record.get("image"),
                "digest": record.get("digest"),
                "builtAt": record.get("builtAt"),
                "size": record.get("size"),
                "disks": len(obs.in_use_by),
                # The guests whose disks back onto it (a kept disk has none).
                "usedBy": sorted(
                    {str(u) for path in obs.in_use_by for u in observation.users_of(path)}
                ),
                "images": len(record.get("images", [])) or 1,
            }
        )
    for artifact in entries(home):
        if artifact.id[:12] in on_host:
            continue
        rows.append(
            {
                "name": artifact.template,
                "os": "-",
                "format": artifact.format,
                "where": "cache only",
                "revision": artifact.revision[:12],
                "image": f"revision {artifact.revision[:12]}",
                "digest": f"sha256:{artifact.digest}",
                "builtAt": artifact.built_at,
                "size": artifact.size,
                "disks": 0,
                "usedBy": [],
                "images": 0,
            }
        )
    if output == "json":
        print_json({"templates": rows})
        return
    if not rows:
        echo_err("no templates on the host or in the cache")
        return
    header = ["NAME", "OS", "FORMAT", "WHERE", "REVISION", "DIGEST", "BUILT", "AGE", "SIZE"]
    lines = [[*header, "USED BY"]]
    for row in rows:
        digest = str(row["digest"] or "-")
        lines.append(
            [
                row["name"],
                row["os"],
                str(row["format"]),
                row["where"],
                row["revision"] or "-",
                digest[:19],
                str(row["builtAt"] or "-"),
                _age(row["builtAt"]),
                _size(row["size"]),
                _used_by(row["disks"], row["usedBy"]),
            ]
        )
    click.echo(table(lines))


@template.command("build")
@click.argument("names", nargs=-1)
@click.option("-f", "--filename", "paths", multiple=True, required=True, help=FILES_HELP)
@click.option(
    "--refresh", is_flag=True, help="Build again when the repository moved since the last build."
)
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
@click.pass_context
def build(
    ctx: click.Context, names: tuple[str, ...], paths: tuple[str, ...], refresh: bool, output: str
) -> None:
    """Build templates into the artifact cache: every built OS template the manifests name
    and every container's application cache, or only the OS templates NAMES. Exits 0 when
    each is built (or already was), 1 when a build failed."""
    home = ctx.obj["home"]
    errors: dict[str, str] = {}
    every = recipes(load_resources(paths), errors)
    wanted = {f"Template/{name}" for name in names}
    unknown = wanted - {r.ref for r in every}
    if unknown:
        fail(
            "no built OS Template named "
            + ", ".join(sorted(u.removeprefix("Template/") for u in unknown))
            + " in the manifests",
            "a Template with source.build (application templates are built into the caches "
            "of the containers that list them)",
            code=2,
        )
    chosen = [r for r in every if not names or r.ref in wanted]
    say = echo_err if output == "text" else (lambda _m: None)
    results: list[dict[str, Any]] = [
        {"template": ref, "error": error} for ref, error in errors.items()
    ]
    failed = bool(errors)
    for recipe in chosen:
        try:
            artifact, built = builder.build_recipe(home, recipe, refresh=refresh, progress=say)
        except builder.BuildError as exc:
            failed = True
            results.append({"template": recipe.ref, "error": str(exc)})
            if output == "text":
                echo_err(f"error: {exc}" + (f"\n  hint: {exc.hint}" if exc.hint else ""))
            continue
        results.append({"template": recipe.ref, "built": built, **artifact.record(recipe.name)})
        if output == "text":
            verb = "built" if built else "up to date"
            click.echo(
                f"{recipe.ref}: {verb}: revision {artifact.revision[:12]}, "
                f"sha256:{artifact.digest[:12]}, {_size(artifact.size)}, "
                f"{len(artifact.packages)} packages"
            )
    if output == "json":
        print_json({"templates": results})
    sys.exit(1 if failed else 0)


def _age(built_at: Any) -> str:
    if not isinstance(built_at, str):
        return "-"
    try:
        built = dt.datetime.fromisoformat(built_at).timestamp()
    except ValueError:
        return "-"
    seconds = dt.datetime.now(dt.UTC).timestamp() - built
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(int(seconds), 0)}s"


def _size(size: Any) -> str:
    if not isinstance(size, int):
        return "-"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def _used_by(disks: int, guests: list[str]) -> str:
    """The guests on the image, or how many disks (kept ones, whose guests are gone)."""
    if guests:
        more = f" +{len(guests) - 3}" if len(guests) > 3 else ""
        return ", ".join(g.partition("/")[2] for g in guests[:3]) + more
    return f"{disks} disk(s)" if disks else "-"
