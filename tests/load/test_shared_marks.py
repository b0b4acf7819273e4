"""The strict loader shares one Mark per line:column place across documents (they are
immutable), and still gives every node its own place, also once the shared table is emptied."""

from __future__ import annotations

import pytest

from reconciler.load import yamlsafe
from reconciler.load.yamlsafe import parse_yaml
from reconciler.model.diagnostics import Mark

DOC = b"apiVersion: reconciler/v1\nkind: StoragePool\nmetadata:\n  name: p\n"


def test_equal_places_share_one_mark_and_each_node_keeps_its_own() -> None:
    (first,), _ = parse_yaml(DOC, "a.yaml")
    (second,), _ = parse_yaml(b"\n" + DOC, "b.yaml")
    (third,), _ = parse_yaml(DOC, "c.yaml")
    assert first.marks[("kind",)] == Mark(2, 7)
    assert second.marks[("kind",)] == Mark(3, 7)
    assert third.marks[("kind",)] is first.marks[("kind",)]
    assert first.key_marks[("metadata", "name")] == Mark(4, 3)


def test_an_emptied_table_still_gives_every_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlsafe, "_MAX_SHARED_MARKS", 2)
    for lines in range(1, 6):
        docs, diags = parse_yaml(b"\n" * lines + DOC, f"{lines}.yaml")
        assert diags == []
        assert docs[0].marks[("metadata", "name")] == Mark(lines + 4, 9)
        assert len(yamlsafe._MARKS) <= 2 + 20
