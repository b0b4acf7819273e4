"""Find a provider by name through the `reconciler.providers` entry-point group."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from reconciler.model.errors import ReconError
from reconciler.providers.base import Provider

GROUP = "reconciler.providers"


def available() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=GROUP))


def open_provider(
    name: str, uri: str | None, home: Path, *, reuse: bool = False, read_only: bool = False
) -> Provider:
    """`reuse`: the provider will serve many passes of a control loop (see Provider.current).
    `read_only`: it is opened to observe, and keeps nothing for a later write."""
    matches = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not matches:
        raise ReconError(
            f"no provider named '{name}'",
            f"installed providers: {', '.join(available()) or 'none'}",
        )
    factory: Any = matches[0].load()
    provider: Provider = factory(uri=uri, home=home, reuse=reuse, read_only=read_only)
    return provider
