"""`recon explain KIND[.field.path]`: what a field is, as kubectl explain says it: its type,
whether it is required, its default, its allowed values or pattern, and its doc text, all
from the JSON Schema the models generate (model/schema.py, the same as schemas/).

main.py adds this command to `recon`; this module imports no other command module.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    # click.shell_completion is imported on a TAB only, not at every start.
    from click.shell_completion import CompletionItem

from reconciler.cli.kind_names import KIND_ALIASES
from reconciler.cli.output import fail
from reconciler.model.kinds import API_VERSION, KINDS
from reconciler.model.patterns import PATTERN_HELP

Node = dict[str, Any]


class _Schema:
    def __init__(self, kind: str) -> None:
        from reconciler.model.schema import kind_schema

        self.root: Node = kind_schema(kind)
        self.defs: dict[str, Node] = self.root.get("$defs", {})

    def deref(self, node: Node) -> tuple[Node, bool]:
        """The node behind $ref and `X or null`; and whether null is allowed."""
        nullable = False
        while True:
            if "$ref" in node:
                node = {**self.defs[node["$ref"].rsplit("/", 1)[-1]], **_own(node)}
            elif "anyOf" in node:
                branches = [b for b in node["anyOf"] if b.get("type") != "null"]
                nullable = nullable or len(branches) < len(node["anyOf"])
                node = {**branches[0], **_own(node)} if len(branches) == 1 else node
                if len(branches) != 1:
                    return node, nullable
            else:
                return node, nullable

    def type_name(self, node: Node) -> str:
        node, _ = self.deref(node)
        kind = node.get("type")
        if kind == "array":
            return "[]" + self.type_name(node.get("items", {}))
        if kind == "object":
            if "properties" in node:
                return str(node.get("title", "Object"))
            return "map[string]string"
        return str(kind or "any")


def _own(node: Node) -> Node:
    """What a node says besides its $ref/anyOf (a default, a description)."""
    return {k: v for k, v in node.items() if k not in ("$ref", "anyOf")}


def _describe(schema: _Schema, node: Node, required: bool) -> list[str]:
    """The lines that say what a value may be."""
    raw = node
    node, nullable = schema.deref(node)
    lines = []
    if required:
        lines.append("required")
    elif nullable or "default" in raw:
        default = raw.get("default", node.get("default"))
        lines.append("default: " + ("(unset)" if default is None else json.dumps(default)))
    if "enum" in node:
        lines.append("allowed: " + ", ".join(json.dumps(v) for v in node["enum"]))
    elif "const" in node:
        lines.append("allowed: " + json.dumps(node["const"]))
    item = node.get("items", node) if node.get("type") == "array" else node
    item, _ = schema.deref(item)
    if item is not node and "enum" in item:
        lines.append("allowed items: " + ", ".join(json.dumps(v) for v in item["enum"]))
    pattern = item.get("pattern")
    if pattern:
        lines.append("format: " + PATTERN_HELP.get(pattern, f"matches {pattern}"))
    for key, word in (("minimum", "at least"), ("maximum", "at most")):
        if key in item:
            lines.append(f"{word} {item[key]}")
    if "maxItems" in node:
        lines.append(f"at most {node['maxItems']} items")
    return lines


def _walk(schema: _Schema, path: list[str]) -> tuple[Node, bool]:
    node: Node = schema.root
    required = True
    for index, part in enumerate(path):
        parent, _ = schema.deref(node)
        if parent.get("type") == "array":
            parent, _ = schema.deref(parent.get("items", {}))
        properties = parent.get("properties", {})
        if part not in properties:
            where = ".".join(path[:index]) or "the kind"
            fail(
                f"field '{part}' does not exist in {where}",
                "fields there: " + ", ".join(properties) if properties else None,
                code=1,
            )
        required = part in parent.get("required", [])
        node = properties[part]
    return node, required


def _complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """KIND, then its field paths one level at a time (`vm.spec.` -> `vm.spec.cpus`, ...)."""
    from click.shell_completion import CompletionItem

    if "." not in incomplete:
        words = sorted({*KINDS, *KIND_ALIASES})
        return [CompletionItem(w) for w in words if w.startswith(incomplete)]
    head, _, last = incomplete.rpartition(".")
    kind_word, *path = head.split(".")
    kind = KIND_ALIASES.get(kind_word.lower())
    if kind is None:
        return []
    schema = _Schema(kind)
    node: Node = schema.root
    for part in path:
        node, _ = schema.deref(node)
        if node.get("type") == "array":
            node, _ = schema.deref(node.get("items", {}))
        node = node.get("properties", {}).get(part)
        if node is None:
            return []
    node, _ = schema.deref(node)
    if node.get("type") == "array":
        node, _ = schema.deref(node.get("items", {}))
    return [
        CompletionItem(f"{head}.{name}")
        for name in node.get("properties", {})
        if name.startswith(last)
    ]


@click.command()
@click.argument("target", metavar="KIND[.FIELD.PATH]", shell_complete=_complete)
def explain(target: str) -> None:
    """Describe a kind or one of its fields: type, default, allowed values, doc text.

    \b
    recon explain vm                 the kind and its top-level fields
    recon explain vm.spec.disks      a field and, for an object, its fields
    recon explain container.spec.disk.size
    """
    kind_word, *path = target.split(".")
    kind = KIND_ALIASES.get(kind_word.lower())
    if kind is None:
        fail(f"unknown kind '{kind_word}'", "one of: " + ", ".join(KINDS), code=2)
    schema = _Schema(kind)
    node, required = _walk(schema, path)
    resolved, _ = schema.deref(node)
    lines = [f"KIND:     {kind}", f"VERSION:  {API_VERSION}", ""]
    if path:
        lines.append(f"FIELD:    {path[-1]} <{schema.type_name(node)}>")
        for line in _describe(schema, node, required):
            lines.append(f"          {line}")
        lines.append("")
    description = node.get("description") or resolved.get("description")
    if description:
        lines += ["DESCRIPTION:", *(f"    {line}" for line in description.splitlines()), ""]
    if resolved.get("type") == "array":
        resolved, _ = schema.deref(resolved.get("items", {}))
    properties = resolved.get("properties", {})
    if properties:
        lines.append("FIELDS:")
        for name, child in properties.items():
            is_required = name in resolved.get("required", [])
            facts = _describe(schema, child, is_required)
            lines.append(
                f"  {name}  <{schema.type_name(child)}>"
                + (f"  ({'; '.join(facts)})" if facts else "")
            )
    lines += ["", f"SEE ALSO: docs/manifests/{kind.lower()}.md"]
    click.echo("\n".join(lines).rstrip())
