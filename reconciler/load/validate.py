"""Validation: raw documents -> Resources, or diagnostics naming file, line, resource and field.

Three layers, all errors of a run collected:
1. envelope: apiVersion and kind known (so the right model and schema are used);
2. per document: the pydantic model (strict), and in `validate` also the JSON Schema in
   schemas/ through jsonschema; both report at the same field paths;
3. across documents: duplicates, dangling references, limits that involve two fields.

Messages never echo a value from the document: values may be secrets.
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

from reconciler.load.yamlsafe import RawDocument
from reconciler.model.diagnostics import Diagnostic, FieldPath, Mark, format_path
from reconciler.model.kinds import (
    API_VERSION,
    KINDS,
    PATTERN_HELP,
    Container,
    HostPolicy,
    Manifest,
    Network,
    Template,
    VirtualMachine,
)
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.model.schema import kind_schema as _build_schema

# Generated once per kind: the validator and the "did you mean" lookups share it.
_kind_schema = cache(_build_schema)

MIN_MEMORY = 16 * 1024 * 1024

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
        mark: Mark | None = self.doc.key_marks.get(path) if key else None
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
    if path == ("status",):
        hint = "status is reported by recon, never read from a manifest: remove it"
    elif ctx.kind:
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


@dataclass
class ValidationResult:
    resources: list[Resource] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    # Where each resource was written, for the diagnostics of checks across documents.
    contexts: dict[ResourceRef, _Context] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return not self.diagnostics

    def _add(self, resource: Resource, ctx: _Context) -> Diagnostic | None:
        """Adds a resource to the set, or says where the same Kind/name was defined first."""
        previous = self.contexts.get(resource.ref)
        if previous is None:
            self.contexts[resource.ref] = ctx
            self.resources.append(resource)
            return None
        first = previous.doc.mark
        return ctx.diag(
            ("metadata", "name"),
            f"duplicate {resource.ref}: first defined at "
            f"{previous.doc.file}:{first.line}:{first.column}",
            "each Kind/name must be defined once across all files",
        )


def validate_documents(
    docs: Sequence[RawDocument], *, with_schema: bool = False, cross_checks: bool = True
) -> ValidationResult:
    """Models for every document that is valid, diagnostics for every one that is not.

    with_schema also runs the JSON Schemas; they agree with the models by construction (both
    come from the same types), and the schema check catches a drift between the two.
    """
    result = ValidationResult()
    for doc in docs:
        ctx, diags = _envelope(doc)
        if not diags:
            assert ctx.kind is not None
            try:
                manifest = KINDS[ctx.kind].model_validate(doc.data)
            except ValidationError as exc:
                diags = _pydantic_diagnostics(ctx, exc)
            else:
                duplicate = result._add(Resource(manifest, doc.file, doc.mark.line), ctx)
                if duplicate is not None:
                    diags.append(duplicate)
            if with_schema:
                seen = {(d.field, d.line) for d in diags}
                diags += [d for d in _schema_diagnostics(ctx) if (d.field, d.line) not in seen]
        result.diagnostics += diags
    if cross_checks:
        result.diagnostics += cross_check(result.resources, result.contexts)
    result.diagnostics.sort(key=Diagnostic.sort_key)
    return result


def join_results(parts: Sequence[ValidationResult]) -> ValidationResult:
    """Files validated one by one (cross_checks=False) as one set: what only the whole set
    can say (a Kind/name defined twice, references, uniqueness, one HostPolicy), without
    validating any document again. A control loop keeps each unchanged file's result."""
    result = ValidationResult()
    for part in parts:
        result.diagnostics += part.diagnostics
        for resource in part.resources:
            duplicate = result._add(resource, part.contexts[resource.ref])
            if duplicate is not None:
                result.diagnostics.append(duplicate)
    result.diagnostics += cross_check(result.resources, result.contexts)
    result.diagnostics.sort(key=Diagnostic.sort_key)
    return result


# --- checks across fields and documents --------------------------------------------------------

Check = Callable[[Manifest, "_Index"], Iterable[tuple[FieldPath, str, str | None]]]


@dataclass
class _Index:
    names: dict[str, set[str]]
    templates: dict[str, Template]


def _ref(
    index: _Index, kind: str, name: str | None, path: FieldPath
) -> Iterable[tuple[FieldPath, str, str | None]]:
    if name is None or name in index.names.get(kind, set()):
        return
    known = sorted(index.names.get(kind, set()))
    close = difflib.get_close_matches(name, known, n=1)
    hint = (
        f"did you mean '{close[0]}'?"
        if close
        else f"define a {kind} named '{name}'"
        + (f" (defined: {', '.join(known[:10])})" if known else "")
    )
    yield path, f"refers to {kind} '{name}', which no manifest defines", hint


def _template_format(
    index: _Index, name: str | None, wanted: str, path: FieldPath
) -> Iterable[tuple[FieldPath, str, str | None]]:
    template = index.templates.get(name or "")
    if template is not None and template.spec.format != wanted:
        use = "a VM disk" if wanted == "qcow2" else "a container"
        yield (
            path,
            f"Template '{name}' has format '{template.spec.format}'; {use} needs format '{wanted}'",
            None,
        )


