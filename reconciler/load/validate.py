"""Validation: raw documents -> Resources, or diagnostics naming file, line, resource and field.

Three layers, all errors of a run collected:
1. envelope: apiVersion and kind known (so the right model and schema are used);
2. per document: the pydantic model (strict), and in `validate` also the JSON Schema in
   schemas/ through jsonschema; both report at the same field paths;
3. across documents: duplicates, dangling references, limits that involve two fields.

Messages never echo a value from the document: values may be secrets.

validate.py runs the layers and owns their result: ValidationResult, validate_documents and
join_results. The per-document layers live in document_checks, the checks across documents in
cross_checks.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from pydantic import ValidationError

from reconciler.load.cross_checks import cross_check
from reconciler.load.document_checks import (
    _Context,
    _envelope,
    _pydantic_diagnostics,
    _schema_diagnostics,
)
from reconciler.load.raw_document import RawDocument
from reconciler.load.reported import drop_reported
from reconciler.model.artifacts import script_path, template_revision
from reconciler.model.diagnostics import Diagnostic
from reconciler.model.errors import ReconError
from reconciler.model.fields import Fields
from reconciler.model.kinds import KINDS, Manifest, Template
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource


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
        data = drop_reported(doc.data)
        if data is not doc.data:
            doc = replace(doc, data=data)
        ctx, diags = _envelope(doc)
        if not diags:
            assert ctx.kind is not None
            try:
                manifest = KINDS[ctx.kind].model_validate(doc.data)
            except ValidationError as exc:
                diags = _pydantic_diagnostics(ctx, exc)
            else:
                inputs, diags = _implied_fields(manifest, doc.file, ctx)
                resource = Resource(manifest, doc.file, doc.mark.line, inputs)
                duplicate = result._add(resource, ctx)
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


def _implied_fields(
    manifest: Manifest, file: str, ctx: _Context
) -> tuple[Fields, list[Diagnostic]]:
    """A built Template's revision: its spec and the content of the scripts it names, which
    are read here so that a missing one is an error before anything runs."""
    if not isinstance(manifest, Template) or manifest.spec.source.build is None:
        return {}, []
    try:
        return implied_fields(manifest, file), []
    except ScriptError as exc:
        path = ("spec", "source", "build", "customize", exc.index)
        return {}, [ctx.diag(path, str(exc), exc.hint)]


class ScriptError(ReconError):
    def __init__(self, index: int, message: str, hint: str) -> None:
        super().__init__(message, hint)
        self.index = index


def implied_fields(manifest: Manifest, file: str) -> Fields:
    """The fields a manifest implies beyond its own (see Resource.inputs); ScriptError for a
    customize script that cannot be read or run."""
    if not isinstance(manifest, Template) or manifest.spec.source.build is None:
        return {}
    return {"revision": template_revision(manifest, script_digests(manifest, file))[:12]}


def script_digests(manifest: Template, file: str) -> list[str]:
    """The sha256 of each customize script of a built Template, in order."""
    assert manifest.spec.source.build is not None
    digests: list[str] = []
    for i, script in enumerate(manifest.spec.source.build.customize):
        path = script_path(file, script)
        try:
            digests.append(hashlib.sha256(path.read_bytes()).hexdigest())
        except OSError as exc:
            raise ScriptError(
                i,
                f"cannot read the customize script {path}: {exc.strerror}",
                "a relative path is read relative to the manifest's directory",
            ) from None
        if not os.access(path, os.X_OK):
            raise ScriptError(
                i,
                f"the customize script {path} is not executable",
                f"chmod +x {script} (and commit the mode)",
            )
    return digests


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
