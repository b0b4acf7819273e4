"""Strict YAML: bytes in, plain Python data with a position for every node, or diagnostics.

Built on libyaml's event stream rather than its composer. The composer recurses (and crashes
on deep nesting), expands aliases (billion laughs) and resolves scalars with YAML 1.1 rules;
here the nesting is bounded, anchors and tags are refused, and plain scalars are resolved with
YAML 1.2 core rules, refusing every value that a YAML 1.1 tool would read differently.

This module is the loader: the event loop that builds the data and its positions. The parts
it applies live beside it: raw_document (the RawDocument it returns), yaml_text (decoding and
checks of the raw text) and yaml_rules (how plain scalars resolve, and the hints).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from dataclasses import replace
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

from reconciler.load.raw_document import RawDocument, place_format, unpack
from reconciler.load.yaml_rules import (
    _HINT_ANCHOR,
    _HINT_CONTROL,
    _HINT_EMPTY,
    _HINT_MAPPING,
    _HINT_TAG,
    _LONGEST_WORD,
    _MAYBE_SPECIAL,
    _Problem,
    _resolve_plain,
)
from reconciler.load.yaml_text import _CONTENT_LINE, _FORBIDDEN_CHAR, _decode, _position
from reconciler.model.diagnostics import Diagnostic, FieldPath, Mark, format_path

__all__ = ["MAX_DEPTH", "MAX_DIAGNOSTICS_PER_FILE", "RawDocument", "parse_yaml"]

MAX_DEPTH: Final = 64
# A hostile file can hold a million aliases in a few megabytes; past this many problems the
# rest of the file adds noise, not information.
MAX_DIAGNOSTICS_PER_FILE: Final = 1000


# --- the event loop -------------------------------------------------------------------------------

_NO_KEY: Final[Any] = object()  # the mapping on top of the stack expects a key
_BAD_KEY: Final[Any] = object()  # the key was refused: its value is parsed and dropped
_INVALID: Final[Any] = object()  # a node already reported; stands in for its value
_EMPTY: Final[Any] = object()  # an empty document (a bare --- or a trailing separator)

_ROOT: Final = 0
_MAP: Final = 1
_SEQ: Final = 2

_CORE_TAG_PREFIX: Final = "tag:yaml.org,2002:"


_FIRST_MARK: Final = Mark(1, 1)


def _mark(start: Any) -> Mark:
    """The Mark of a libyaml mark (0-based): made only for a diagnostic or a document."""
    return Mark(start.line + 1, start.column + 1)


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
    typecode, shift = place_format(text)
    places: array[int] = array(typecode)
    add = places.append
    doc_index = 0
    found_document = False
    doc_mark = _FIRST_MARK
    doc_diags_start = 0
    root: Any = _EMPTY
    # The place of each key of the document read so far, to report a duplicate key.
    key_places: dict[FieldPath, int] = {}
    # The innermost open collection lives in these locals; enclosing ones are on the stack.
    stack: list[tuple[Any, FieldPath, int, Any, FieldPath]] = []
    cur_obj: Any = None
    cur_path: FieldPath = ()
    cur_kind = _ROOT
    cur_key: Any = _NO_KEY
    cur_key_path: FieldPath = ()

    def report(message: str, mark: Any, path: FieldPath | None, hint: str | None = None) -> None:
        # mark is libyaml's (0-based), or None.
        diags.append(
            Diagnostic(
                file,
                mark.line + 1 if mark is not None else None,
                mark.column + 1 if mark is not None else None,
                message,
                field=format_path(path) if path else None,
                hint=hint,
            )
        )
        if len(diags) >= MAX_DIAGNOSTICS_PER_FILE:
            raise _TooMany

    def check_node(event: Any, mark: Any, path: FieldPath) -> None:
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
                mark = event.start_mark
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
                mark = event.start_mark
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
                        add(mark.line << shift | mark.column)
                elif cur_kind == _SEQ:
                    path = (*cur_path, len(cur_obj))
                    cur_obj.append(new)
                    add(mark.line << shift | mark.column)
                else:
                    path = ()
                    root = new
                    add(mark.line << shift | mark.column)
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
                mark = event.start_mark
                report(
                    f"alias '*{_show_tag(event.anchor)}' is not allowed",
                    mark,
                    _child_path(cur_kind, cur_obj, cur_path, cur_key, cur_key_path),
                    _HINT_ANCHOR,
                )
                value = _INVALID
            elif cls is DocumentStartEvent:
                start = event.start_mark
                doc_mark = _mark(start) if start.line or start.column else _FIRST_MARK
                doc_diags_start = len(diags)
                root = _EMPTY
                if places:
                    places = array(typecode)
                    add = places.append
                key_places = {}
                cur_obj, cur_path, cur_kind, cur_key, cur_key_path = None, (), _ROOT, _NO_KEY, ()
                continue
            elif cls is DocumentEndEvent:
                if root is not _EMPTY:
                    found_document = True
                if len(diags) > doc_diags_start:
                    _attribute(diags, doc_diags_start, root)
                elif root is not _EMPTY:
                    docs.append(RawDocument(file, doc_index, doc_mark, root, places, shift))
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
                        first = key_places.get(path)
                        if first is not None:
                            seen = unpack(first, shift)
                            report(
                                f"duplicate key {_show_key(value)} (first at line "
                                f"{seen.line}, column {seen.column})",
                                mark,
                                path,
                                "each key may appear once in a mapping; remove one",
                            )
                            cur_key = _BAD_KEY
                            cur_key_path = path
                        else:
                            key_places[path] = place = mark.line << shift | mark.column
                            add(place)
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
                        add(mark.line << shift | mark.column)
                    cur_key = _NO_KEY
            elif cur_kind == _SEQ:
                add(mark.line << shift | mark.column)
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
                add(mark.line << shift | mark.column)
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
