"""A kind's JSON Schema compiled once into plain Python: is a document valid, yes or no.

`recon validate` runs every document through its kind's JSON Schema as well as its model. A
document the model accepted is almost always valid by the schema too (both come from the same
types), and jsonschema's general walk (a validator evolved per node, references looked up
per use) costs about a millisecond per document. So a document is first checked here, by a
function generated for each kind for exactly the keywords recon's generated schemas use (one
Python function per schema node); only a document that fails this check goes to jsonschema,
which then says what is wrong, at which path, as before. The functions of every kind are
generated ahead into schema_code.py (`python -m reconciler.load.schema_check` writes it; a
test fails when it is stale), so no command pays for the schemas' generation and compilation
(about 40 ms); `compile_schema` makes the same source at run time, for a kind not in it.

The compiled check never calls a document valid that jsonschema would not: it applies each
keyword with jsonschema's own meaning (draft 2020-12: `integer` takes 2.0, `pattern` is
`re.search`, a `$ref` is applied with the keywords beside it, ...), and a schema with any
keyword it does not know, or a `const`/`enum` that is not a string, is not compiled at all
(`compile_schema` returns None: every document of that kind goes to jsonschema). The source
is made only from the schema's own keywords and names (through repr); no document is ever
part of it. tests/validation/test_schema_check.py holds the two to the same verdict on
documents broken in every way the schemas describe.
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Callable, Mapping
from pathlib import Path
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


def is_integer(value: Any) -> bool:
    # jsonschema's "integer" (draft 6 on): an int that is not a bool, or a float with no
    # fraction (2.0).
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


# The test for each JSON type, as an expression of `v`.
_TYPE_TESTS = {
    "object": "isinstance(v, dict)",
    "array": "isinstance(v, list)",
    "string": "isinstance(v, str)",
    "boolean": "isinstance(v, bool)",
    "null": "v is None",
    "integer": "(v.__class__ is int or is_integer(v))",
    "number": "(v.__class__ is int or v.__class__ is float or is_number(v))",
}


def _bound(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Unsupported("length bound")
    return value


class _Generator:
    """Python source for a schema: one function per node, the shared values before them
    (each as the source of an expression: the same text is run here and written into
    schema_code.py), the tables that name functions after them."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.defs: Mapping[str, Any] = root.get("$defs", {})
        self.by_def: dict[str, str] = {}
        self.by_json: dict[str, str] = {}
        self.values: list[str] = []
        self.functions: list[str] = []
        self.tables: list[str] = []  # values that name functions (dicts)
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"_{prefix}{self.count}"

    def value(self, prefix: str, source: str) -> str:
        name = self.name(prefix)
        self.values.append(f"{name} = {source}\n")
        return name

    def search(self, pattern: Any) -> str:
        if not isinstance(pattern, str):
            raise _Unsupported("pattern")
        re.compile(pattern)  # a pattern Python cannot compile is jsonschema's to report
        return self.value("p", f"re.compile({pattern!r}).search")

    def ref(self, target: str) -> str:
        prefix = "#/$defs/"
        key = target[len(prefix) :]
        if not target.startswith(prefix) or key not in self.defs:
            raise _Unsupported(f"$ref {target}")
        if key not in self.by_def:
            # Named before it is generated, so that a recursive definition calls itself.
            self.by_def[key] = self.name("d")
            self.node(self.defs[key], self.by_def[key])
        return self.by_def[key]

    def node(self, schema: Any, name: str | None = None) -> str:
        """The name of a function that checks one value against schema (one function for
        equal schemas: many fields share a type)."""
        if name is None:
            try:
                key = json.dumps(schema, sort_keys=True)
            except (TypeError, ValueError):
                raise _Unsupported("a schema that is not JSON") from None
            if key in self.by_json:
                return self.by_json[key]
            name = self.by_json[key] = self.name("n")
        if schema is True or schema is False:
            self.functions.append(f"def {name}(v):\n    return {schema}\n")
            return name
        if not isinstance(schema, dict):
            raise _Unsupported(f"schema {type(schema).__name__}")
        unknown = set(schema) - _KNOWN
        if unknown:
            raise _Unsupported(", ".join(sorted(unknown)))
        body: list[str] = []
        known = self.type_check(schema.get("type"), body)
        if "$ref" in schema:
            body.append(f"if not {self.ref(schema['$ref'])}(v): return False")
        if "anyOf" in schema:
            branches = [
                "v is None" if b == {"type": "null"} else f"{self.node(b)}(v)"
                for b in schema["anyOf"]
            ]
            body.append(f"if not ({' or '.join(branches) or 'False'}): return False")
        self.choices(schema, body)
        self.strings(schema, known, body)
        self.numbers(schema, body)
        self.arrays(schema, known, body)
        self.objects(schema, known, body)
        lines = "".join(f"    {line}\n" for line in body)
        self.functions.append(f"def {name}(v):\n{lines}    return True\n")
        return name

    def type_check(self, types: Any, body: list[str]) -> str | None:
        """Adds the type test; the one type a value then has, if there is a single one."""
        if types is None:
            return None
        names = [types] if isinstance(types, str) else types
        if not isinstance(names, list) or not names or any(n not in _TYPE_TESTS for n in names):
            raise _Unsupported(f"type {types!r}")
        body.append(f"if not ({' or '.join(_TYPE_TESTS[n] for n in names)}): return False")
        return names[0] if len(names) == 1 else None

    def choices(self, schema: dict[str, Any], body: list[str]) -> None:
        for keyword in ("const", "enum"):
            if keyword not in schema:
                continue
            allowed = [schema[keyword]] if keyword == "const" else schema[keyword]
            # Strings only: jsonschema's equality of numbers, booleans and containers has
            # rules of its own (1 is not true, 1.0 is 1), which nothing here reproduces.
            if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
                raise _Unsupported(f"{keyword} of a non-string")
            values = self.value("s", f"frozenset({tuple(allowed)!r})")
            body.append(f"if not (isinstance(v, str) and v in {values}): return False")

    @staticmethod
    def _guard(known: str | None, kind: str, test: str) -> str:
        """`if <the value is of kind> and <test>`: the kind test left out when known."""
        if known == kind:
            return f"if {test}: return False"
        return f"if {_TYPE_TESTS[kind]} and {test}: return False"

    def strings(self, schema: dict[str, Any], known: str | None, body: list[str]) -> None:
        if "pattern" in schema:
            search = self.search(schema["pattern"])
            body.append(self._guard(known, "string", f"{search}(v) is None"))
        low, high = _bound(schema.get("minLength")), _bound(schema.get("maxLength"))
        if low is not None:
            body.append(self._guard(known, "string", f"len(v) < {low}"))
        if high is not None:
            body.append(self._guard(known, "string", f"len(v) > {high}"))

    def numbers(self, schema: dict[str, Any], body: list[str]) -> None:
        for keyword, op in (("minimum", "<"), ("maximum", ">")):
            if keyword in schema:
                bound = schema[keyword]
                if not is_number(bound) or not isinstance(bound, int | float):
                    raise _Unsupported(keyword)
                body.append(f"if is_number(v) and v {op} {bound!r}: return False")

    def arrays(self, schema: dict[str, Any], known: str | None, body: list[str]) -> None:
        low, high = _bound(schema.get("minItems")), _bound(schema.get("maxItems"))
        if low is not None:
            body.append(self._guard(known, "array", f"len(v) < {low}"))
        if high is not None:
            body.append(self._guard(known, "array", f"len(v) > {high}"))
        if "items" in schema:
            item = self.node(schema["items"])
            loop = f"for x in v:\n        if not {item}(x): return False"
            if known == "array":
                body.append(loop)
            else:
                body.append(
                    f"if isinstance(v, list):\n        {loop.replace(chr(10), chr(10) + '    ')}"
                )

    def objects(self, schema: dict[str, Any], known: str | None, body: list[str]) -> None:
        keys = ("properties", "required", "additionalProperties", "patternProperties")
        if not any(k in schema for k in keys) and "propertyNames" not in schema:
            return
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise _Unsupported("required")
        props = {k: self.node(s) for k, s in schema.get("properties", {}).items()}
        patterns = [
            (self.search(p), self.node(s)) for p, s in schema.get("patternProperties", {}).items()
        ]
        extra = schema.get("additionalProperties", True)
        extra_check = None if extra is True or extra is False else self.node(extra)
        names = self.node(schema["propertyNames"]) if "propertyNames" in schema else None

        inner: list[str] = []
        if required:
            inner.append(f"if not ({' and '.join(f'{k!r} in v' for k in required)}): return False")
        loop: list[str] = []
        if names is not None:
            loop.append(f"if not {names}(k): return False")
        if props:
            table = self.name("t")
            entries = ", ".join(f"{k!r}: {f}" for k, f in props.items())
            self.tables.append(f"{table} = {{{entries}}}\n")
            loop.append(f"f = {table}.get(k)")
            loop.append("if f is not None and not f(x): return False")
        else:
            loop.append("f = None")
        if patterns:
            loop.append("m = False")
            for search, check in patterns:
                # patternProperties apply to every key they match, named or not.
                loop.append(f"if isinstance(k, str) and {search}(k) is not None:")
                loop.append("    m = True")
                loop.append(f"    if not {check}(x): return False")
        else:
            loop.append("m = False")
        if extra is False:
            loop.append("if f is None and not m: return False")
        elif extra_check is not None:
            loop.append(f"if f is None and not m and not {extra_check}(x): return False")
        if names is not None or props or patterns or extra is not True:
            inner.append("for k, x in v.items():")
            inner += [f"    {line}" for line in loop]
        if not inner:
            return
        if known == "object":
            body += inner
        else:
            body.append("if isinstance(v, dict):")
            body += [f"    {line}" for line in inner]

    def source(self) -> str:
        return "".join(self.values) + "\n" + "\n".join(self.functions) + "\n" + "".join(self.tables)


