"""Finding and reading manifest sources: directories, stdin, size limits, missing paths."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler.load import sources
from reconciler.load.sources import MAX_FILE_BYTES, expand_paths, read_sources

DOC = b"apiVersion: v1\nkind: VM\nmetadata:\n  name: x\n"


def write(path: Path, content: bytes = DOC) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def names(paths: list[str], root: Path) -> list[str]:
    return [os.path.relpath(p, root) for p in paths]


# --- expanding paths ------------------------------------------------------------------------------


def test_directories_expand_recursively_in_sorted_order_skipping_hidden_and_other_files(
    tmp_path: Path,
) -> None:
    root = tmp_path / "m"
    for rel in [
        "b.yaml",
        "a.yml",
        "a-b.yaml",
        "a/x.yaml",
        "sub/c.yaml",
        "sub/deeper/f.yaml",
        ".hidden/d.yaml",
        "sub/.secret/e.yaml",
        ".e.yaml",
        "notes.txt",
        "x.yaml.bak",
        "sub/README.md",
    ]:
        write(root / rel)
    files, diags = expand_paths([str(root)])
    assert diags == []
    assert names(files, root) == [
        "a/x.yaml",
        "a-b.yaml",
        "a.yml",
        "b.yaml",
        "sub/c.yaml",
        "sub/deeper/f.yaml",
    ]
    assert all(f.startswith(str(root)) for f in files)


def test_symlinked_directories_inside_a_tree_are_followed_once(tmp_path: Path) -> None:
    """A prune plans deletes from what was read: a linked directory left out would look like
    guests removed. Loops and second links to one directory are read once."""
    write(tmp_path / "outside" / "g.yaml")
    write(tmp_path / "m" / "a.yaml")
    (tmp_path / "m" / "link").symlink_to(tmp_path / "outside", target_is_directory=True)
    (tmp_path / "m" / "again").symlink_to(tmp_path / "outside", target_is_directory=True)
    (tmp_path / "m" / "loop").symlink_to(tmp_path / "m", target_is_directory=True)
    files, diags = expand_paths([str(tmp_path / "m")])
    assert diags == []
    assert names(files, tmp_path / "m") == ["a.yaml", "again/g.yaml"]


def test_one_file_under_two_spellings_is_read_once(tmp_path: Path) -> None:
    a = write(tmp_path / "real" / "a.yaml")
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    files, diags = expand_paths([str(a), str(tmp_path / "link" / "a.yaml")])
    assert diags == []
    assert files == [str(a)]


def test_a_directory_given_through_a_symlink_is_walked(tmp_path: Path) -> None:
    write(tmp_path / "real" / "a.yaml")
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    files, diags = expand_paths([str(tmp_path / "link")])
    assert diags == []
    assert files == [str(tmp_path / "link" / "a.yaml")]


def test_explicit_files_and_stdin_are_kept_as_given_in_order(tmp_path: Path) -> None:
    other = write(tmp_path / "vm.json")
    hidden = write(tmp_path / ".hidden.yaml")
    files, diags = expand_paths([str(other), "-", str(hidden), "-"])
    assert diags == []
    assert files == [str(other), "-", str(hidden), "-"]


def test_a_file_reached_twice_is_listed_once(tmp_path: Path) -> None:
    a = write(tmp_path / "m" / "a.yaml")
    files, diags = expand_paths([str(tmp_path / "m"), str(a), str(tmp_path / "m" / "." / "a.yaml")])
    assert diags == []
    assert files == [str(a)]


def test_missing_path_is_a_diagnostic_and_other_paths_still_expand(tmp_path: Path) -> None:
    good = write(tmp_path / "a.yaml")
    missing = str(tmp_path / "nope.yaml")
    files, diags = expand_paths([missing, str(good)])
    assert files == [str(good)]
    assert len(diags) == 1
    assert diags[0].file == missing
    assert diags[0].message == "no such file or directory"
    assert diags[0].hint is not None


def test_directory_without_manifests_is_a_diagnostic(tmp_path: Path) -> None:
    write(tmp_path / "empty" / "notes.txt")
    write(tmp_path / "empty" / ".hidden" / "a.yaml")
    files, diags = expand_paths([str(tmp_path / "empty")])
    assert files == []
    assert len(diags) == 1
    assert diags[0].file == str(tmp_path / "empty")
    assert "directory contains no manifest files" in diags[0].message


# --- reading --------------------------------------------------------------------------------------


def test_files_are_read_and_parsed_with_the_path_as_label(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", b"kind: A\n---\nkind: B\n")
    b = write(tmp_path / "b.yaml", b"kind: C\n")
    docs, diags = read_sources([str(a), str(b)])
    assert diags == []
    assert [(d.file, d.index, d.data["kind"]) for d in docs] == [
        (str(a), 0, "A"),
        (str(a), 1, "B"),
        (str(b), 0, "C"),
    ]


def test_a_bad_file_does_not_stop_the_next_one(tmp_path: Path) -> None:
    bad = write(tmp_path / "a.yaml", b"kind: A\nautostart: yes\n")
    good = write(tmp_path / "b.yaml", b"kind: B\n")
    docs, diags = read_sources([str(tmp_path)])
    assert [d.file for d in docs] == [str(good)]
    assert [(d.file, d.line, d.column) for d in diags] == [(str(bad), 2, 12)]


def test_size_limit_is_checked_before_the_file_is_read_or_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = write(tmp_path / "big.yaml", b"kind: VM\n" + b"# padding\n" * 20)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("read or parsed a file over the limit")

    monkeypatch.setattr(sources, "open", refuse, raising=False)
    monkeypatch.setattr(sources, "parse_yaml", refuse)
    docs, diags = read_sources([str(big)], max_bytes=100)
    assert docs == []
    assert len(diags) == 1
    assert diags[0].file == str(big)
    assert diags[0].message == "file is 209 bytes; the limit is 100 bytes"
    assert diags[0].hint is not None and "RECON_MAX_FILE_BYTES" in diags[0].hint


def test_a_file_at_the_limit_is_read(tmp_path: Path) -> None:
    exact = write(tmp_path / "a.yaml", b"kind: VM\n")
    docs, diags = read_sources([str(exact)], max_bytes=9)
    assert diags == []
    assert len(docs) == 1


def test_size_limit_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = write(tmp_path / "a.yaml", b"kind: VM\n" * 10)
    monkeypatch.setenv("RECON_MAX_FILE_BYTES", "50")
    docs, diags = read_sources([str(big)])
    assert docs == []
    assert [d.message for d in diags] == ["file is 90 bytes; the limit is 50 bytes"]


def test_invalid_size_limit_in_the_environment_is_a_diagnostic_and_the_default_applies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = write(tmp_path / "a.yaml", b"kind: VM\n")
    monkeypatch.setenv("RECON_MAX_FILE_BYTES", "4MB")
    docs, diags = read_sources([str(a)])
    assert len(docs) == 1
    assert len(diags) == 1
    assert "RECON_MAX_FILE_BYTES is not a positive whole number" in diags[0].message
    assert str(MAX_FILE_BYTES) in (diags[0].hint or "")


def test_stdin_is_read_for_dash_and_labelled(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", b"kind: A\n")
    docs, diags = read_sources([str(a), "-"], stdin=io.BytesIO(b"kind: B\n---\nkind: C\n"))
    assert diags == []
    assert [(d.file, d.index, d.data["kind"]) for d in docs] == [
        (str(a), 0, "A"),
        ("<stdin>", 0, "B"),
        ("<stdin>", 1, "C"),
    ]


def test_stdin_defaults_to_sys_stdin_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"kind: A\n")))
    docs, diags = read_sources(["-"])
    assert diags == []
    assert [(d.file, d.data) for d in docs] == [("<stdin>", {"kind": "A"})]


def test_stdin_over_the_limit_is_refused_after_reading_one_byte_too_many() -> None:
    stream = io.BytesIO(b"kind: VM\n" + b"#" * 1000)
    docs, diags = read_sources(["-"], stdin=stream, max_bytes=100)
    assert docs == []
    assert [(d.file, d.message) for d in diags] == [
        ("<stdin>", "input is larger than 100 bytes; the limit is 100 bytes")
    ]
    assert stream.tell() == 101


def test_stdin_named_twice_is_an_error_and_read_once() -> None:
    docs, diags = read_sources(["-", "-"], stdin=io.BytesIO(b"kind: A\n"))
    assert [d.data for d in docs] == [{"kind": "A"}]
    assert len(diags) == 1
    assert diags[0].file == "<stdin>"
    assert "standard input (-) is named more than once" in diags[0].message


def test_stdin_diagnostics_carry_the_stdin_label() -> None:
    docs, diags = read_sources(["-"], stdin=io.BytesIO(b"kind: A\nmode: 0755\n"))
    assert docs == []
    assert [(d.file, d.line, d.column) for d in diags] == [("<stdin>", 2, 7)]


def test_missing_paths_are_reported_and_the_rest_is_read(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", b"kind: A\n")
    docs, diags = read_sources([str(tmp_path / "missing"), str(a)])
    assert [d.data for d in docs] == [{"kind": "A"}]
    assert [(d.file, d.message) for d in diags] == [
        (str(tmp_path / "missing"), "no such file or directory")
    ]


def test_unreadable_file_is_a_diagnostic_and_the_next_file_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = write(tmp_path / "a.yaml")
    good = write(tmp_path / "b.yaml", b"kind: B\n")

    def deny(path: str, *args: Any, **kwargs: Any) -> Any:
        if path == str(locked):
            raise PermissionError(13, "Permission denied", path)
        return open(path, *args, **kwargs)

    monkeypatch.setattr(sources, "open", deny, raising=False)
    docs, diags = read_sources([str(locked), str(good)])
    assert [d.file for d in docs] == [str(good)]
    assert [(d.file, d.message) for d in diags] == [
        (str(locked), "cannot read file: Permission denied")
    ]
