"""The strict YAML loader: what it accepts, what it refuses, and where it says the problem is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.load.yamlsafe import MAX_DIAGNOSTICS_PER_FILE, RawDocument, parse_yaml
from reconciler.model.diagnostics import Diagnostic, Mark

REPO_ROOT = Path(__file__).resolve().parents[2]


def parse(source: str | bytes, **kwargs: int) -> tuple[list[RawDocument], list[Diagnostic]]:
    content = source.encode("utf-8") if isinstance(source, str) else source
    return parse_yaml(content, "m.yaml", **kwargs)


def only_diagnostic(source: str | bytes) -> Diagnostic:
    docs, diags = parse(source)
    assert docs == []
    assert len(diags) == 1, [d.render() for d in diags]
    assert diags[0].file == "m.yaml"
    return diags[0]


def at(diag: Diagnostic) -> tuple[int | None, int | None]:
    return diag.line, diag.column


NESTED = """\
apiVersion: v1
kind: VirtualMachine
spec:
  disks:
    - name: root
      size: 20Gi
"""


# --- accepted input -------------------------------------------------------------------------------


def test_valid_document_becomes_plain_python_data() -> None:
    docs, diags = parse(
        "apiVersion: recon/v1\nkind: VirtualMachine\nmetadata:\n  name: web\n"
        "spec:\n  cpus: 2\n  ratio: 0.5\n  autostart: true\n  note:\n  tags: [a, b]\n"
    )
    assert diags == []
    assert len(docs) == 1
    assert docs[0].file == "m.yaml"
    assert docs[0].index == 0
    assert docs[0].data == {
        "apiVersion": "recon/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": "web"},
        "spec": {"cpus": 2, "ratio": 0.5, "autostart": True, "note": None, "tags": ["a", "b"]},
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("null", None),
        ("Null", None),
        ("NULL", None),
        ("~", None),
        ("", None),
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("False", False),
        ("FALSE", False),
        ("0", 0),
        ("42", 42),
        ("-7", -7),
        ("+3", 3),
        ("-0", 0),
        ("0x1F", 31),
        ("0o17", 15),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
        ("1.5", 1.5),
        (".5", 0.5),
        ("-2.5E-3", -0.0025),
        ("1e3", 1000.0),
        ("1.", 1.0),
        ("nginx", "nginx"),
        ("v1.2.3", "v1.2.3"),
        ("1.2.3", "1.2.3"),
        ("Yesterday", "Yesterday"),
        ("no-op", "no-op"),
        ("n1", "n1"),
        ("on-call", "on-call"),
        ("0x", "0x"),
        ("12abc", "12abc"),
        ("tRUE", "tRUE"),
        ("a-b", "a-b"),
        ("<html>", "<html>"),
        ("20Gi", "20Gi"),
        ("truely", "truely"),
        ("yesno", "yesno"),
    ],
)
def test_plain_scalars_resolve_with_yaml_1_2_core_rules(text: str, expected: object) -> None:
    docs, diags = parse(f"value: {text}\n")
    assert diags == []
    value = docs[0].data["value"]
    assert value == expected
    assert type(value) is type(expected)


def test_quoted_scalars_stay_strings_even_when_they_look_like_yaml_1_1_values() -> None:
    docs, diags = parse(
        "a: \"yes\"\nb: '0755'\nc: \"1:30\"\nd: '2024-01-01'\ne: \"null\"\nf: '123'\n"
        'g: "on"\nh: \'<<\'\n"on": quoted-key\n'
    )
    assert diags == []
    assert docs[0].data == {
        "a": "yes",
        "b": "0755",
        "c": "1:30",
        "d": "2024-01-01",
        "e": "null",
        "f": "123",
        "g": "on",
        "h": "<<",
        "on": "quoted-key",
    }


def test_block_scalars_stay_strings() -> None:
    docs, diags = parse("a: |\n  yes\nb: >-\n  0755\nc: |-\n  1:30\n")
    assert diags == []
    assert docs[0].data == {"a": "yes\n", "b": "0755", "c": "1:30"}


def test_utf8_bom_is_accepted_and_does_not_shift_columns() -> None:
    docs, diags = parse(b"\xef\xbb\xbfkind: VM\n")
    assert diags == []
    assert docs[0].data == {"kind": "VM"}
    assert docs[0].marks[("kind",)] == Mark(1, 7)


def test_multi_document_file_gives_one_raw_document_per_document() -> None:
    docs, diags = parse("kind: A\nname: a\n---\nkind: B\n---\n# third\nkind: C\nspec:\n  x: 1\n")
    assert diags == []
    assert [d.data["kind"] for d in docs] == ["A", "B", "C"]
    assert [d.index for d in docs] == [0, 1, 2]
    assert [d.mark.line for d in docs] == [1, 3, 5]
    assert docs[1].marks[("kind",)] == Mark(4, 7)
    assert docs[2].marks[()] == Mark(7, 1)
    assert docs[2].marks[("spec", "x")] == Mark(9, 6)
    assert docs[2].key_marks[("spec", "x")] == Mark(9, 3)


def test_empty_documents_among_others_are_skipped_silently() -> None:
    docs, diags = parse("---\n---\nkind: A\n---\n")
    assert diags == []
    assert len(docs) == 1
    assert docs[0].data == {"kind": "A"}
    assert docs[0].index == 1


def test_marks_locate_every_nested_value_and_key_one_based() -> None:
    docs, diags = parse(NESTED)
    assert diags == []
    doc = docs[0]
    assert doc.marks[()] == Mark(1, 1)
    assert doc.marks[("kind",)] == Mark(2, 7)
    assert doc.key_marks[("kind",)] == Mark(2, 1)
    assert doc.marks[("spec",)] == Mark(4, 3)
    assert doc.key_marks[("spec", "disks")] == Mark(4, 3)
    assert doc.marks[("spec", "disks")] == Mark(5, 5)
    assert doc.marks[("spec", "disks", 0)] == Mark(5, 7)
    assert doc.key_marks[("spec", "disks", 0, "name")] == Mark(5, 7)
    assert doc.marks[("spec", "disks", 0, "name")] == Mark(5, 13)
    assert doc.key_marks[("spec", "disks", 0, "size")] == Mark(6, 7)
    assert doc.marks[("spec", "disks", 0, "size")] == Mark(6, 13)


def test_marks_of_flow_collections_point_at_each_item() -> None:
    docs, diags = parse("ports: [80, 443]\nenv: {a: x}\n")
    assert diags == []
    doc = docs[0]
    assert doc.marks[("ports",)] == Mark(1, 8)
    assert doc.marks[("ports", 1)] == Mark(1, 13)
    assert doc.key_marks[("env", "a")] == Mark(2, 7)
    assert doc.marks[("env", "a")] == Mark(2, 10)


def test_mark_for_falls_back_to_the_closest_known_ancestor() -> None:
    doc = parse(NESTED)[0][0]
    assert doc.mark_for(("spec", "disks", 0, "size")) == Mark(6, 13)
    assert doc.mark_for(("spec", "disks", 0, "bus", "model")) == Mark(5, 7)
    assert doc.mark_for(("spec", "disks", 3)) == Mark(5, 5)
    assert doc.mark_for(("metadata", "name")) == Mark(1, 1)
    assert doc.mark_for(()) == Mark(1, 1)


# --- duplicate and non-string keys ---------------------------------------------------------------


def test_duplicate_key_is_reported_at_the_second_with_both_locations() -> None:
    diag = only_diagnostic("kind: VM\nspec:\n  cpus: 2\n  memory: 1Gi\n  memory: 2Gi\n")
    assert "duplicate key 'memory' (first at line 4, column 3)" in diag.message
    assert at(diag) == (5, 3)
    assert diag.field == "spec.memory"


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("1: a\n", "an integer"),
        ("null: a\n", "null"),
        ("~: a\n", "null"),
        ("true: a\n", "a boolean"),
        ("1.5: a\n", "a float"),
    ],
)
def test_non_string_keys_are_refused(source: str, found: str) -> None:
    diag = only_diagnostic(source)
    assert f"mapping key is {found}; expected a string" in diag.message
    assert at(diag) == (1, 1)
    assert diag.hint is not None


@pytest.mark.parametrize(
    ("source", "found", "position"),
    [
        ("? [a, b]\n: c\n", "a sequence", (1, 3)),
        ("? {a: 1}\n: c\n", "a mapping", (1, 3)),
        ("x: {[a]: 1}\n", "a sequence", (1, 5)),
    ],
)
def test_complex_keys_are_refused(source: str, found: str, position: tuple[int, int]) -> None:
    diag = only_diagnostic(source)
    assert f"mapping key is {found}; expected a string" in diag.message
    assert at(diag) == position


# --- YAML 1.1 surprises ---------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "y", "n", "Yes", "NO", "ON", "Off"])
def test_yaml_1_1_boolean_words_are_refused(word: str) -> None:
    diag = only_diagnostic(f"spec:\n  autostart: {word}\n")
    assert "plain scalar would be read as a boolean by YAML 1.1 tools" in diag.message
    assert at(diag) == (2, 14)
    assert diag.field == "spec.autostart"
    assert diag.hint is not None and "true/false" in diag.hint


def test_yaml_1_1_boolean_word_as_key_is_refused() -> None:
    diag = only_diagnostic("on: push\n")
    assert "mapping key 'on' would be read as a boolean by YAML 1.1 tools" in diag.message
    assert at(diag) == (1, 1)


@pytest.mark.parametrize("number", ["0755", "010", "-010", "00"])
def test_leading_zero_integers_are_refused_as_yaml_1_1_octal(number: str) -> None:
    diag = only_diagnostic(f"mode: {number}\n")
    assert "leading zero" in diag.message
    assert "octal number" in diag.message
    assert at(diag) == (1, 7)
    assert diag.hint is not None and "0o prefix" in diag.hint


def test_binary_numbers_are_refused() -> None:
    diag = only_diagnostic("flags: 0b1010\n")
    assert "would be read as a binary number by YAML 1.1 tools" in diag.message
    assert at(diag) == (1, 8)


def test_signed_hexadecimal_is_refused() -> None:
    diag = only_diagnostic("offset: -0x10\n")
    assert "signed hexadecimal" in diag.message
    assert at(diag) == (1, 9)


@pytest.mark.parametrize("value", ["1:30", "190:20:30", "-1:30", "1:30.5"])
def test_sexagesimal_numbers_are_refused(value: str) -> None:
    diag = only_diagnostic(f"at: {value}\n")
    assert "would be read as a sexagesimal (base 60) number by YAML 1.1 tools" in diag.message
    assert at(diag) == (1, 5)


@pytest.mark.parametrize(
    "value", ["2024-01-01", "2024-1-1", "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10 Z"]
)
def test_bare_dates_and_timestamps_are_refused(value: str) -> None:
    diag = only_diagnostic(f"since: {value}\n")
    assert "would be read as a date or timestamp by YAML 1.1 tools" in diag.message
    assert at(diag) == (1, 8)


@pytest.mark.parametrize("value", ["1_000", "0x_ff", "1_0.5", "+1_000"])
def test_numbers_with_underscores_are_refused(value: str) -> None:
    diag = only_diagnostic(f"size: {value}\n")
    assert "number with underscores" in diag.message
    assert at(diag) == (1, 7)


@pytest.mark.parametrize("value", [".inf", "-.inf", "+.Inf", ".nan", ".NaN"])
def test_infinity_and_nan_are_refused(value: str) -> None:
    diag = only_diagnostic(f"ratio: {value}\n")
    assert "infinite or not-a-number float" in diag.message
    assert at(diag) == (1, 8)


def test_float_overflowing_to_infinity_is_refused() -> None:
    diag = only_diagnostic("ratio: 1e400\n")
    assert "out of range for a 64-bit float" in diag.message


@pytest.mark.parametrize(
    "value",
    [str(2**63), str(2**64), str(-(2**63) - 1), "0x10000000000000000", "0o2000000000000000000000"],
)
def test_integers_outside_signed_64_bit_are_refused(value: str) -> None:
    diag = only_diagnostic(f"count: {value}\n")
    assert "integer out of range" in diag.message
    assert at(diag) == (1, 8)


def test_ten_thousand_digit_integer_is_refused_without_converting_it() -> None:
    # int() refuses strings past 4300 digits with ValueError; the loader must not get there.
    diag = only_diagnostic("count: " + "9" * 10_000 + "\n")
    assert "integer out of range" in diag.message
    assert at(diag) == (1, 8)


# --- tags, anchors, aliases, merge keys -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ('!!python/object/apply:os.system ["ls"]', "!!python/object/apply:os.system"),
        ("!!python/object:builtins.dict {}", "!!python/object:builtins.dict"),
        ("!foo bar", "!foo"),
        ("!!binary aGVsbG8=", "!!binary"),
        ("!!set {a}", "!!set"),
        ("!!str 3", "!!str"),
        ('!!int "3"', "!!int"),
        ("! x", "!"),
    ],
)
def test_explicit_tags_are_refused_and_named(value: str, shown: str) -> None:
    diag = only_diagnostic(f"kind: VM\nspec: {value}\n")
    assert f"tag '{shown}' is not allowed" in diag.message
    assert at(diag) == (2, 7)
    assert diag.field == "spec"


def test_anchor_is_refused() -> None:
    diag = only_diagnostic("a: &base 1\n")
    assert "anchor '&base' is not allowed" in diag.message
    assert at(diag) == (1, 4)
    assert diag.hint == "write the values out; recon does not expand anchors"


def test_alias_is_refused() -> None:
    docs, diags = parse("a: &base {x: 1}\nb: *base\n")
    assert docs == []
    assert [(d.message, at(d)) for d in diags] == [
        ("anchor '&base' is not allowed", (1, 4)),
        ("alias '*base' is not allowed", (2, 4)),
    ]


def test_merge_key_is_refused() -> None:
    diag = only_diagnostic("spec:\n  <<: {cpus: 2}\n  memory: 1Gi\n")
    assert "mapping key '<<' is the YAML 1.1 merge key" in diag.message
    assert at(diag) == (2, 3)
    assert diag.hint == "write the values out; recon does not expand anchors"


BILLION_LAUGHS = b"""\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_billion_laughs_is_refused_without_expanding_anything() -> None:
    docs, diags = parse(BILLION_LAUGHS)
    assert docs == []
    assert (diags[0].message, at(diags[0])) == ("anchor '&a' is not allowed", (1, 4))
    assert (diags[1].message, at(diags[1])) == ("anchor '&b' is not allowed", (2, 4))
    # One diagnostic per anchor and per alias as written, not per expanded node.
    assert len(diags) == 9 + 8 * 9


