"""Strict YAML: bytes in, plain Python data with a position for every node, or diagnostics.

Built on libyaml's event stream rather than its composer. The composer recurses (and crashes
on deep nesting), expands aliases (billion laughs) and resolves scalars with YAML 1.1 rules;
here the nesting is bounded, anchors and tags are refused, and plain scalars are resolved with
YAML 1.2 core rules, refusing every value that a YAML 1.1 tool would read differently.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

import yaml
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from reconciler.model.diagnostics import Diagnostic, FieldPath, Mark, format_path

__all__ = ["MAX_DEPTH", "MAX_DIAGNOSTICS_PER_FILE", "RawDocument", "parse_yaml"]

MAX_DEPTH: Final = 64
# A hostile file can hold a million aliases in a few megabytes; past this many problems the
# rest of the file adds noise, not information.
MAX_DIAGNOSTICS_PER_FILE: Final = 1000


@dataclass(slots=True)
class RawDocument:
    """One parsed YAML document whose root is a mapping, with the position of every node."""

    file: str
    index: int
    mark: Mark
    data: Any
    marks: dict[FieldPath, Mark]
    key_marks: dict[FieldPath, Mark]

    def mark_for(self, path: FieldPath) -> Mark:
        """The location of path, else of its closest ancestor that has one."""
        marks = self.marks
        while path:
            found = marks.get(path)
            if found is not None:
                return found
            path = path[:-1]
        return marks.get((), self.mark)


# --- hints and fixed messages ---------------------------------------------------------------------

_HINT_QUOTE_BOOL = 'quote it ("...") if you mean a string, or write true/false'
_HINT_QUOTE = 'quote it ("...") if you mean a string'
_HINT_ANCHOR = "write the values out; recon does not expand anchors"
_HINT_TAG = "remove the tag; recon manifests use no tags (quote the value to make it a string)"
_HINT_MAPPING = (
    "each document (documents are separated by ---) is one resource: a mapping with "
    "apiVersion, kind, metadata and spec"
)
_HINT_CONTROL = "remove the character; binary data belongs base64-encoded in a string"
_HINT_EMPTY = (
    "add a resource (apiVersion, kind, metadata, spec), or remove the file from the manifest paths"
)


class _Problem:
    """Why a plain scalar is refused; phrased to follow "plain scalar" or "mapping key 'x'"."""

    __slots__ = ("hint", "what")

    def __init__(self, what: str, hint: str) -> None:
        self.what = what
        self.hint = hint


_P_BOOL11 = _Problem(
    "would be read as a boolean by YAML 1.1 tools but as a string by YAML 1.2 tools",
    _HINT_QUOTE_BOOL,
)
_P_OCTAL = _Problem(
    "is a number with a leading zero, which YAML 1.1 tools would read as an octal number",
    'quote it ("...") if you mean a string such as a file mode; for a number, drop the '
    "leading zeros, or write octal with the 0o prefix",
)
_P_BINARY = _Problem(
    "would be read as a binary number by YAML 1.1 tools but as a string by YAML 1.2 tools",
    'quote it ("...") if you mean a string, or write the number in decimal or hexadecimal',
)
_P_SIGNED_HEX = _Problem(
    "is a signed hexadecimal number, which YAML 1.1 tools would read as a number but YAML 1.2 "
    "tools as a string",
    'quote it ("...") if you mean a string, or write the number in decimal',
)
_P_SEXAGESIMAL = _Problem(
    "would be read as a sexagesimal (base 60) number by YAML 1.1 tools",
    'quote it ("...") if you mean a string, such as a time or a port mapping',
)
_P_TIMESTAMP = _Problem(
    "would be read as a date or timestamp by YAML 1.1 tools",
    'quote it ("...") to keep it a string',
)
_P_UNDERSCORE = _Problem(
    "is a number with underscores, which YAML 1.1 tools would read as a number but YAML 1.2 "
    "tools as a string",
    'write the number without underscores, or quote it ("...") if you mean a string',
)
_P_INF_NAN = _Problem(
    "is an infinite or not-a-number float (.inf, .nan); no manifest field accepts one",
    'write a finite number, or quote it ("...") if you mean a string',
)
_P_INT_RANGE = _Problem(
    "is an integer out of range; expected a signed 64-bit integer (-2^63 to 2^63-1)",
    _HINT_QUOTE,
)
_P_FLOAT_RANGE = _Problem(
    "is a number out of range for a 64-bit float",
    _HINT_QUOTE,
)
_P_MERGE = _Problem("is the YAML 1.1 merge key, which recon does not support", _HINT_ANCHOR)


# --- plain scalar resolution ----------------------------------------------------------------------

_NULLS: Final = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS: Final = {
    "true": True,
    "True": True,
    "TRUE": True,
    "false": False,
    "False": False,
    "FALSE": False,
}
_BOOL11_WORDS: Final = frozenset({"yes", "no", "on", "off", "y", "n"})
_LONGEST_WORD: Final = 5  # "false"; a longer plain scalar starting with a letter is a string
# First characters with which a plain scalar can be anything but a string.
_MAYBE_SPECIAL: Final = frozenset("0123456789+-.~<nNtTfFyYoO")

_INT_DEC = re.compile(r"[-+]?[0-9]+")
_INT_HEX = re.compile(r"0x[0-9a-fA-F]+")
_INT_OCT = re.compile(r"0o[0-7]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_INF_NAN = re.compile(r"[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)")
_BINARY = re.compile(r"[-+]?0b[01_]+")
_SIGNED_HEX = re.compile(r"[-+]0x[0-9a-fA-F_]+")
_SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
# Broader than YAML 1.1's own pattern (one-digit month and day without a time) because other
# 1.1-era parsers, Go's yaml.v2 among them, read those as dates too.
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
    r"(?:(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?"
    r"(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)?"
)
_UNDERSCORE_NUMBER = re.compile(
    r"[-+]?(?:0x[0-9a-fA-F_]+|[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?"
    r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?)"
)
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


def _resolve_plain(value: str) -> Any:
    """The value of a plain scalar, or the _Problem that makes it unacceptable."""
    if value in _NULLS:
        return None
    boolean = _BOOLS.get(value)
    if boolean is not None:
        return boolean
    first = value[0]
    if first in "0123456789+-.":
        return _resolve_number(value)
    if len(value) <= 3 and value.lower() in _BOOL11_WORDS:
        return _P_BOOL11
    if value == "<<":
        return _P_MERGE
    return value


def _resolve_number(value: str) -> Any:
    if _INT_DEC.fullmatch(value):
        digits = value.lstrip("+-")
        if len(digits) > 1 and digits[0] == "0":
            return _P_OCTAL
        # int() of a huge digit string is quadratic (and refused past 4300 digits), so the
        # range is judged by length first.
        if len(digits) > 19:
            return _P_INT_RANGE
        number = int(value)
        return number if _INT64_MIN <= number <= _INT64_MAX else _P_INT_RANGE
    if _INT_HEX.fullmatch(value):
        if len(value[2:].lstrip("0")) > 16:
            return _P_INT_RANGE
        number = int(value, 16)
        return number if number <= _INT64_MAX else _P_INT_RANGE
    if _INT_OCT.fullmatch(value):
        if len(value[2:].lstrip("0")) > 22:
            return _P_INT_RANGE
        number = int(value[2:], 8)
        return number if number <= _INT64_MAX else _P_INT_RANGE
    if _FLOAT.fullmatch(value):
        real = float(value)
        return real if not math.isinf(real) else _P_FLOAT_RANGE
    if _INF_NAN.fullmatch(value):
        return _P_INF_NAN
    if _BINARY.fullmatch(value):
        return _P_BINARY
    if _SIGNED_HEX.fullmatch(value):
        return _P_SIGNED_HEX
    if _SEXAGESIMAL.fullmatch(value):
        return _P_SEXAGESIMAL
    if _TIMESTAMP.fullmatch(value):
        return _P_TIMESTAMP
    if "_" in value and _UNDERSCORE_NUMBER.fullmatch(value):
        return _P_UNDERSCORE
    return value


# --- raw text checks ------------------------------------------------------------------------------

# C0 controls except tab, LF and CR; DEL; C1 controls; and the two non-characters libyaml
# refuses with an error that would otherwise carry no line number.
_FORBIDDEN_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")
_MAX_CHAR_DIAGNOSTICS: Final = 5
_LINE_BREAK = re.compile("\r\n|[\r\n\u2028\u2029]")
_UTF8_BOM: Final = b"\xef\xbb\xbf"
# The first line holding something other than blanks or a comment.
_CONTENT_LINE = re.compile(r"(?:^|(?<=\r))[ \t]*[^ \t\r\n#]", re.MULTILINE)


def _position(text: str, index: int) -> Mark:
    """1-based line and column of text[index], counting line breaks as libyaml does."""
    line = 1
    line_start = 0
    for brk in _LINE_BREAK.finditer(text, 0, index):
        line += 1
        line_start = brk.end()
    return Mark(line, index - line_start + 1)


def _wide_encoding(content: bytes) -> str | None:
    """The name of the encoding when the bytes look like UTF-16 or UTF-32, else None."""
    if content.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "UTF-32"
    if content.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16"
    # Without a BOM, ASCII text (which manifests mostly are) leaves NULs at fixed offsets; the
    # YAML spec detects encodings the same way. Requiring the pattern across a sample keeps a
    # UTF-8 file with a stray NUL from being misnamed.
    sample = content[:64]
    sample = sample[: len(sample) - len(sample) % 4] if len(sample) >= 4 else sample
    if len(sample) >= 4:
        for offset in (0, 3):
            others = [sample[i] for i in range(len(sample)) if i % 4 != offset]
            if others.count(0) == len(others) and sample[offset::4].count(0) == 0:
                return "UTF-32"
    if len(sample) >= 2:
        for parity in (0, 1):
            nuls = sample[1 - parity :: 2]
            chars = sample[parity::2]
            if (
                nuls[0] == 0
                and nuls.count(0) * 2 >= len(nuls)
                and chars.count(0) * 4 < max(len(chars), 1)
            ):
                return "UTF-16"
    return None


def _char_name(char: str) -> str:
    code = ord(char)
    if code == 0:
        return "U+0000 (NUL)"
    if code in (0xFFFE, 0xFFFF):
        return f"U+{code:04X} (a non-character)"
    return f"U+{code:04X} (a control character)"


def _decode(content: bytes, file: str) -> tuple[str | None, list[Diagnostic]]:
    wide = _wide_encoding(content)
    if wide is not None:
        return None, [
            Diagnostic(
                file,
                None,
                None,
                f"file is {wide} encoded; recon reads UTF-8",
                hint=f"convert it, e.g. iconv -f {wide} -t UTF-8 FILE > FILE.utf8",
            )
        ]
    if content.startswith(_UTF8_BOM):
        content = content[len(_UTF8_BOM) :]
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Everything before the first bad byte decodes, which gives the column in characters.
        good = content[: exc.start].decode("utf-8")
        mark = _position(good, len(good))
        return None, [
            Diagnostic(
                file,
                mark.line,
                mark.column,
                "file is not valid UTF-8: found a byte sequence that is not UTF-8 here",
                hint="recon reads UTF-8; convert the file, e.g. iconv -f LATIN1 -t UTF-8",
            )
        ]
    diags: list[Diagnostic] = []
    for found in _FORBIDDEN_CHAR.finditer(text):
        if len(diags) == _MAX_CHAR_DIAGNOSTICS:
            break
        mark = _position(text, found.start())
        diags.append(
            Diagnostic(
                file,
                mark.line,
                mark.column,
                f"found character {_char_name(found.group())}; expected printable text",
                hint=_HINT_CONTROL,
            )
        )
    return text, diags


# --- the event loop -------------------------------------------------------------------------------

_NO_KEY: Final[Any] = object()  # the mapping on top of the stack expects a key
_BAD_KEY: Final[Any] = object()  # the key was refused: its value is parsed and dropped
_INVALID: Final[Any] = object()  # a node already reported; stands in for its value
_EMPTY: Final[Any] = object()  # an empty document (a bare --- or a trailing separator)

_ROOT: Final = 0
_MAP: Final = 1
_SEQ: Final = 2

_CORE_TAG_PREFIX: Final = "tag:yaml.org,2002:"


class _TooMany(Exception):
    """Raised when a file has produced MAX_DIAGNOSTICS_PER_FILE diagnostics."""


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a sequence"
    return "a string"


def _show_key(key: str) -> str:
    shown = key if key.isprintable() else key.encode("unicode_escape").decode("ascii")
    if len(shown) > 64:
        shown = shown[:61] + "..."
    return f"'{shown}'"


def _show_tag(tag: str) -> str:
    if tag.startswith(_CORE_TAG_PREFIX):
        tag = "!!" + tag[len(_CORE_TAG_PREFIX) :]
    shown = tag if tag.isprintable() else tag.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _resource_of(root: Any) -> tuple[str | None, str | None]:
    if not isinstance(root, dict):
        return None, None
    kind = root.get("kind")
    metadata = root.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None

    def shown(value: Any) -> str | None:
        if not isinstance(value, str) or not value or not value.isprintable():
            return None
        return value if len(value) <= 64 else value[:61] + "..."

    return shown(kind), shown(name)


def _child_path(kind: int, obj: Any, path: FieldPath, key: Any, key_path: FieldPath) -> FieldPath:
    """The path of a node starting now in the collection described, for a diagnostic."""
    if kind == _SEQ:
        return (*path, len(obj))
    if kind == _MAP:
        return key_path if key is not _NO_KEY else path
    return ()


def parse_yaml(
    content: bytes, file: str, *, max_depth: int = MAX_DEPTH
) -> tuple[list[RawDocument], list[Diagnostic]]:
    """Every acceptable document of one file, and a diagnostic for everything else.

    A document with any problem is left out; the other documents of the file still count.
    Nothing is raised for bad input.
    """
    text, diags = _decode(content, file)
    if text is None or diags:
        return [], diags
    if _CONTENT_LINE.search(text) is None:
        # Decided here because libyaml trips over a tab on an otherwise blank line.
        return [], [Diagnostic(file, None, None, "file contains no documents", hint=_HINT_EMPTY)]
    docs: list[RawDocument] = []
    _parse_events(text, file, max_depth, docs, diags)
    return docs, diags


def _parse_events(
    text: str, file: str, max_depth: int, docs: list[RawDocument], diags: list[Diagnostic]
) -> None:
    new_mark = Mark
    doc_index = 0
    found_document = False
    doc_mark = Mark(1, 1)
    doc_diags_start = 0
    root: Any = _EMPTY
    marks: dict[FieldPath, Mark] = {}
    key_marks: dict[FieldPath, Mark] = {}
    # The innermost open collection lives in these locals; enclosing ones are on the stack.
    stack: list[tuple[Any, FieldPath, int, Any, FieldPath]] = []
    cur_obj: Any = None
    cur_path: FieldPath = ()
    cur_kind = _ROOT
    cur_key: Any = _NO_KEY
    cur_key_path: FieldPath = ()

    def report(
        message: str, mark: Mark | None, path: FieldPath | None, hint: str | None = None
    ) -> None:
        diags.append(
            Diagnostic(
                file,
                mark.line if mark is not None else None,
                mark.column if mark is not None else None,
                message,
                field=format_path(path) if path else None,
                hint=hint,
            )
        )
        if len(diags) >= MAX_DIAGNOSTICS_PER_FILE:
            raise _TooMany

    def check_node(event: Any, mark: Mark, path: FieldPath) -> None:
        if event.anchor is not None:
            report(f"anchor '&{_show_tag(event.anchor)}' is not allowed", mark, path, _HINT_ANCHOR)
        if event.tag is not None:
            report(f"tag '{_show_tag(event.tag)}' is not allowed", mark, path, _HINT_TAG)

    loader = yaml.CSafeLoader(text)
    get_event: Callable[[], Any] = loader.get_event
    try:
        while True:
            event = get_event()
            cls = event.__class__
            if cls is ScalarEvent:
                start = event.start_mark
                mark = new_mark(start.line + 1, start.column + 1)
                value = event.value
                style = event.style
                if event.tag is not None or event.anchor is not None:
                    check_node(
                        event, mark, _child_path(cur_kind, cur_obj, cur_path, cur_key, cur_key_path)
                    )
                    value = _INVALID
                elif style == "":
                    if not value or (
                        value[0] in _MAYBE_SPECIAL
                        and (len(value) <= _LONGEST_WORD or not value[0].isalpha())
                    ):
                        value = _resolve_plain(value)
                        if value.__class__ is _Problem:
                            if cur_kind == _ROOT:
                                value = event.value  # reported below: the root is no mapping
                            else:
                                if cur_kind == _MAP and cur_key is _NO_KEY:
                                    report(
                                        f"mapping key {_show_key(event.value)} {value.what}",
                                        mark,
                                        (*cur_path, event.value),
                                        value.hint,
                                    )
                                else:
                                    report(
                                        f"plain scalar {value.what}",
                                        mark,
                                        _child_path(
                                            cur_kind, cur_obj, cur_path, cur_key, cur_key_path
                                        ),
                                        value.hint,
                                    )
                                value = _INVALID
                elif style == '"' and _FORBIDDEN_CHAR.search(value) is not None:
                    report(
                        "string contains a control character (written as an escape "
                        "sequence); expected printable text",
                        mark,
                        _child_path(cur_kind, cur_obj, cur_path, cur_key, cur_key_path),
                        _HINT_CONTROL,
                    )
                    value = _INVALID
            elif cls is MappingStartEvent or cls is SequenceStartEvent:
                start = event.start_mark
                mark = new_mark(start.line + 1, start.column + 1)
                if len(stack) >= max_depth:
                    # Stop reading at once: libyaml takes quadratic time over very deep
                    # nesting, and the rest of the file cannot be trusted to resynchronise.
                    report(
                        f"nesting is deeper than {max_depth} levels; the rest of the file "
                        "was not read",
                        mark,
                        _child_path(cur_kind, cur_obj, cur_path, cur_key, cur_key_path),
                        "flatten the structure; no manifest needs this much nesting",
                    )
                    _attribute(diags, doc_diags_start, root)
                    break
                if event.tag is not None or event.anchor is not None:
                    check_node(
                        event, mark, _child_path(cur_kind, cur_obj, cur_path, cur_key, cur_key_path)
                    )
                new: Any = {} if cls is MappingStartEvent else []
                saved_key: Any = _NO_KEY
                saved_key_path = cur_key_path
                if cur_kind == _MAP:
                    if cur_key is _NO_KEY:
                        report(
                            f"mapping key is {_type_name(new)}; expected a string",
                            mark,
                            cur_path,
                            "recon manifests use only plain string keys",
                        )
                        saved_key = _BAD_KEY
                        saved_key_path = cur_path
                        path: FieldPath = (*cur_path, "?")
                    else:
                        path = cur_key_path
                        if cur_key is not _BAD_KEY:
                            cur_obj[cur_key] = new
                        marks[path] = mark
                elif cur_kind == _SEQ:
                    path = (*cur_path, len(cur_obj))
                    cur_obj.append(new)
                    marks[path] = mark
                else:
                    path = ()
                    root = new
                    marks[path] = mark
                    if cls is SequenceStartEvent:
                        report(
                            "document root is a sequence; expected a mapping with "
                            "apiVersion, kind, metadata and spec",
                            mark,
                            None,
                            _HINT_MAPPING,
                        )
                stack.append((cur_obj, cur_path, cur_kind, saved_key, saved_key_path))
                cur_obj = new
                cur_path = path
                cur_kind = _MAP if cls is MappingStartEvent else _SEQ
                cur_key = _NO_KEY
                continue
            elif cls is MappingEndEvent or cls is SequenceEndEvent:
                cur_obj, cur_path, cur_kind, cur_key, cur_key_path = stack.pop()
                continue
            elif cls is AliasEvent:
                start = event.start_mark
                mark = new_mark(start.line + 1, start.column + 1)
                report(
                    f"alias '*{_show_tag(event.anchor)}' is not allowed",
                    mark,
                    _child_path(cur_kind, cur_obj, cur_path, cur_key, cur_key_path),
                    _HINT_ANCHOR,
                )
                value = _INVALID
            elif cls is DocumentStartEvent:
                start = event.start_mark
                doc_mark = new_mark(start.line + 1, start.column + 1)
                doc_diags_start = len(diags)
                root = _EMPTY
                marks = {}
                key_marks = {}
                cur_obj, cur_path, cur_kind, cur_key, cur_key_path = None, (), _ROOT, _NO_KEY, ()
                continue
            elif cls is DocumentEndEvent:
                if root is not _EMPTY:
                    found_document = True
                if len(diags) > doc_diags_start:
                    _attribute(diags, doc_diags_start, root)
                elif root is not _EMPTY:
                    docs.append(RawDocument(file, doc_index, doc_mark, root, marks, key_marks))
                doc_index += 1
                continue
            elif event is None or cls is StreamEndEvent:
                break
            else:
                continue

            # A scalar or alias node: place it in the open collection.
            if cur_kind == _MAP:
                if cur_key is _NO_KEY:
                    if value.__class__ is str:
                        path = (*cur_path, value)
                        first = key_marks.get(path)
                        if first is not None:
                            report(
                                f"duplicate key {_show_key(value)} (first at line "
                                f"{first.line}, column {first.column})",
                                mark,
                                path,
                                "each key may appear once in a mapping; remove one",
                            )
                            cur_key = _BAD_KEY
                            cur_key_path = path
                        else:
                            key_marks[path] = mark
                            cur_key = value
                            cur_key_path = path
                    else:
                        if value is not _INVALID:
                            report(
                                f"mapping key is {_type_name(value)}; expected a string",
                                mark,
                                cur_path,
                                'quote the key ("...") to make it a string',
                            )
                        cur_key = _BAD_KEY
                        cur_key_path = cur_path
                else:
                    if cur_key is not _BAD_KEY:
                        cur_obj[cur_key] = value
                        marks[cur_key_path] = mark
                    cur_key = _NO_KEY
            elif cur_kind == _SEQ:
                marks[(*cur_path, len(cur_obj))] = mark
                cur_obj.append(value)
            elif (
                value is None
                and event.__class__ is ScalarEvent
                and event.value == ""
                and event.style == ""
            ):
                root = _EMPTY
            else:
                root = value
                marks[()] = mark
                if value is not _INVALID:
                    report(
                        f"document root is {_type_name(value)}; expected a mapping with "
                        "apiVersion, kind, metadata and spec",
                        mark,
                        None,
                        _HINT_MAPPING,
                    )
    except _TooMany:
        _attribute(diags, doc_diags_start, root)
        message = f"stopped after {MAX_DIAGNOSTICS_PER_FILE} problems; the rest was not read"
        diags.append(Diagnostic(file, None, None, message, hint="fix these and run again"))
    except yaml.YAMLError as exc:
        _attribute(diags, doc_diags_start, root)
        diags.append(_syntax_diagnostic(file, text, exc))
        return
    finally:
        loader.dispose()
    if not diags and not found_document:
        diags.append(Diagnostic(file, None, None, "file contains no documents", hint=_HINT_EMPTY))


def _attribute(diags: list[Diagnostic], start: int, root: Any) -> None:
    """Name the resource on the diagnostics of one document, as far as it was read."""
    kind, name = _resource_of(root)
    if kind is None:
        return
    for i in range(start, len(diags)):
        diags[i] = replace(diags[i], kind=kind, name=name)


def _syntax_diagnostic(file: str, text: str, exc: yaml.YAMLError) -> Diagnostic:
    # libyaml's problem and context strings are fixed phrases, never pieces of the document,
    # so they can be shown; the exception's own str() is not used because PyYAML may quote
    # the offending character.
    problem = getattr(exc, "problem", None) or "the text is not valid YAML"
    context = getattr(exc, "context", None)
    mark = getattr(exc, "problem_mark", None)
    line: int | None = None
    column: int | None = None
    if mark is not None:
        line, column = mark.line + 1, mark.column + 1
    else:
        # A ReaderError has an offset instead of a mark; the forbidden-character check should
        # have caught its causes first, so this is a fallback.
        offset = getattr(exc, "position", None)
        if isinstance(offset, int):
            position = _position(text, min(offset, len(text)))
            line, column = position.line, position.column
        problem = getattr(exc, "reason", None) or problem
    message = f"invalid YAML: {problem}"
    if context:
        message += f" ({context})"
    return Diagnostic(
        file,
        line,
        column,
        message,
        hint="check indentation, quoting and that every ':' is followed by a space",
    )
