"""What `recon get -o yaml|json` writes that is not a manifest, so that its output applies
back as it is (as `kubectl apply` takes what `kubectl get -o yaml` prints):

- a `kind: List` document (`apiVersion: v1`, `items`) is its items, each a document of its
  own with the positions of its lines;
- `status` and `metadata.uid` are reported by recon and never read: they are dropped before
  a document is validated.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.load.raw_document import RawDocument
from reconciler.model.diagnostics import Diagnostic

LIST_KIND = "List"


def expand_lists(docs: Sequence[RawDocument]) -> tuple[list[RawDocument], list[Diagnostic]]:
    out: list[RawDocument] = []
    diags: list[Diagnostic] = []
    for doc in docs:
        items = doc.data.get("items")
        if doc.data.get("kind") != LIST_KIND:
            out.append(doc)
            continue
        if not isinstance(items, list):
            mark = doc.mark_for(("items",))
            diags.append(
                Diagnostic(doc.file, mark.line, mark.column, "a List needs 'items': a list")
            )
            continue
        for index, part in enumerate(doc.items(("items",))):
            if not isinstance(part.data, dict):
                diags.append(
                    Diagnostic(
                        doc.file,
                        part.mark.line,
                        part.mark.column,
                        "each item of a List must be a mapping (a manifest)",
                        field=f"items[{index}]",
                    )
                )
                continue
            out.append(part)
    return out, diags


def drop_reported(data: dict[str, object]) -> dict[str, object]:
    """The document without what recon reports (status, metadata.uid); the same object when
    it has neither."""
    metadata = data.get("metadata")
    has_uid = isinstance(metadata, dict) and "uid" in metadata
    if "status" not in data and not has_uid:
        return data
    out = {k: v for k, v in data.items() if k != "status"}
    if has_uid:
        assert isinstance(metadata, dict)
        out["metadata"] = {k: v for k, v in metadata.items() if k != "uid"}
    return out