# --- nesting --------------------------------------------------------------------------------------


def test_nesting_up_to_max_depth_is_accepted_and_one_more_is_refused() -> None:
    docs, diags = parse("a: {b: {c: 1}}\n", max_depth=3)
    assert diags == []
    assert docs[0].data == {"a": {"b": {"c": 1}}}
    diag = only_diagnostic_with_depth("a: {b: {c: [1]}}\n", 3)
    assert "nesting is deeper than 3 levels" in diag.message
    assert at(diag) == (1, 12)
    assert diag.field == "a.b.c"


def only_diagnostic_with_depth(source: str, max_depth: int) -> Diagnostic:
    docs, diags = parse(source, max_depth=max_depth)
    assert docs == []
    assert len(diags) == 1, [d.render() for d in diags]
    return diags[0]


def test_100000_deep_nesting_stops_with_a_diagnostic_and_the_process_survives() -> None:
    # In a child process: a crash in the C layer would take pytest down with it.
    script = (
        "from reconciler.load.yamlsafe import parse_yaml\n"
        "docs, diags = parse_yaml(b'[' * 100_000, 'deep.yaml')\n"
        "assert docs == []\n"
        "for d in diags: print(d.line, d.column, d.message)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines, "no diagnostic for a 100,000-deep file"
    # Our own depth check stops at 64 levels; libyaml 0.2.5 as bundled by newer PyYAML wheels
    # may refuse earlier, in its scanner (past 1,000 flow levels). Either is a clean error.
    assert any(
        line.startswith("1 65 nesting is deeper than 64 levels") or "flow level" in line
        for line in lines
    ), lines


# --- encodings and characters ---------------------------------------------------------------------


def test_invalid_utf8_is_reported_at_the_first_bad_byte() -> None:
    diag = only_diagnostic(b"kind: VM\nname: caf\xe9\n")
    assert "file is not valid UTF-8" in diag.message
    assert at(diag) == (2, 10)
    assert diag.hint is not None and "iconv" in diag.hint


def test_invalid_utf8_column_counts_characters_not_bytes() -> None:
    diag = only_diagnostic("n\u00e9e: ".encode() + b"\xff\n")
    assert at(diag) == (1, 6)


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_is_refused_with_or_without_bom(codec: str) -> None:
    diag = only_diagnostic("kind: VM\nspec: {}\n".encode(codec))
    assert diag.message == "file is UTF-16 encoded; recon reads UTF-8"
    assert diag.hint is not None and "iconv" in diag.hint


@pytest.mark.parametrize("codec", ["utf-32", "utf-32-le", "utf-32-be"])
def test_utf32_is_refused_with_or_without_bom(codec: str) -> None:
    diag = only_diagnostic("kind: VM\n".encode(codec))
    assert diag.message == "file is UTF-32 encoded; recon reads UTF-8"


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        (b"\x00", "U+0000 (NUL)"),
        (b"\x07", "U+0007 (a control character)"),
        (b"\x1b", "U+001B (a control character)"),
        (b"\x7f", "U+007F (a control character)"),
        ("\u0085".encode(), "U+0085 (a control character)"),
        ("\u009f".encode(), "U+009F (a control character)"),
    ],
)
def test_raw_control_characters_are_refused_where_they_are(raw: bytes, name: str) -> None:
    diag = only_diagnostic(b"kind: VM\nname: ab" + raw + b"c\n")
    assert f"found character {name}" in diag.message
    assert at(diag) == (2, 9)


