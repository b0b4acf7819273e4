"""JSON Schema per kind, generated from the models (pure: no file I/O here)."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from reconciler.model.kinds import KINDS

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


class _Generator(GenerateJsonSchema):
    def field_title_should_be_set(self, schema: Any) -> bool:
        # Auto titles ("Ipaddresses") help nobody in an editor; descriptions do.
        return False


def _fix_defaults(node: Any) -> None:
    """Quantity/percent fields are strings in YAML; show their defaults the same way."""
    if isinstance(node, dict):
        pattern = node.get("pattern", "")
        if node.get("type") == "string" and isinstance(node.get("default"), int):
            node["default"] = str(node["default"]) + ("%" if pattern.endswith("%$") else "")
        for value in node.values():
            _fix_defaults(value)
    elif isinstance(node, list):
        for value in node:
            _fix_defaults(value)


def schema_filename(kind: str) -> str:
    return f"{kind.lower()}.json"


def kind_schema(kind: str) -> dict[str, Any]:
    model = KINDS[kind]
    body = model.model_json_schema(by_alias=True, schema_generator=_Generator)
    _fix_defaults(body)
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": f"https://recon.dev/schemas/reconciler/v1/{schema_filename(kind)}",
        **body,
    }


def all_schemas() -> dict[str, dict[str, Any]]:
    return {kind: kind_schema(kind) for kind in KINDS}
