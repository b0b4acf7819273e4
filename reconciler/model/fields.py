"""Flat field views of a manifest's spec: what diff compares, key by key.

A key is a path such as `memory`, `disks[root].size` or `interfaces[0].network`: list items
that have a `name` are keyed by it (so reordering disks is not a change), others by position.
Values are JSON-shaped: quantities as canonical strings ('1Gi'), percentages as '50%', lists of
scalars as lists. Providers parse what they observe into the same keys.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from reconciler.model.kinds import Manifest

Fields = dict[str, Any]


def _flatten(value: Any, prefix: str, out: Fields) -> None:
    if isinstance(value, dict):
        if not value and prefix:
            out[prefix] = {}
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else key, out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for index, item in enumerate(value):
            name = item.get("name")
            if isinstance(name, str):
                # Keyed by name; the name itself is the key, not a field to compare.
                rest = {k: v for k, v in item.items() if k != "name"}
                _flatten(rest, f"{prefix}[{name}]", out)
            else:
                _flatten(item, f"{prefix}[{index}]", out)
    else:
        out[prefix] = value


def flatten(spec: dict[str, Any]) -> Fields:
    out: Fields = {}
    _flatten(spec, "", out)
    return out


def set_fields(manifest: Manifest) -> Fields:
    """Only the fields the manifest sets: hypervisor defaults are not drift."""
    spec = manifest.model_dump(mode="json", by_alias=True, exclude_unset=True)["spec"]
    return flatten(spec)


def all_fields(manifest: Manifest) -> Fields:
    """Every field with defaults filled in: what a create builds from."""
    spec = manifest.model_dump(mode="json", by_alias=True)["spec"]
    return {k: v for k, v in flatten(spec).items() if v is not None}


def spec_hash(fields: Fields) -> str:
    """Fingerprint of what was applied; stored in the stamp."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