def _check_vm(m: Manifest, index: _Index) -> Iterable[tuple[FieldPath, str, str | None]]:
    assert isinstance(m, VirtualMachine)
    s = m.spec
    if s.max_memory is not None and s.memory > s.max_memory:
        yield (
            ("spec", "memory"),
            "memory is larger than maxMemory",
            "raise maxMemory (the hotplug ceiling) or lower memory",
        )
    if s.memory < MIN_MEMORY:
        yield ("spec", "memory"), "memory must be at least 16Mi", None
    if s.max_cpus is not None and s.cpus > s.max_cpus:
        yield ("spec", "cpus"), "cpus is larger than maxCpus", "raise maxCpus or lower cpus"
    seen: set[str] = set()
    for i, disk in enumerate(s.disks):
        if disk.name in seen:
            yield ("spec", "disks", i, "name"), f"duplicate disk name '{disk.name}'", None
        seen.add(disk.name)
        yield from _ref(index, "StoragePool", disk.pool, ("spec", "disks", i, "pool"))
        yield from _ref(index, "Template", disk.template, ("spec", "disks", i, "template"))
        yield from _template_format(index, disk.template, "qcow2", ("spec", "disks", i, "template"))
    for i, iface in enumerate(s.interfaces):
        yield from _ref(index, "Network", iface.network, ("spec", "interfaces", i, "network"))
    if s.guest:
        users = [u.name for u in s.guest.users]
        for i, user in enumerate(users):
            if user in users[:i]:
                yield ("spec", "guest", "users", i, "name"), f"duplicate user '{user}'", None


def _check_container(m: Manifest, index: _Index) -> Iterable[tuple[FieldPath, str, str | None]]:
    assert isinstance(m, Container)
    s = m.spec
    if s.memory < MIN_MEMORY:
        yield ("spec", "memory"), "memory must be at least 16Mi", None
    yield from _ref(index, "Template", s.template, ("spec", "template"))
    yield from _template_format(index, s.template, "tar", ("spec", "template"))
    yield from _ref(index, "StoragePool", s.disk.pool, ("spec", "disk", "pool"))
    for i, iface in enumerate(s.interfaces):
        yield from _ref(index, "Network", iface.network, ("spec", "interfaces", i, "network"))


def _check_template(m: Manifest, index: _Index) -> Iterable[tuple[FieldPath, str, str | None]]:
    assert isinstance(m, Template)
    yield from _ref(index, "StoragePool", m.spec.pool, ("spec", "pool"))


def _check_network(m: Manifest, index: _Index) -> Iterable[tuple[FieldPath, str, str | None]]:
    assert isinstance(m, Network)
    s = m.spec
    if s.mode == "bridge":
        if s.bridge is None:
            yield (
                ("spec", "bridge"),
                "mode 'bridge' needs the name of an existing host bridge",
                None,
            )
        if s.ipv4 is not None:
            yield (
                ("spec", "ipv4"),
                "mode 'bridge' takes no ipv4: the host bridge has its own addressing",
                None,
            )
        return
    if s.ipv4 is None:
        return
    net = ipaddress.ip_interface(s.ipv4.address).network
    if not isinstance(net, ipaddress.IPv4Network):
        yield ("spec", "ipv4", "address"), "expected an IPv4 address", None
        return
    if s.ipv4.dhcp is not None:
        start = ipaddress.ip_address(s.ipv4.dhcp.start)
        end = ipaddress.ip_address(s.ipv4.dhcp.end)
        for part, addr in (("start", start), ("end", end)):
            if addr not in net:
                yield ("spec", "ipv4", "dhcp", part), f"outside the network {net}", None
        if start.version == end.version and int(start) > int(end):
            yield ("spec", "ipv4", "dhcp", "end"), "dhcp end comes before start", None


_CHECKS: dict[str, Check] = {
    "VirtualMachine": _check_vm,
    "Container": _check_container,
    "Template": _check_template,
    "Network": _check_network,
}


def _unique_across(
    resources: Sequence[Resource],
    contexts: dict[ResourceRef, _Context],
    values: Callable[[Manifest], Iterable[tuple[FieldPath, str]]],
    what: str,
) -> list[Diagnostic]:
    """One diagnostic per repeat of a value that must be unique on a host (UUID, MAC)."""
    first: dict[str, tuple[ResourceRef, FieldPath]] = {}
    out: list[Diagnostic] = []
    for res in resources:
        for path, value in values(res.manifest):
            key = value.lower()
            if key in first:
                owner, _ = first[key]
                out.append(contexts[res.ref].diag(path, f"{what} is also used by {owner}"))
            else:
                first[key] = (res.ref, path)
    return out


def _uuids(m: Manifest) -> Iterable[tuple[FieldPath, str]]:
    uuid = getattr(m.spec, "uuid", None)  # type: ignore[attr-defined]
    if uuid:
        yield ("spec", "uuid"), uuid


def _macs(m: Manifest) -> Iterable[tuple[FieldPath, str]]:
    for i, iface in enumerate(getattr(m.spec, "interfaces", [])):  # type: ignore[attr-defined]
        if getattr(iface, "mac", None):
            yield ("spec", "interfaces", i, "mac"), iface.mac


def cross_check(
    resources: Sequence[Resource], contexts: dict[ResourceRef, _Context]
) -> list[Diagnostic]:
    names: dict[str, set[str]] = {}
    for res in resources:
        names.setdefault(res.ref.kind, set()).add(res.ref.name)
    index = _Index(
        names,
        {r.ref.name: r.manifest for r in resources if isinstance(r.manifest, Template)},
    )
    out: list[Diagnostic] = []
    for res in resources:
        check = _CHECKS.get(res.ref.kind)
        if check is None:
            continue
        ctx = contexts[res.ref]
        out += [ctx.diag(path, msg, hint) for path, msg, hint in check(res.manifest, index)]
    out += _unique_across(resources, contexts, _uuids, "uuid")
    out += _unique_across(resources, contexts, _macs, "MAC address")
    policies = [r for r in resources if isinstance(r.manifest, HostPolicy)]
    for extra in policies[1:]:
        out.append(
            contexts[extra.ref].diag(
                ("metadata", "name"),
                f"a second HostPolicy; {policies[0].ref} already sets the host's policy",
                "keep one HostPolicy per host",
            )
        )
    return out
