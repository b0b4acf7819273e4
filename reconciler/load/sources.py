"""Where manifests come from: paths and directories expanded, files and stdin read, then parsed.

Sizes are checked before anything is read, so a huge or endless input costs a stat call (or
max_bytes + 1 bytes of a stream), not memory.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Sequence
from typing import BinaryIO, Final

from reconciler.load.reported import expand_lists
from reconciler.load.yamlsafe import RawDocument, parse_yaml
from reconciler.model.diagnostics import Diagnostic

__all__ = ["MAX_FILE_BYTES", "STDIN", "STDIN_LABEL", "expand_paths", "read_sources"]

MAX_FILE_BYTES: Final = 4 * 1024 * 1024
MAX_FILE_BYTES_ENV: Final = "RECON_MAX_FILE_BYTES"
STDIN: Final = "-"
STDIN_LABEL: Final = "<stdin>"
MANIFEST_SUFFIXES: Final = (".yaml", ".yml")

_HINT_TOO_LARGE = (
    f"split it into smaller files, or raise the limit with {MAX_FILE_BYTES_ENV}=<bytes>"
)


def expand_paths(paths: Sequence[str]) -> tuple[list[str], list[Diagnostic]]:
    """Files to read, in order: files as given, directories as their manifests, "-" as is.

    Directories are walked recursively for *.yaml and *.yml, skipping hidden entries, and
    listed in path order. Symlinked directories are followed (what a prune concludes must not
    rest on files that were silently left out); a directory reached a second time, through a
    loop or a second link, is read once. A file named twice, reached both directly and through
    a directory, or under two spellings, is read once.
    """
    files: list[str] = []
    diags: list[Diagnostic] = []
    seen: set[str] = set()

    def add(path: str, normal: str | None = None) -> None:
        if normal is None:
            normal = os.path.realpath(path)
        if normal not in seen:
            seen.add(normal)
            files.append(path)

    for path in paths:
        if path == STDIN:
            files.append(path)
        elif os.path.isdir(path):
            found, problems = _walk(path)
            diags += problems
            if not found and not problems:
                diags.append(
                    Diagnostic(
                        path,
                        None,
                        None,
                        "directory contains no manifest files (*.yaml, *.yml)",
                        hint="check the path; hidden files and directories are skipped",
                    )
                )
            for name, real in found:
                add(name, real)
        elif os.path.lexists(path):
            # Named explicitly, so read whatever it is called (and whatever kind of file it
            # is: a pipe from process substitution works too).
            add(path)
        else:
            diags.append(
                Diagnostic(
                    path,
                    None,
                    None,
                    "no such file or directory",
                    hint="check the path; use - to read manifests from standard input",
                )
            )
    return files, diags


def _walk(top: str) -> tuple[list[tuple[str, str]], list[Diagnostic]]:
    """The manifests under top, each with its real path (for telling one file read twice)."""
    found: list[tuple[list[str], str, str]] = []
    diags: list[Diagnostic] = []

    def on_error(exc: OSError) -> None:
        diags.append(
            Diagnostic(
                exc.filename or top,
                None,
                None,
                f"cannot read directory: {exc.strerror or 'unknown error'}",
            )
        )

    visited: set[str] = set()
    for directory, subdirs, names in os.walk(top, onerror=on_error, followlinks=True):
        real = os.path.realpath(directory)
        if real in visited:
            subdirs[:] = []
            continue
        visited.add(real)
        # Sorted, so that which of two links to one directory is read is not left to chance.
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        relative = os.path.relpath(directory, top)
        parts = [] if relative == os.curdir else relative.split(os.sep)
        for name in names:
            if not name.startswith(".") and name.endswith(MANIFEST_SUFFIXES):
                full = os.path.join(directory, name)
                # In a directory whose real path is known, only a link needs resolving: one
                # lstat instead of one per component of the path.
                normal = (
                    os.path.realpath(full) if os.path.islink(full) else os.path.join(real, name)
                )
                found.append(([*parts, name], full, normal))
    # Sorting by components keeps a directory's files together: "a/x.yaml" before "a-b.yaml".
    found.sort()
    return [(full, normal) for _, full, normal in found], diags


def _limit_from_env() -> tuple[int, list[Diagnostic]]:
    raw = os.environ.get(MAX_FILE_BYTES_ENV)
    if raw is None or not raw.strip():
        return MAX_FILE_BYTES, []
    try:
        limit = int(raw.strip())
    except ValueError:
        limit = 0
    if limit <= 0:
        return MAX_FILE_BYTES, [
            Diagnostic(
                f"${MAX_FILE_BYTES_ENV}",
                None,
                None,
                f"{MAX_FILE_BYTES_ENV} is not a positive whole number of bytes",
                hint=f"set it to a number such as {MAX_FILE_BYTES}, or unset it",
            )
        ]
    return limit, []


def _read_capped(stream: BinaryIO, max_bytes: int) -> bytes:
    """At most max_bytes + 1 bytes: enough to know that a stream is over the limit."""
    chunks: list[bytes] = []
    remaining = max_bytes + 1
    while remaining > 0:
        # A raw stream or a pipe may return less than asked before its end.
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _too_large(label: str, max_bytes: int, size: int | None = None) -> Diagnostic:
    found = f"is {size} bytes" if size is not None else f"is larger than {max_bytes} bytes"
    noun = "input" if label == STDIN_LABEL else "file"
    return Diagnostic(
        label, None, None, f"{noun} {found}; the limit is {max_bytes} bytes", hint=_HINT_TOO_LARGE
    )


def _read_file(path: str, max_bytes: int) -> bytes | Diagnostic:
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            return Diagnostic(path, None, None, "is a directory, not a manifest file")
        if stat.S_ISREG(info.st_mode) and info.st_size > max_bytes:
            return _too_large(path, max_bytes, info.st_size)
        with open(path, "rb") as handle:
            # Capped even for regular files: one can grow between the stat and the read.
            content = _read_capped(handle, max_bytes)
    except OSError as exc:
        return Diagnostic(path, None, None, f"cannot read file: {exc.strerror or 'unknown error'}")
    return content if len(content) <= max_bytes else _too_large(path, max_bytes)


def _read_stdin(stream: BinaryIO, max_bytes: int) -> bytes | Diagnostic:
    try:
        content = _read_capped(stream, max_bytes)
    except OSError as exc:
        return Diagnostic(
            STDIN_LABEL,
            None,
            None,
            f"cannot read standard input: {exc.strerror or 'unknown error'}",
        )
    return content if len(content) <= max_bytes else _too_large(STDIN_LABEL, max_bytes)


def read_sources(
    paths: Sequence[str], *, stdin: BinaryIO | None = None, max_bytes: int | None = None
) -> tuple[list[RawDocument], list[Diagnostic]]:
    """The documents of every path, in order, and every problem met on the way.

    "-" reads standard input (stdin, default sys.stdin.buffer), labelled "<stdin>". max_bytes
    (default: $RECON_MAX_FILE_BYTES, else MAX_FILE_BYTES) caps each input. Nothing is raised
    for bad input: an unreadable or invalid file is a diagnostic and the next file is read.
    """
    diags: list[Diagnostic] = []
    if max_bytes is None:
        max_bytes, env_diags = _limit_from_env()
        diags += env_diags
    files, expand_diags = expand_paths(paths)
    diags += expand_diags
    docs: list[RawDocument] = []
    stdin_read = False
    for path in files:
        if path != STDIN:
            label = path
            content = _read_file(path, max_bytes)
        elif stdin_read:
            diags.append(
                Diagnostic(
                    STDIN_LABEL,
                    None,
                    None,
                    "standard input (-) is named more than once",
                    hint="name - once; standard input can only be read a single time",
                )
            )
            continue
        else:
            stdin_read = True
            label = STDIN_LABEL
            content = _read_stdin(stdin if stdin is not None else sys.stdin.buffer, max_bytes)
        if isinstance(content, Diagnostic):
            diags.append(content)
            continue
        file_docs, file_diags = parse_yaml(content, label)
        file_docs, list_diags = expand_lists(file_docs)
        docs += file_docs
        diags += file_diags + list_diags
    return docs, diags
