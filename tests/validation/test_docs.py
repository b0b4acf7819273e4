"""The manifest reference names every field the models accept."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from reconciler.model.kinds import KINDS

ROOT = Path(__file__).resolve().parents[2]


def _spec_fields(model: type[BaseModel]) -> list[str]:
    spec = model.model_fields["spec"].annotation
    assert isinstance(spec, type) and issubclass(spec, BaseModel)
    return [f.alias or name for name, f in spec.model_fields.items()]


@pytest.mark.parametrize("kind", list(KINDS))
def test_reference_page_documents_every_spec_field(kind: str) -> None:
    page = ROOT / "docs" / "manifests" / f"{kind.lower()}.md"
    text = page.read_text()
    missing = [f for f in _spec_fields(KINDS[kind]) if f"`{f}" not in text]
    assert missing == [], f"{page} does not document {missing}"
