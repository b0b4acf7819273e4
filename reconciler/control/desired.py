"""Desired state for the loop: manifests re-read at every pass, keeping the last good version of
a file that is momentarily broken (an editor half way through a save), so nothing is deleted
because a file is empty or does not parse."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.load.sources import expand_paths, read_sources
from reconciler.load.validate import ValidationResult, join_results, validate_documents
from reconciler.model.diagnostics import Diagnostic
from reconciler.model.resource import Resource


@dataclass(slots=True)
class Desired:
    resources: list[Resource] | None  # None: the set is invalid as a whole; apply nothing
    diagnostics: list[Diagnostic] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # files whose last good version was used
    fingerprint: str = ""
    # False when a broken file has no last good version: its resources are unknown, so
    # nothing may be pruned on this pass.
    complete: bool = True


class FileSet:
    """The manifests under some paths, file by file, each with its last good documents.

    A pass reads again only the files whose stat changed (size, times, inode: editors and
    `git checkout` replace files or rewrite them, and both show), and validates again only
    the files whose content changed; the checks across files run on the whole set every
    time."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(paths)
        # path -> (stat of the file when read, sha256 of its content)
        self._seen: dict[str, tuple[tuple[int, int, int, int], str]] = {}
        # path -> (sha256, its validated documents): the last good version of each file
        self._good: dict[str, tuple[str, ValidationResult]] = {}

    def _digest(self, path: str) -> str:
        try:
            st = os.stat(path)
        except OSError:
            return hashlib.sha256(b"").hexdigest()
        signature = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        seen = self._seen.get(path)
        if seen is not None and seen[0] == signature:
            return seen[1]
        try:
            content = Path(path).read_bytes()
        except OSError:
            content = b""
        key = hashlib.sha256(content).hexdigest()
        self._seen[path] = (signature, key)
        return key

    def load(self) -> Desired:
        files, diagnostics = expand_paths(self.paths)
        # A directory that is empty right now is a desired set of nothing only if it stays
        # so; the loop's prune guard (--allow-empty) decides, not this reader.
        diagnostics = [d for d in diagnostics if "no manifest files" not in d.message]
        parts: list[ValidationResult] = []
        kept: list[str] = []
        complete = True
        digest = hashlib.sha256()
        for path in files:
            key = self._digest(path)
            cached = self._good.get(path)
            if cached is not None and cached[0] == key:
                parts.append(cached[1])
                digest.update(key.encode())
                continue
            file_docs, file_diags = read_sources([path])
            if not file_diags:  # a file that does not parse is not validated
                checked = validate_documents(file_docs, cross_checks=False)
                file_diags = checked.diagnostics
            if file_diags:
                diagnostics += file_diags
                if cached is not None:
                    parts.append(cached[1])
                    kept.append(path)
                    digest.update(cached[0].encode())
                else:
                    complete = False
                continue
            self._good[path] = (key, checked)
            parts.append(checked)
            digest.update(key.encode())
        for gone in set(self._good) - set(files):
            del self._good[gone]
        for gone in set(self._seen) - set(files):
            del self._seen[gone]
        result = join_results(parts)
        if result.diagnostics:
            return Desired(None, diagnostics + result.diagnostics, kept, digest.hexdigest(), False)
        return Desired(result.resources, diagnostics, kept, digest.hexdigest(), complete)