def test_control_characters_in_comments_are_refused_too() -> None:
    diag = only_diagnostic(b"kind: VM # \x01\n")
    assert at(diag) == (1, 12)


def test_only_the_first_five_control_characters_are_reported() -> None:
    docs, diags = parse(b"a: \x01\x02\nb: \x03\nc: \x04\x05\x06\x07\n")
    assert docs == []
    assert [at(d) for d in diags] == [(1, 4), (1, 5), (2, 4), (3, 4), (3, 5)]


def test_old_mac_line_ends_count_as_lines() -> None:
    docs, diags = parse(b"# header\rkind: VM\rx: 1\r")
    assert diags == []
    assert docs[0].marks[("x",)] == Mark(3, 4)
    assert only_diagnostic(b"# a\r# b\r  \r").message == "file contains no documents"


def test_tabs_and_crlf_line_ends_are_not_control_characters() -> None:
    docs, diags = parse(b'kind: VM\r\nnote: "a\tb"\r\nx: 1\r\n')
    assert diags == []
    assert docs[0].data == {"kind": "VM", "note": "a\tb", "x": 1}
    assert docs[0].marks[("x",)] == Mark(3, 4)


@pytest.mark.parametrize("escape", ["\\0", "\\x07", "\\e", "\\u0085", "\\x7f"])
def test_control_characters_written_as_escapes_are_refused(escape: str) -> None:
    diag = only_diagnostic(f'kind: VM\nname: "ab{escape}c"\n')
    assert "string contains a control character" in diag.message
    assert at(diag) == (2, 7)
    assert diag.field == "name"


