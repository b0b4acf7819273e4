"""A kind's JSON Schema compiled once into plain Python checks: is a document valid, yes or no.

`recon validate` runs every document through its kind's JSON Schema as well as its model. A
document the model accepted is almost always valid by the schema too (both come from the same
types), and jsonschema's general walk (a validator evolved per node, references looked up
per use) costs about a millisecond per document. So a document is first checked here, by
closures built once per kind for exactly the keywords recon's generated schemas use; only a
document that fails this check goes to jsonschema, which then says what is wrong, at which
path, as before.

The compiled check never calls a document valid that jsonschema would not: it applies each
keyword with jsonschema's own meaning (draft 2020-12: `integer` takes 2.0, `pattern` is
`re.search`, a `$ref` is applied with the keywords beside it, ...), and a schema with any
keyword it does not know, or a `const`/`enum` that is not a string, is not compiled at all
(`compile_schema` returns None: every document of that kind goes to jsonschema).
tests/validation/test_schema_check.py holds the two to the same verdict on documents broken
in every way the schemas describe.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], bool]

# Keywords that only annotate: they never make a document invalid.
_ANNOTATIONS = frozenset({"title", "description", "default", "$schema", "$id", "$defs"})
_KNOWN = _ANNOTATIONS | {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "patternProperties",
    "propertyNames",
    "items",
    "anyOf",
    "$ref",
    "const",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
}


class _Unsupported(Exception):
    """The schema uses something this compiler does not implement."""


def _is_integer(value: Any) -> bool:
    # jsonschema's "integer" (draft 6 on): an int that is not a bool, or a float with no
    # fraction (2.0).
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


_TYPES: dict[str, Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": _is_integer,
    "number": _is_number,
}


class _Compiler:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self.defs: Mapping[str, Any] = root.get("$defs", {})
        self.compiled: dict[str, Check] = {}

    def ref(self, target: str) -> Check:
        prefix = "#/$defs/"
        if not target.startswith(prefix) or target[len(prefix) :] not in self.defs:
            raise _Unsupported(f"$ref {target}")
        name = target[len(prefix) :]
        if name not in self.compiled:
            # Recursive definitions reach the cell before it is filled.
            cell: list[Check] = []
            self.compiled[name] = lambda v: cell[0](v)
            cell.append(self.node(self.defs[name]))
            self.compiled[name] = cell[0]
        return self.compiled[name]

    def node(self, schema: Any) -> Check:
        if schema is True:
            return lambda v: True
        if schema is False:
            return lambda v: False
        if not isinstance(schema, dict):
            raise _Unsupported(f"schema {type(schema).__name__}")
        unknown = set(schema) - _KNOWN
        if unknown:
            raise _Unsupported(", ".join(sorted(unknown)))
        checks: list[Check] = []
        if "type" in schema:
            checks.append(self.type_check(schema["type"]))
        if "$ref" in schema:
            checks.append(self.ref(schema["$ref"]))
        if "anyOf" in schema:
            branches = [self.node(b) for b in schema["anyOf"]]
            checks.append(lambda v: any(b(v) for b in branches))
        if "const" in schema or "enum" in schema:
            checks.append(self.choices(schema))
        checks += self.string_checks(schema)
        checks += self.number_checks(schema)
        checks += self.array_checks(schema)
        object_check = self.object_check(schema)
        if object_check is not None:
            checks.append(object_check)
        if not checks:
            return lambda v: True
        if len(checks) == 1:
            return checks[0]
        return lambda v: all(c(v) for c in checks)

    def type_check(self, types: Any) -> Check:
        names = [types] if isinstance(types, str) else types
        if not isinstance(names, list) or any(n not in _TYPES for n in names):
            raise _Unsupported(f"type {types!r}")
        tests = [_TYPES[n] for n in names]
        if len(tests) == 1:
            return tests[0]
        return lambda v: any(t(v) for t in tests)

    def choices(self, schema: dict[str, Any]) -> Check:
        allowed: list[Any] = []
        if "const" in schema:
            allowed.append(schema["const"])
        if "enum" in schema:
            if not isinstance(schema["enum"], list):
                raise _Unsupported("enum")
            allowed += schema["enum"]
        # Strings only: jsonschema's equality of numbers, booleans and containers has rules
        # of its own (1 is not true, 1.0 is 1), which nothing here needs to reproduce.
        if not all(isinstance(a, str) for a in allowed):
            raise _Unsupported("const/enum of a non-string")
        if "const" in schema and "enum" in schema:
            const, enum = schema["const"], set(schema["enum"])
            return lambda v: isinstance(v, str) and v == const and v in enum
        values = frozenset(allowed)
        return lambda v: isinstance(v, str) and v in values

    def string_checks(self, schema: dict[str, Any]) -> list[Check]:
        checks: list[Check] = []
        if "pattern" in schema:
            search = re.compile(schema["pattern"]).search
            checks.append(lambda v: not isinstance(v, str) or search(v) is not None)
        low, high = schema.get("minLength"), schema.get("maxLength")
        if low is not None or high is not None:
            lo = _bound(low, 0)
            hi = _bound(high, None)
            checks.append(
                lambda v: not isinstance(v, str) or (lo <= len(v) and (hi is None or len(v) <= hi))
            )
        return checks

    def number_checks(self, schema: dict[str, Any]) -> list[Check]:
        checks: list[Check] = []
        if "minimum" in schema:
            low = schema["minimum"]
            if not _is_number(low):
                raise _Unsupported("minimum")
            checks.append(lambda v: not _is_number(v) or v >= low)
        if "maximum" in schema:
            high = schema["maximum"]
            if not _is_number(high):
                raise _Unsupported("maximum")
            checks.append(lambda v: not _is_number(v) or v <= high)
        return checks

    def array_checks(self, schema: dict[str, Any]) -> list[Check]:
        checks: list[Check] = []
        if "items" in schema:
            item = self.node(schema["items"])
            checks.append(lambda v: not isinstance(v, list) or all(item(i) for i in v))
        low, high = schema.get("minItems"), schema.get("maxItems")
        if low is not None or high is not None:
            lo = _bound(low, 0)
            hi = _bound(high, None)
            checks.append(
                lambda v: not isinstance(v, list) or (lo <= len(v) and (hi is None or len(v) <= hi))
            )
        return checks

    def object_check(self, schema: dict[str, Any]) -> Check | None:
        keys = ("properties", "required", "additionalProperties", "patternProperties")
        if not any(k in schema for k in keys) and "propertyNames" not in schema:
            return None
        props = {k: self.node(s) for k, s in schema.get("properties", {}).items()}
        required = list(schema.get("required", []))
        if not all(isinstance(r, str) for r in required):
            raise _Unsupported("required")
        patterns = [
            (re.compile(p).search, self.node(s))
            for p, s in schema.get("patternProperties", {}).items()
        ]
        extra = (
            self.node(schema["additionalProperties"]) if "additionalProperties" in schema else None
        )
        names = self.node(schema["propertyNames"]) if "propertyNames" in schema else None

        def check(value: Any) -> bool:
            if not isinstance(value, dict):
                return True
            for key in required:
                if key not in value:
                    return False
            for key, item in value.items():
                if names is not None and not names(key):
                    return False
                prop = props.get(key)
                if prop is not None and not prop(item):
                    return False
                matched = False
                for search, pattern_check in patterns:
                    # patternProperties apply to any key they match, named or not.
                    if isinstance(key, str) and search(key) is not None:
                        matched = True
                        if not pattern_check(item):
                            return False
                if extra is not None and prop is None and not matched and not extra(item):
                    return False
            return True

        return check


def _bound(value: Any, default: int | None) -> Any:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Unsupported("length bound")
    return value


def compile_schema(schema: Mapping[str, Any]) -> Check | None:
    """The yes/no check of a whole schema, or None when it uses what is not implemented."""
    try:
        return _Compiler(schema).node(dict(schema))
    except _Unsupported:
        return None
