"""A manifest checked against a driver's row of the capability table (capabilities.FEATURES):
what the driver cannot do (an error) or may not (a warning), before any host call; and the
table as docs/real-hosts.md shows it."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model.capabilities import DRIVERS, FEATURES, Feature, Level, Support, family
from reconciler.model.diagnostics import FieldPath
from reconciler.model.kinds import Manifest


@dataclass(frozen=True, slots=True)
class Problem:
    """One use of a feature a driver cannot (error) or may not (warning) handle."""

    path: FieldPath
    feature: str
    message: str
    hint: str | None
    error: bool


# Per driver family, the features it does not simply support: the only ones worth looking for
# in a manifest (a plan checks every manifest on every pass).
_LIMITS: dict[str, list[Feature]] = {
    table: [f for f in FEATURES if f.drivers[table].level not in (Level.YES, Level.NA)]
    for table in DRIVERS
}


def check_manifest(
    manifest: Manifest, driver: str, host: dict[str, bool] | None = None
) -> list[Problem]:
    """What `driver` cannot do in this manifest. host: the capabilities of an observed host;
    None when checking offline, where host-dependent features are warnings only."""
    table = family(driver)
    if table not in DRIVERS:
        raise ValueError(f"unknown driver {driver!r}; one of {', '.join(DRIVERS)}")
    out: list[Problem] = []
    for feature in _LIMITS[table]:
        support = feature.drivers[table]
        paths = feature.where(manifest) if feature.where is not None else []
        for path in paths:
            out.append(_problem(feature, support, path, driver, host))
    return out


def _problem(
    feature: Feature, support: Support, path: FieldPath, driver: str, host: dict[str, bool] | None
) -> Problem:
    if support.level is Level.NO:
        return Problem(
            path,
            feature.name,
            f"{feature.name} is not supported by the {driver} driver: {support.how}",
            None,
            True,
        )
    if support.level is Level.HOST:
        assert support.needs is not None
        if host is not None and not host.get(support.needs, False):
            return Problem(
                path,
                feature.name,
                f"{feature.name} is not available on this host: {support.how}",
                f"install what it needs, or remove {feature.name} from the manifest",
                True,
            )
        return Problem(
            path,
            feature.name,
            f"{feature.name} on {driver}: {support.how}",
            "diff and apply check it against the host",
            False,
        )
    return Problem(path, feature.name, f"{feature.name} on {driver}: {support.how}", None, False)


def features_markdown() -> str:
    """FEATURES as the Markdown table in docs/real-hosts.md."""
    lines = ["| feature | " + " | ".join(DRIVERS) + " |", "|---" * (len(DRIVERS) + 1) + "|"]
    for feature in FEATURES:
        cells = []
        for driver in DRIVERS:
            support = feature.drivers[driver]
            cells.append(f"**{support.level.value}**: {support.how}")
        lines.append(f"| {feature.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
