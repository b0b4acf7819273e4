"""The front door of the load layer: paths in, validated resources or diagnostics out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import BinaryIO

from reconciler.load.sources import read_sources
from reconciler.load.validate import ValidationResult, validate_documents


def load_manifests(
    paths: Sequence[str], *, stdin: BinaryIO | None = None, with_schema: bool = False
) -> ValidationResult:
    """All diagnostics of the run together; resources only matter when there are none."""
    docs, read_diags = read_sources(paths, stdin=stdin)
    result = validate_documents(docs, with_schema=with_schema)
    result.diagnostics = sorted(read_diags + result.diagnostics, key=lambda d: d.sort_key())
    result.files = sorted({d.file for d in docs})
    return result
