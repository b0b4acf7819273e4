"""The flat field view and back: `get -o yaml` rebuilds a spec from the stamp's applied fields,
so unflatten(flatten(spec)) must give the spec again for every example manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.load.manifests import load_manifests
from reconciler.model.fields import flatten, set_fields, unflatten

ROOT = Path(__file__).resolve().parents[2]


def test_every_example_spec_comes_back_from_its_flat_view() -> None:
    result = load_manifests([str(ROOT / "manifests")])
    assert result.ok and len(result.resources) == 8
    for res in result.resources:
        spec = res.manifest.model_dump(mode="json", by_alias=True, exclude_unset=True)["spec"]
        rebuilt = unflatten(set_fields(res.manifest))
        assert flatten(rebuilt) == set_fields(res.manifest), res.ref
        # Named items come back with their name; the order of keys may differ.
        assert _sorted(rebuilt) == _sorted(spec), res.ref


def _sorted(value: object) -> object:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # Positional items keep their order, though the stamp sorts "[10]" before "[2]".
        (
            {"interfaces": [{"network": f"n{i}"} for i in range(12)]},
            {"interfaces": [{"network": f"n{i}"} for i in range(12)]},
        ),
        # An item that is only its name.
        ({"guest": {"users": [{"name": "admin"}]}}, {"guest": {"users": [{"name": "admin"}]}}),
        (
            {"bootOrder": ["disk", "network"], "ksm": {"enabled": True}},
            {"bootOrder": ["disk", "network"], "ksm": {"enabled": True}},
        ),
        # Items keyed by name come back in the stamp's (sorted) order: their order is not a
        # field (reordering disks is no change).
        (
            {"disks": [{"name": "b", "size": "1Gi"}, {"name": "a", "size": "2Gi"}]},
            {"disks": [{"name": "a", "size": "2Gi"}, {"name": "b", "size": "1Gi"}]},
        ),
    ],
)
def test_unflatten_inverts_flatten_as_the_stamp_keeps_it(
    spec: dict[str, object], expected: dict[str, object]
) -> None:
    stamped = dict(sorted(flatten(spec).items()))  # the stamp's JSON sorts its keys
    assert unflatten(stamped) == expected
    assert flatten(unflatten(stamped)) == stamped
