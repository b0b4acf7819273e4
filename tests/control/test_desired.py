"""The loop's desired state, read from real files in a temporary directory: the last good version
of a broken file is kept, a deleted file is gone, and an unknown file makes the set incomplete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.control.desired import Desired, FileSet
from tests.conftest import edit
from tests.control.conftest import EXAMPLES


def refs(desired: Desired) -> list[str]:
    assert desired.resources is not None, [d.render() for d in desired.diagnostics]
    return sorted(str(r.ref) for r in desired.resources)


def spec(desired: Desired, ref: str) -> Any:
    assert desired.resources is not None
    return next(r.manifest.spec for r in desired.resources if str(r.ref) == ref)  # type: ignore[attr-defined]


def messages(desired: Desired) -> str:
    return "\n".join(d.render() for d in desired.diagnostics)


def test_all_files_good(manifests: Path) -> None:
    desired = FileSet([str(manifests)]).load()
    assert refs(desired) == EXAMPLES
    assert desired.diagnostics == []
    assert desired.kept == []
    assert desired.complete


def test_a_broken_file_keeps_its_last_good_version_until_it_is_fixed(manifests: Path) -> None:
    files = FileSet([str(manifests)])
    web = manifests / "vms" / "web-1.yaml"
    edit(web, "  cpus: 2\n", "  cpus: 3\n")
    first = files.load()
    assert spec(first, "VirtualMachine/web-1").cpus == 3

    edit(web, "  cpus: 3\n", "  cpus: [three\n")  # does not parse
    broken = files.load()
    assert refs(broken) == EXAMPLES
    assert spec(broken, "VirtualMachine/web-1").cpus == 3
    assert broken.kept == [str(web)]
    assert "web-1.yaml" in messages(broken)
    assert broken.complete  # everything is known: the last good version stands in

    edit(web, "  cpus: [three\n", '  cpus: "3"\n')  # parses, but is invalid (a string)
    invalid = files.load()
    assert spec(invalid, "VirtualMachine/web-1").cpus == 3
    assert invalid.kept == [str(web)]
    assert "cpus" in messages(invalid)

    edit(web, '  cpus: "3"\n', "  cpus: 4\n")
    fixed = files.load()
    assert spec(fixed, "VirtualMachine/web-1").cpus == 4
    assert fixed.kept == []
    assert fixed.diagnostics == []


def test_an_empty_or_truncated_file_keeps_its_resources(manifests: Path) -> None:
    files = FileSet([str(manifests)])
    files.load()
    cache = manifests / "containers" / "cache-1.yaml"
    cache.write_text("")
    empty = files.load()
    assert refs(empty) == EXAMPLES
    assert empty.kept == [str(cache)]
    assert "no documents" in messages(empty)

    templates = manifests / "templates.yaml"
    text = templates.read_text()
    templates.write_text(text[: len(text) // 3])  # cut in the middle of the first document
    truncated = files.load()
    assert refs(truncated) == EXAMPLES
    assert sorted(truncated.kept) == sorted([str(cache), str(templates)])
    assert truncated.complete


def test_a_deleted_file_removes_its_resources(manifests: Path) -> None:
    files = FileSet([str(manifests)])
    files.load()
    (manifests / "containers" / "cache-1.yaml").unlink()
    desired = files.load()
    assert refs(desired) == [r for r in EXAMPLES if r != "Container/cache-1"]
    assert desired.kept == []
    assert desired.complete
    # ... and once deleted, a file of that name that comes back broken has no last good.
    (manifests / "containers" / "cache-1.yaml").write_text("kind: [\n")
    again = files.load()
    assert "Container/cache-1" not in refs(again)
    assert not again.complete


def test_a_broken_file_without_a_last_good_version_makes_the_set_incomplete(
    manifests: Path,
) -> None:
    # A loop that starts while a file is broken does not know that file's resources: the
    # others are applied, and nothing may be pruned (complete=False).
    (manifests / "containers" / "cache-1.yaml").write_text("")
    desired = FileSet([str(manifests)]).load()
    assert refs(desired) == [r for r in EXAMPLES if r != "Container/cache-1"]
    assert not desired.complete
    assert desired.kept == []


def test_a_broken_file_others_depend_on_leaves_no_valid_set(manifests: Path) -> None:
    # The network cannot be read and no version of it was ever good: the guests' references
    # dangle, so the set as a whole is invalid and nothing is applied.
    (manifests / "network.yaml").write_text("apiVersion: reconciler/v1\nkind: Network\n")
    desired = FileSet([str(manifests)]).load()
    assert desired.resources is None
    assert not desired.complete
    assert "network.yaml" in messages(desired)


def test_files_valid_alone_but_not_together_leave_no_valid_set(manifests: Path) -> None:
    files = FileSet([str(manifests)])
    files.load()
    # A copy that was not renamed: each file is fine, the set has web-1 twice.
    web = manifests / "vms" / "web-1.yaml"
    (manifests / "vms" / "web-2.yaml").write_text(web.read_text())
    desired = files.load()
    assert desired.resources is None
    assert not desired.complete
    assert "web-1" in messages(desired)


def test_an_empty_directory_is_an_empty_set_not_an_error(tmp_path: Path) -> None:
    # Whether an empty set may be applied is the loop's decision (--allow-empty), not the
    # reader's.
    empty = tmp_path / "empty"
    empty.mkdir()
    desired = FileSet([str(empty)]).load()
    assert desired.resources == []
    assert desired.diagnostics == []


def test_the_fingerprint_follows_the_content(manifests: Path) -> None:
    files = FileSet([str(manifests)])
    first = files.load().fingerprint
    assert files.load().fingerprint == first
    edit(manifests / "vms" / "web-1.yaml", "  cpus: 2\n", "  cpus: 3\n")
    assert files.load().fingerprint != first


def test_an_edit_that_keeps_the_size_and_the_inode_is_still_seen(manifests: Path) -> None:
    files = FileSet([str(manifests)])
    web = manifests / "vms" / "web-1.yaml"
    assert spec(files.load(), "VirtualMachine/web-1").cpus == 2
    inode = web.stat().st_ino
    with web.open("r+") as fh:  # in place, as some editors write: same inode, same size
        text = fh.read()
        fh.seek(0)
        fh.write(text.replace("  cpus: 2\n", "  cpus: 3\n"))
    assert web.stat().st_ino == inode
    assert spec(files.load(), "VirtualMachine/web-1").cpus == 3


def test_a_set_validated_file_by_file_reports_what_a_whole_load_reports(manifests: Path) -> None:
    from reconciler.load.manifests import load_manifests

    edit(manifests / "vms" / "db-1.yaml", "network: lan", "network: lann")  # dangling ref
    (manifests / "vms" / "web-2.yaml").write_text((manifests / "vms" / "web-1.yaml").read_text())
    desired = FileSet([str(manifests)]).load()
    whole = load_manifests([str(manifests)])
    assert desired.resources is None
    assert [d.render() for d in desired.diagnostics] == [d.render() for d in whole.diagnostics]
    assert "lann" in messages(desired)
    assert "web-2.yaml" in messages(desired) and "web-1.yaml" in messages(desired)