# --- empty files and wrong roots ------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        b"",
        b"   \n\n\t\n",
        b"\r\n  ",
        b"# just a comment\n\t# another",
        b"---\n",
        b"---\n---\n...\n",
        b"# header\n---\n# nothing\n",
    ],
)
def test_files_without_a_document_are_reported(source: bytes) -> None:
    diag = only_diagnostic(source)
    assert diag.message == "file contains no documents"
    assert diag.hint is not None


@pytest.mark.parametrize(
    ("source", "found", "position"),
    [
        ("- a\n- b\n", "a sequence", (1, 1)),
        ("just text\n", "a string", (1, 1)),
        ("42\n", "an integer", (1, 1)),
        ("---\nnull\n", "null", (2, 1)),
        ("'quoted'\n", "a string", (1, 1)),
    ],
)
def test_document_root_must_be_a_mapping(
    source: str, found: str, position: tuple[int, int]
) -> None:
    diag = only_diagnostic(source)
    assert diag.message == (
        f"document root is {found}; expected a mapping with apiVersion, kind, metadata and spec"
    )
    assert at(diag) == position
    assert diag.hint is not None


# --- several documents, several problems ----------------------------------------------------------


def test_a_bad_document_is_dropped_and_the_others_are_kept() -> None:
    docs, diags = parse(
        "kind: A\n---\nkind: VirtualMachine\nmetadata:\n  name: web\nspec:\n  autostart: yes\n"
        "---\nkind: C\n"
    )
    assert [d.data["kind"] for d in docs] == ["A", "C"]
    assert [d.index for d in docs] == [0, 2]
    assert len(diags) == 1
    assert at(diags[0]) == (7, 14)
    assert (diags[0].kind, diags[0].name) == ("VirtualMachine", "web")


