"""The checked-in JSON Schemas are generated from the models, and both judge alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from reconciler.load.validate import _Context, _pydantic_diagnostics, _schema_diagnostics
from reconciler.load.yamlsafe import parse_yaml
from reconciler.model.host_state import SCHEMA_FILE as HOST_STATE_SCHEMA
from reconciler.model.kinds import KINDS
from reconciler.model.schema import all_schemas, schema_filename

ROOT = Path(__file__).resolve().parents[2]


def test_checked_in_schemas_match_the_models() -> None:
    for kind, schema in all_schemas().items():
        path = ROOT / "schemas" / schema_filename(kind)
        assert path.exists(), f"missing {path}; run `recon schema --write schemas`"
        on_disk = json.loads(path.read_text())
        assert on_disk == schema, f"{path} is stale; run `recon schema --write schemas`"


def test_schema_directory_has_no_strays() -> None:
    names = {p.name for p in (ROOT / "schemas").glob("*.json")}
    # Beside the kinds: the exported host state's format (tests/cli/test_host_state_cli.py).
    assert names == {schema_filename(k) for k in KINDS} | {HOST_STATE_SCHEMA}


@pytest.mark.parametrize("path", sorted((ROOT / "manifests").rglob("*.yaml")), ids=str)
def test_examples_carry_the_schema_modeline_and_pass_it(path: Path) -> None:
    text = path.read_text()
    first = text.splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=")
    schema_path = (path.parent / first.split("=", 1)[1]).resolve()
    schema = json.loads(schema_path.read_text())
    for doc in yaml.safe_load_all(text):
        assert schema["$id"].endswith(schema_filename(doc["kind"]))
        jsonschema.validate(doc, schema)


BAD = {
    "wrong type": "cpus: true\nmemory: 1Gi",
    "unknown field": "cpus: 1\nmemory: 1Gi\nspeed: 3",
    "missing field": "memory: 1Gi",
    "bad pattern": "cpus: 1\nmemory: 1 GB",
    "bad enum": "cpus: 1\nmemory: 1Gi\nfirmware: uefi",
    "nested": "cpus: 1\nmemory: 1Gi\ndisks:\n  - {name: r, pool: p, size: 1Gi, bus: usb}",
    "optional nested": "cpus: 1\nmemory: 1Gi\nguest: {users: [{name: a, password: {valueFrom: "
    "{env: 'bad name'}}}]}",
    "below minimum": "cpus: 0\nmemory: 1Gi",
}


@pytest.mark.parametrize("spec", BAD.values(), ids=list(BAD))
def test_schema_and_model_report_the_same_fields(spec: str) -> None:
    text = "apiVersion: reconciler/v1\nkind: VirtualMachine\nmetadata: {name: a}\nspec:\n"
    text += "\n".join("  " + line for line in spec.splitlines()) + "\n"
    docs, diags = parse_yaml(text.encode(), "t.yaml")
    assert diags == []
    ctx = _Context(docs[0], "VirtualMachine", "a")
    with pytest.raises(ValidationError) as exc:
        KINDS["VirtualMachine"].model_validate(docs[0].data)
    model_fields = {d.field for d in _pydantic_diagnostics(ctx, exc.value)}
    schema_fields = {d.field for d in _schema_diagnostics(ctx)}
    assert model_fields == schema_fields
    assert model_fields


def _all_valid(kind: str) -> dict[str, Any]:
    return all_schemas()[kind]


def test_every_kind_schema_forbids_unknown_top_level_fields() -> None:
    for kind in KINDS:
        assert _all_valid(kind)["additionalProperties"] is False
