"""The compiled schema check (reconciler/load/schema_check.py) gives jsonschema's verdict.

`recon validate` sends a document to jsonschema only when the compiled check rejects it, so
the check must never accept what jsonschema rejects. Held here on the example manifests broken
at every node in every way, and on documents generated from each kind's schema, most of them
wrong somewhere; both verdicts must agree on every one.
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from reconciler.load.document_checks import _fast_check
from reconciler.load.schema_check import MODULE, compile_schema, module_source
from reconciler.load.schema_code import CHECKS
from reconciler.model.kinds import KINDS
from reconciler.model.schema import all_schemas, kind_schema

ROOT = Path(__file__).resolve().parents[2]

# Values that break (or happen to fit) any node: each type, edges of lengths and numbers.
WRONG: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2.0,
    2.5,
    10**12,
    "",
    "x",
    "X" * 300,
    "512Mi",
    "50%",
    "Running",
    [],
    [1],
    ["x"],
    {},
    {"zz": 1},
]
# Strings that fit the patterns of the schemas (quantities, names, paths, addresses).
STRINGS = [
    "web-1",
    "a",
    "512Mi",
    "1Gi",
    "10Gi",
    "50%",
    "0",
    "2",
    "/srv/pool",
    "images/x.tar",
    "52:54:00:00:00:01",
    "10.0.0.1",
    "10.0.0.1/24",
    "fd00::1/64",
    "0" * 64,
    "app.kubernetes.io/name",
    "Web_1",
    "-bad",
    "bad-",
    "UPPER",
    "x" * 70,
    "ssh-ed25519 AAAA key",
    "6f1c2b1e-8d1a-4c3e-9a51-0d6a4f0e2b7c",
    "root",
]


def examples() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((ROOT / "manifests").rglob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    return docs


def broken(doc: Any) -> Iterator[Any]:
    """doc with one node replaced, removed, or given an extra key: at every node."""
    yield doc
    if isinstance(doc, dict):
        for key in list(doc):
            for value in [*WRONG, *broken(doc[key])]:
                yield {**doc, key: value}
            yield {k: v for k, v in doc.items() if k != key}
        yield {**doc, "unknownField": "x"}
    elif isinstance(doc, list):
        for i, item in enumerate(doc):
            for value in [*WRONG, *broken(item)]:
                yield [*doc[:i], value, *doc[i + 1 :]]
        yield []
        if doc:
            yield [*doc, copy.deepcopy(doc[0])]


def fits(node: dict[str, Any], value: Any) -> bool:
    """Whether a string or a number meets the node's own bounds and pattern."""
    if isinstance(value, str):
        return (
            node.get("minLength", 0) <= len(value) <= node.get("maxLength", len(value))
            and re.search(node.get("pattern", ""), value) is not None
        )
    return node.get("minimum", value) <= value <= node.get("maximum", value)


class Generator:
    """Documents from a schema: mostly plausible, and wrong somewhere with some chance."""

    def __init__(self, schema: dict[str, Any], rng: random.Random) -> None:
        self.defs = schema.get("$defs", {})
        self.rng = rng

    def __call__(self, node: Any, depth: int = 0) -> Any:
        rng = self.rng
        if rng.random() < 0.01 or depth > 12:
            return rng.choice(WRONG)
        if "$ref" in node:
            node = self.defs[node["$ref"].rsplit("/", 1)[-1]]
        if "anyOf" in node:
            return self(rng.choice(node["anyOf"]), depth + 1)
        if "const" in node:
            return node["const"] if rng.random() < 0.98 else rng.choice(STRINGS)
        if "enum" in node:
            return rng.choice(node["enum"]) if rng.random() < 0.98 else rng.choice(STRINGS)
        kind = node.get("type")
        if kind == "object":
            out: dict[str, Any] = {}
            required = set(node.get("required", []))
            for key, sub in node.get("properties", {}).items():
                wanted = key in required and rng.random() > 0.01
                if wanted or rng.random() < 0.5:
                    out[key] = self(sub, depth + 1)
            if "patternProperties" in node or "additionalProperties" not in node:
                for _ in range(rng.randrange(3)):
                    out[rng.choice(STRINGS)] = rng.choice(STRINGS)
            if rng.random() < 0.01:
                out["unknownField"] = 1
            return out
        if kind == "array":
            return [self(node.get("items", {}), depth + 1) for _ in range(rng.randrange(4))]
        if kind == "string":
            fitting = [s for s in STRINGS if fits(node, s)]
            if fitting and rng.random() < 0.98:
                return rng.choice(fitting)
            return rng.choice(STRINGS)
        if kind in ("integer", "number"):
            numbers = [0, 1, 2, 4, 64, 1024, -1, 2.0, 10**9, 0.5, -1.5]
            if kind == "integer":
                numbers = [n for n in numbers if float(n).is_integer()]
            fitting = [n for n in numbers if fits(node, n)]
            if fitting and rng.random() < 0.98:
                return rng.choice(fitting)
            return rng.choice(numbers)
        if kind == "boolean":
            return rng.choice([True, False])
        if kind == "null":
            return None
        return rng.choice(WRONG)


