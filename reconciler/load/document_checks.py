"""Per-document validation: one RawDocument's envelope, pydantic model and JSON Schema errors
turned into diagnostics at field paths, with "did you mean" hints.

Owns _Context (the document, kind and name a diagnostic is written for) and the translation of
pydantic and jsonschema errors; validate.py runs these for every document. Messages never echo
a value from the document: values may be secrets.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

from reconciler.load.raw_document import RawDocument
from reconciler.load.schema_check import Check, compile_schema
from reconciler.model.diagnostics import Diagnostic, FieldPath, Mark, format_path
from reconciler.model.kinds import API_VERSION, KINDS
from reconciler.model.patterns import PATTERN_HELP
from reconciler.model.schema import kind_schema as _build_schema

# Generated once per kind: the validator and the "did you mean" lookups share it.
_kind_schema = cache(_build_schema)

_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "bool_type": "a boolean (true or false)",
    "float_type": "a number",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_JSON_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "boolean": "a boolean (true or false)",
    "number": "a number",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


def _describe_input(value: Any) -> str:
    """The type of what was found, never the value itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _display_name(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    shown = value if value.isprintable() else value.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= 64 else shown[:61] + "..."


@dataclass
class _Context:
    """Per-document facts needed to write a diagnostic."""

    doc: RawDocument
    kind: str | None
    name: str | None

    def diag(
        self, path: FieldPath, message: str, hint: str | None = None, *, key: bool = False
    ) -> Diagnostic:
        mark: Mark | None = self.doc.key_mark(path) if key else None
        if mark is None:
            mark = self.doc.mark_for(path)
        return Diagnostic(
            file=self.doc.file,
            line=mark.line,
            column=mark.column,
            message=message,
            kind=self.kind,
            name=self.name,
            field=format_path(path) or None,
            hint=hint,
        )


def _value_at(data: Any, path: FieldPath) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


@cache
def _validator(kind: str) -> Validator:
    # Imported here: only `recon validate` checks schemas, and the import costs every command.
    import jsonschema

    schema = _kind_schema(kind)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


@cache
def _fast_check(kind: str) -> Check | None:
    from reconciler.load.schema_code import CHECKS

    if kind in CHECKS:  # generated ahead and checked in (schema_check.module_source)
        check: Check | None = CHECKS[kind]
        return check
    return compile_schema(_kind_schema(kind), label=kind)


def _allowed_keys(kind: str, path: FieldPath) -> list[str]:
    """Property names the schema allows for the mapping at path (for 'did you mean')."""
    schema = _kind_schema(kind)
    defs = schema.get("$defs", {})
    node: Any = schema

    def deref(n: Any) -> Any:
        while isinstance(n, dict):
            if "$ref" in n:
                n = defs[n["$ref"].rsplit("/", 1)[-1]]
            elif "anyOf" in n:
                n = next((b for b in n["anyOf"] if b.get("type") != "null"), {})
            else:
                return n
        return n

    node = deref(node)
    for part in path:
        if isinstance(part, int):
            node = deref(node.get("items", {}))
        else:
            node = deref(node.get("properties", {}).get(part, {}))
    return list(node.get("properties", {}))


def _unknown_field(ctx: _Context, path: FieldPath) -> Diagnostic:
    key = str(path[-1])
    hint: str | None = None
    if ctx.kind:
        allowed = _allowed_keys(ctx.kind, path[:-1])
        close = difflib.get_close_matches(key, allowed, n=1)
        if close:
            hint = f"did you mean '{close[0]}'?"
        elif allowed:
            hint = "allowed fields: " + ", ".join(allowed)
    return ctx.diag(path, f"unknown field '{key}'", hint, key=True)


def _pattern_message(pattern: str) -> str:
    help_text = PATTERN_HELP.get(pattern)
    return f"expected {help_text}" if help_text else f"must match the pattern {pattern}"


def _type_hint(found: Any, expected: str) -> str | None:
    if expected == "a string" and isinstance(found, int | float) and not isinstance(found, bool):
        return "quote the value to make it a string"
    if expected == "a boolean (true or false)" and isinstance(found, str):
        return "write true or false without quotes"
    if expected == "an integer" and isinstance(found, str):
        return "write the number without quotes"
    return None


def _pydantic_diagnostics(ctx: _Context, error: ValidationError) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for err in error.errors(include_url=False, include_input=False):
        path: FieldPath = tuple(err["loc"])
        etype = err["type"]
        ctx_info = err.get("ctx") or {}
        found = _value_at(ctx.doc.data, path)
        if etype == "extra_forbidden":
            out.append(_unknown_field(ctx, path))
        elif etype == "missing":
            out.append(ctx.diag(path, f"missing required field '{path[-1]}'"))
        elif etype in _TYPE_WORDS:
            expected = _TYPE_WORDS[etype]
            out.append(
                ctx.diag(
                    path,
                    f"expected {expected}, found {_describe_input(found)}",
                    _type_hint(found, expected),
                )
            )
        elif etype == "string_pattern_mismatch":
            out.append(ctx.diag(path, _pattern_message(str(ctx_info.get("pattern")))))
        elif etype == "literal_error":
            out.append(ctx.diag(path, f"expected one of {ctx_info.get('expected')}"))
        elif etype == "value_error":
            out.append(ctx.diag(path, str(err["msg"]).removeprefix("Value error, ")))
        elif etype == "string_too_long":
            out.append(ctx.diag(path, f"too long: at most {ctx_info.get('max_length')} characters"))
        else:
            # Pydantic's own messages do not include the input (hide_input_in_errors).
            out.append(ctx.diag(path, str(err["msg"])))
    return out


def _schema_diagnostics(ctx: _Context) -> list[Diagnostic]:
    assert ctx.kind is not None
    fast = _fast_check(ctx.kind)
    if fast is not None and fast(ctx.doc.data):
        # Valid by the compiled schema, hence by jsonschema (schema_check.py): nothing to say.
        return []
    out: list[Diagnostic] = []
    for err in _validator(ctx.kind).iter_errors(ctx.doc.data):
        path: FieldPath = tuple(err.absolute_path)
        keyword = err.validator
        while keyword == "anyOf" and err.context:
            # Optional fields are "X or null": the X branch says what was wrong.
            inner = [
                e
                for e in err.context
                if not (isinstance(e.schema, dict) and e.schema.get("type") == "null")
            ]
            if not inner:
                break
            err = max(inner, key=lambda e: len(e.absolute_path))
            keyword = err.validator
            path = tuple(err.absolute_path)
        schema: dict[str, Any] = err.schema if isinstance(err.schema, dict) else {}
        if keyword == "additionalProperties":
            known = set(schema.get("properties", {}))
            for key in err.instance if isinstance(err.instance, dict) else {}:
                if key not in known:
                    out.append(_unknown_field(ctx, (*path, key)))
        elif keyword == "required":
            present = err.instance if isinstance(err.instance, dict) else {}
            for key in schema.get("required", []):
                if key not in present:
                    out.append(ctx.diag((*path, key), f"missing required field '{key}'"))
        elif keyword == "type":
            expected = _JSON_TYPE_WORDS.get(str(schema.get("type")), str(schema.get("type")))
            out.append(
                ctx.diag(path, f"expected {expected}, found {_describe_input(err.instance)}")
            )
        elif keyword == "pattern":
            out.append(ctx.diag(path, _pattern_message(str(schema.get("pattern")))))
        elif keyword in ("enum", "const"):
            choices = schema.get("enum", [schema.get("const")])
            out.append(ctx.diag(path, "expected one of " + ", ".join(repr(c) for c in choices)))
        else:
            out.append(ctx.diag(path, f"schema check '{keyword}' failed"))
    return out


def _envelope(doc: RawDocument) -> tuple[_Context, list[Diagnostic]]:
    data = doc.data
    raw_kind = data.get("kind")
    kind = raw_kind if isinstance(raw_kind, str) and raw_kind in KINDS else None
    metadata = data.get("metadata")
    name = _display_name(metadata.get("name")) if isinstance(metadata, dict) else None
    ctx = _Context(doc, kind or _display_name(raw_kind), name)
    diags: list[Diagnostic] = []
    version = data.get("apiVersion")
    if version != API_VERSION:
        found = "missing" if version is None else "unsupported"
        diags.append(ctx.diag(("apiVersion",), f"apiVersion is {found}; expected '{API_VERSION}'"))
    if kind is None:
        if raw_kind is None:
            diags.append(
                ctx.diag(("kind",), "missing required field 'kind'", "one of: " + ", ".join(KINDS))
            )
        else:
            close = difflib.get_close_matches(str(raw_kind), list(KINDS), n=1)
            diags.append(
                ctx.diag(
                    ("kind",),
                    "unknown kind",
                    f"did you mean '{close[0]}'?" if close else "one of: " + ", ".join(KINDS),
                )
            )
    return ctx, diags