def _generated(schema: Mapping[str, Any]) -> tuple[str, str] | None:
    """The source of a schema's check and the name of its root function, or None when the
    schema uses what is not implemented."""
    gen = _Generator(schema)
    try:
        root = gen.node(dict(schema))
    except _Unsupported:
        return None
    return gen.source(), root


def compile_schema(schema: Mapping[str, Any], label: str = "schema") -> Check | None:
    """The yes/no check of a whole schema, or None when it uses what is not implemented."""
    generated = _generated(schema)
    if generated is None:
        return None
    source, root = generated
    env: dict[str, Any] = {"re": re, "is_integer": is_integer, "is_number": is_number}
    exec(compile(source, f"<compiled {label}>", "exec"), env)
    check: Check = env[root]
    return check


MODULE = Path(__file__).with_name("schema_code.py")


def module_source(schemas: Mapping[str, Mapping[str, Any]]) -> str:
    """schema_code.py: each kind's check, as compile_schema would make it, in one module
    (one function per kind whose locals are the check's functions and values)."""
    parts = [_HEADER]
    table: list[str] = []
    for kind, schema in schemas.items():
        generated = _generated(schema)
        if generated is None:
            table.append(f"    {kind!r}: None,\n")
            continue
        source, root = generated
        maker = f"_{kind}"
        inner = "".join(f"    {line}\n" if line else "\n" for line in source.splitlines())
        parts.append(f"\n\ndef {maker}():\n{inner}    return {root}\n")
        table.append(f"    {kind!r}: {maker}(),\n")
    parts.append("\n\n# kind -> its check; None: every document of the kind goes to jsonschema.\n")
    parts.append("CHECKS = {\n" + "".join(table) + "}\n")
    return "".join(parts)


_HEADER = '''"""Generated by `python -m reconciler.load.schema_check` from the kinds' JSON
Schemas: the compiled check of each kind (see schema_check.py), checked in so that no command
generates and compiles it at run time. Do not edit; tests/validation/test_schema_check.py
fails when it is not what the models give now."""
# mypy: ignore-errors
# ruff: noqa

import re

from reconciler.load.schema_check import is_integer, is_number
'''


def _write_module() -> None:
    from reconciler.model.schema import all_schemas

    MODULE.write_text(module_source(all_schemas()), encoding="utf-8")
    print(f"wrote {MODULE}")


if __name__ == "__main__":
    _write_module()
