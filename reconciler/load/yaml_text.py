"""Strict YAML before parsing: bytes -> text, refusing what libyaml would misread or not place.

UTF-16/32 and invalid UTF-8 are refused, a UTF-8 BOM is dropped, control characters are
reported at their line:column; also the line:column of a text index as libyaml counts it.
"""

from __future__ import annotations

import re
from typing import Final

from reconciler.load.yaml_rules import _HINT_CONTROL
from reconciler.model.diagnostics import Diagnostic, Mark

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
    if 0 not in sample:
        return None  # both patterns below need NULs
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