def test_every_problem_in_a_document_is_reported() -> None:
    docs, diags = parse("a: yes\nb: 0755\nc: !x y\nd: 1:30\n")
    assert docs == []
    assert [at(d) for d in diags] == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_syntax_error_is_reported_with_position_and_earlier_documents_kept() -> None:
    docs, diags = parse("kind: A\n---\nkind: B\nname: x: y\n")
    assert [d.data for d in docs] == [{"kind": "A"}]
    assert len(diags) == 1
    assert diags[0].message.startswith("invalid YAML: mapping values are not allowed")
    assert at(diags[0]) == (4, 8)


def test_unterminated_quote_is_a_syntax_error_with_position() -> None:
    diag = only_diagnostic('kind: VM\nname: "abc\n')
    assert diag.message.startswith("invalid YAML: ")
    assert diag.line is not None and diag.column is not None


def test_diagnostics_per_file_are_capped() -> None:
    docs, diags = parse("a: [" + ", ".join(["yes"] * 2000) + "]\n")
    assert docs == []
    assert len(diags) == MAX_DIAGNOSTICS_PER_FILE + 1
    assert "the rest was not read" in diags[-1].message


# --- secrets --------------------------------------------------------------------------------------

SECRET = "hunter2-s3cr3t"


@pytest.mark.parametrize(
    ("source", "secret"),
    [
        (f"password: {SECRET}\x07\n".encode(), SECRET),
        (f'password: "{SECRET}\\x07"\n'.encode(), SECRET),
        (f'password: "{SECRET}\\0"\n'.encode(), SECRET),
        (f"password: {SECRET}\xff\n".encode("latin-1"), SECRET),
        (b"password: 190:20:31\n", "190:20:31"),
        (b"password: 0755123\n", "0755123"),
        (b"password: 2024-03-07\n", "2024-03-07"),
        (b"password: 98765432109876543210\n", "98765432109876543210"),
        (b"password: 1_234_567\n", "1_234_567"),
        (f"password: !!binary {SECRET}\n".encode(), SECRET),
        (f'password: "{SECRET}\n'.encode(), SECRET),
        (f"password: {SECRET}\nbad: [\n".encode(), SECRET),
        (f"---\n- {SECRET}\n".encode(), SECRET),
        (f"---\n{SECRET}\n".encode(), SECRET),
        (f"---\n{SECRET}: [1:30]\n".encode(), "1:30"),
    ],
)
def test_no_diagnostic_echoes_a_scalar_value(source: bytes, secret: str) -> None:
    _, diags = parse(b"kind: Secret\nmetadata:\n  name: db\n" + source)
    assert diags
    for diag in diags:
        assert secret not in diag.render()
        assert secret not in repr(diag)
