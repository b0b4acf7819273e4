"""The strictness rules for plain scalars, and the hints every refusal in strict YAML carries.

Plain scalars are resolved with YAML 1.2 core rules; a value that a YAML 1.1 tool would read
differently (yes/no, leading-zero octal, sexagesimal, timestamps, ...) resolves to a _Problem
saying why it is refused. The event loop in yamlsafe places the values and reports the problems.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

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


# Every character any of the patterns below can match. A scalar with another character
# ("512Mi", "10.0.0.1/24", "50%") is a string, and is returned without trying each pattern.
_NUMBER_CHARS: Final = frozenset("0123456789+-._: \t" + "xob" + "abcdefABCDEF" + "inftINFTNZ")


def _resolve_number(value: str) -> Any:
    if not _NUMBER_CHARS.issuperset(value):
        return value
    return _number_or_problem(value)


def _number_or_problem(value: str) -> Any:
    """The number a plain scalar written like one is, its _Problem, or the string itself."""
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
