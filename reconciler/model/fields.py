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


def _split_key(key: str) -> list[tuple[str, str | None]]:
    """`disks[root].size` -> [("disks", "root"), ("size", None)]. Names and spec keys hold no
    dots or brackets (names are DNS labels or user names), so the split is unambiguous."""
    parts: list[tuple[str, str | None]] = []
    for segment in key.split("."):
        head, bracket, rest = segment.partition("[")
        parts.append((head, rest[:-1] if bracket else None))
    return parts


def unflatten(fields: Fields) -> dict[str, Any]:
    """The inverse of flatten: a spec from its flat view. Items keyed by name get their
    `name` back; positional items come back in their order (a key holds its index)."""
    root: dict[str, Any] = {}
    # Lists are built as {selector: item} first, then turned into lists below.
    lists: list[tuple[dict[str, Any], str]] = []
    for key, value in fields.items():
        node = root
        parts = _split_key(key)
        for index, (name, selector) in enumerate(parts):
            last = index == len(parts) - 1
            if selector is None:
                if last:
                    node[name] = value
                else:
                    node = node.setdefault(name, {})
                continue
            if name not in node:
                node[name] = {}
                lists.append((node, name))
            item = node[name].setdefault(selector, {})
            if last and isinstance(value, dict):
                item.update(value)
            node = item
    for parent, name in lists:
        items: dict[str, Any] = parent[name]
        if all(selector.isdigit() for selector in items):
            parent[name] = [items[s] for s in sorted(items, key=int)]
        else:
            parent[name] = [{"name": s, **item} for s, item in items.items()]
    return root
