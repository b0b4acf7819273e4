"""The strict loader keeps one packed place per node (no Mark, no path stored), and finds
every node's and key's line:column on demand, as PyYAML's own composer places them."""

from __future__ import annotations

from typing import Any

import yaml

from reconciler.load.raw_document import RawDocument
from reconciler.load.reported import expand_lists
from reconciler.load.validate import validate_documents
from reconciler.load.yamlsafe import parse_yaml
from reconciler.model.diagnostics import FieldPath, Mark

DOC = b"""\
apiVersion: reconciler/v1
kind: VirtualMachine
metadata: {name: vm, labels: {role: web}}
spec:
  cpus: 2
  empty: {}
  none: []
  disks:
    - name: root
      extra:
        - [1, [2, {deep: "x"}]]
        - {}
    - {name: data, size: 1Gi}
  interfaces:
  - network: net
"""


def _composed(text: bytes) -> tuple[dict[FieldPath, Mark], dict[FieldPath, Mark]]:
    """Every node's and key's place, from PyYAML's composer (the reference)."""
    marks: dict[FieldPath, Mark] = {}
    keys: dict[FieldPath, Mark] = {}

    def walk(node: Any, path: FieldPath) -> None:
        marks[path] = Mark(node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                keys[(*path, key.value)] = Mark(key.start_mark.line + 1, key.start_mark.column + 1)
                walk(value, (*path, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index))

    walk(yaml.compose(text, Loader=yaml.SafeLoader), ())
    return marks, keys


def _one(text: bytes) -> RawDocument:
    docs, diags = parse_yaml(text, "t.yaml")
    assert diags == []
    (doc,) = docs
    return doc


def test_every_node_and_key_is_placed_as_the_composer_places_it() -> None:
    doc = _one(DOC)
    marks, keys = _composed(DOC)
    assert dict(doc.marks) == marks
    assert dict(doc.key_marks) == keys
    assert len(doc.places) == len(marks) + len(keys)
    assert doc.marks[("spec", "disks", 0, "extra", 0, 1, 1, "deep")] == Mark(11, 26)
    assert doc.key_marks[("spec", "disks", 0, "extra", 0, 1, 1, "deep")] == Mark(11, 20)
    assert doc.marks[("spec", "disks", 0, "extra", 1)] == Mark(12, 11)
    assert doc.marks[("spec", "interfaces", 0, "network")] == Mark(15, 14)


def test_paths_that_lead_nowhere_fall_back_to_the_closest_node() -> None:
    doc = _one(DOC)
    assert doc.mark_for(("spec", "disks", 1, "size", "x")) == Mark(13, 26)
    assert doc.mark_for(("spec", "disks", 7)) == Mark(9, 5)
    assert doc.mark_for(("spec", "disks", "name")) == Mark(9, 5)
    assert doc.mark_for(("spec", "cpus", 0)) == Mark(5, 9)
    assert doc.mark_for(("spec", "disks", -1)) == Mark(9, 5)
    assert doc.mark_for(("nope",)) == Mark(1, 1)
    assert doc.key_mark(("spec", "disks", 0)) is None
    assert doc.key_mark(("spec", "nope")) is None
    assert ("spec", "nope") not in doc.marks
    assert () not in doc.key_marks


def test_each_document_of_a_file_has_its_own_places() -> None:
    text = b"a: 1\n---\nb:\n  - c: 2\n---\n---\nd: [x]\n"
    docs, diags = parse_yaml(text, "m.yaml")
    assert diags == []
    assert [d.index for d in docs] == [0, 1, 3]
    assert docs[1].marks[("b", 0, "c")] == Mark(4, 8)
    assert docs[1].key_marks[("b", 0, "c")] == Mark(4, 5)
    assert docs[2].marks[("d", 0)] == Mark(7, 5)
    assert docs[2].mark == Mark(6, 1)
    assert len(docs[0].places) == 3


def test_a_long_file_and_a_long_line_keep_exact_places() -> None:
    # More lines than 4 bytes a place can hold with this shift: 8 bytes a place.
    many = b"".join(b"k%d: v\n" % i for i in range(20_000))
    doc = _one(many + b"last: [1, 2]\n")
    assert doc.places.typecode == "Q"
    assert doc.marks[("last", 1)] == Mark(20_001, 11)
    assert doc.key_marks[("k19999",)] == Mark(20_000, 1)
    wide = b"a: {" + b", ".join(b"k%d: %d" % (i, i) for i in range(20_000)) + b"}\n"
    doc = _one(wide)
    marks, keys = _composed(wide)
    assert doc.marks[("a", "k19999")] == marks[("a", "k19999")]
    assert doc.marks[("a", "k19999")].column > 1 << 16
    assert doc.key_marks[("a", "k12345")] == keys[("a", "k12345")]


def test_a_small_file_takes_four_bytes_a_place() -> None:
    doc = _one(DOC)
    assert doc.places.typecode == "I"
    assert all(isinstance(place, int) for place in doc.places)


def test_the_items_of_a_list_keep_their_places() -> None:
    text = (
        b"apiVersion: v1\nkind: List\nitems:\n- {kind: A}\n- kind: B\n  spec:\n    x: [0, {w: 1}]\n"
    )
    (doc,) = parse_yaml(text, "l.yaml")[0]
    items, diags = expand_lists([doc])
    assert diags == []
    assert [item.mark for item in items] == [Mark(4, 3), Mark(5, 3)]
    assert items[1].marks[("spec", "x", 1, "w")] == Mark(7, 16)
    assert items[1].key_marks[("spec", "x", 1, "w")] == Mark(7, 13)
    assert items[1].mark_for(("spec", "nope")) == Mark(7, 5)
    assert dict(items[0].marks) == {(): Mark(4, 3), ("kind",): Mark(4, 10)}
    assert items[0].places is doc.places


def test_a_field_after_what_recon_reports_keeps_its_place() -> None:
    """metadata.uid and status are dropped before validation; the fields after them are
    still placed on their own lines (the places follow the document as it was read)."""
    text = (
        b"apiVersion: reconciler/v1\nkind: VirtualMachine\n"
        b"status: {phase: x, disks: [1, 2, {a: b}]}\n"
        b"metadata:\n  uid: 1b4e28ba-2fa1-11d2-883f-0016d3cca427\n  name: web\n"
        b"spec:\n  cpus: 0\n  memory: 512Mi\n  memroy: 1Gi\n"
    )
    docs, diags = parse_yaml(text, "r.yaml")
    assert diags == []
    result = validate_documents(docs, with_schema=True)
    places = {d.field: (d.line, d.column) for d in result.diagnostics}
    assert places == {"spec.cpus": (8, 9), "spec.memroy": (10, 3)}
    assert {d.resource for d in result.diagnostics} == {"VirtualMachine/web"}


def test_a_document_asked_for_many_places_gives_the_same_ones() -> None:
    """Past a few walks a document indexes its places; the answers stay those of a walk."""
    items = b"".join(b"  - {name: d%d, size: [%d, {x: 1}]}\n" % (i, i) for i in range(300))
    text = b"apiVersion: reconciler/v1\nkind: VirtualMachine\nspec:\n  disks:\n" + items
    asked: list[FieldPath] = [
        ("spec", "disks", i, "size", 1, "x", "deeper") for i in range(0, 300, 7)
    ] + [("spec", "disks", 299), ("spec", "disks", 300), ("spec", "nope"), ("kind",), ()]
    walked = [_one(text).mark_for(path) for path in asked]  # a new document each time
    keys = [_one(text).key_mark(path[:4]) for path in asked]
    doc = _one(text)
    assert [doc.mark_for(path) for path in asked] == walked
    assert [doc.key_mark(path[:4]) for path in asked] == keys
    assert walked[0] == Mark(5, 30) and walked[-5] == Mark(304, 5)
    assert walked[-4] == Mark(5, 3) and walked[-3] == Mark(4, 3) and walked[-1] == Mark(1, 1)
    assert keys[0] == Mark(5, 16) and keys[-3] is None
