"""`-l/--selector`, shared by get, diff, apply and delete: the option, and what it selects.

Manifests are selected by their own labels; objects on the host by the labels recorded in
recon's stamp (an object recon does not own has none). No command lives here.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from reconciler.model.resource import Resource
from reconciler.model.selectors import Selector, SelectorError, parse_selector
from reconciler.providers.base import Observed

SELECTOR_HELP = (
    "Only objects whose labels match, kubectl-style: key=value, key!=value, "
    "'key in (a,b)', 'key notin (a,b)', key, !key; comma-separated, all must hold."
)


def _parse(ctx: click.Context, param: click.Parameter, value: str | None) -> Selector | None:
    if value is None:
        return None
    try:
        return parse_selector(value)
    except SelectorError as exc:
        raise click.BadParameter(f"{exc}\n  hint: {exc.hint}", ctx, param) from None


selector_option = click.option(
    "-l", "--selector", "selector", callback=_parse, metavar="SELECTOR", help=SELECTOR_HELP
)


def host_labels(obs: Observed) -> dict[str, str]:
    return dict(obs.stamp.labels) if obs.owned and obs.stamp is not None else {}


def select_resources(resources: Sequence[Resource], selector: Selector | None) -> list[Resource]:
    if selector is None:
        return list(resources)
    return [r for r in resources if selector.matches(r.manifest.metadata.labels)]


def select_observed(objects: Sequence[Observed], selector: Selector | None) -> list[Observed]:
    if selector is None:
        return list(objects)
    return [o for o in objects if selector.matches(host_labels(o))]