def verdicts(kind: str, docs: list[Any]) -> tuple[int, int]:
    """Both the check compiled now and the checked-in one validate uses give jsonschema's
    verdict on every document."""
    schema = kind_schema(kind)
    check = compile_schema(schema)
    assert check is not None, f"{kind}: its schema does not compile"
    used = _fast_check(kind)
    assert used is CHECKS[kind] and used is not None
    validator = jsonschema.Draft202012Validator(schema)
    valid = invalid = 0
    for doc in docs:
        expected = validator.is_valid(doc)
        assert check(doc) == expected, (kind, doc)
        assert used(doc) == expected, (kind, doc)
        valid += expected
        invalid += not expected
    return valid, invalid


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_examples_broken_at_every_node_get_jsonschemas_verdict(kind: str) -> None:
    docs = [d for e in examples() if e.get("kind") == kind for d in broken(e)]
    valid, invalid = verdicts(kind, docs)
    assert valid >= 1 and invalid > 50


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_generated_documents_get_jsonschemas_verdict(kind: str) -> None:
    schema = kind_schema(kind)
    generate = Generator(schema, random.Random(f"recon-{kind}"))
    docs = [generate(schema) for _ in range(400)]
    valid, invalid = verdicts(kind, docs)
    # Both verdicts are exercised, each on many documents.
    assert valid >= 20 and invalid >= 20, (valid, invalid)


def test_a_schema_with_an_unknown_keyword_or_a_non_string_const_is_not_compiled() -> None:
    assert compile_schema({"type": "string", "format": "email"}) is None
    assert compile_schema({"const": 1}) is None
    assert compile_schema({"$ref": "#/$defs/Missing"}) is None
    assert compile_schema({"type": "object", "properties": {"a": {"minimum": 1}}}) is not None


def test_recursive_definitions_and_refs_beside_other_keywords() -> None:
    schema = {
        "$defs": {
            "Tree": {
                "type": "object",
                "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/Tree"}}},
                "additionalProperties": False,
            }
        },
        "$ref": "#/$defs/Tree",
        "required": ["kids"],
    }
    check = compile_schema(schema)
    assert check is not None
    assert check({"kids": [{"kids": []}, {}]})
    assert not check({"kids": [{"kids": [{"x": 1}]}]})
    assert not check({})  # the sibling `required` applies beside the $ref
    assert check({"kids": [{"kids": [{}]}]})
    assert not check({"kids": [{"kids": [[]]}]})


def test_pattern_properties_exempt_their_keys_from_additional_properties() -> None:
    schema = {"patternProperties": {"^a": {"type": "integer"}}, "additionalProperties": False}
    check = compile_schema(schema)
    assert check is not None
    validator = jsonschema.Draft202012Validator(schema)
    for doc in ({"ab": 1}, {"b": 1}, {"ab": "x"}, {}, {"a": 1, "c": None}):
        assert check(doc) == validator.is_valid(doc), doc
    assert check({"ab": 1}) and not check({"b": 1})


def test_property_names_and_length_bounds() -> None:
    schema = {
        "type": "object",
        "propertyNames": {"pattern": "^[a-z]+$", "maxLength": 3},
        "additionalProperties": {"type": "string", "minLength": 1},
    }
    check = compile_schema(schema)
    assert check is not None
    validator = jsonschema.Draft202012Validator(schema)
    docs = [{"ab": "x"}, {"Ab": "x"}, {"abcd": "x"}, {"ab": ""}, {"ab": 1}, {}, []]
    for doc in docs:
        assert check(doc) == validator.is_valid(doc), doc
    assert check({"ab": "x"}) and not check({"Ab": "x"}) and not check({"abcd": "x"})


def test_the_checked_in_checks_are_what_the_models_give_now() -> None:
    assert MODULE.read_text(encoding="utf-8") == module_source(all_schemas()), (
        f"{MODULE} is stale: run `python -m reconciler.load.schema_check`"
    )
    assert set(CHECKS) == set(KINDS)
