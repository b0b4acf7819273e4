"""Sources of work with real parts: GitSource against repositories made with `git` (a bare
remote over file://), FileWatcher against real file events in a temporary directory."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from reconciler.control.sources import FileWatcher, GitError, GitSource
from reconciler.model.errors import ReconError
from tests.control.conftest import GitRepo, wait_until


def source(repo: GitRepo, tmp_path: Path, subdir: str = "node-1") -> GitSource:
    return GitSource(repo.url, "main", subdir, tmp_path / "mirror")


def test_fetch_follows_the_branch_through_a_force_push(repo: GitRepo, tmp_path: Path) -> None:
    git = source(repo, tmp_path)
    first = repo.commit_and_push("one")
    assert git.fetch() == first
    (repo.node / "extra.yaml").write_text("# nothing yet\n")
    second = repo.commit_and_push("two")
    assert git.fetch() == second
    repo.git("reset", "-q", "--hard", first)
    repo.push(force=True)
    assert git.fetch() == first
    # The export is the commit's tree, under --path.
    root = git.checkout(first)
    assert sorted(p.name for p in root.iterdir()) == sorted(p.name for p in repo.node.iterdir())
    assert not (git.checkout(first) / "extra.yaml").exists()
    assert (git.checkout(second) / "extra.yaml").exists()


def test_a_missing_branch_or_directory_is_an_error_worth_a_retry(
    repo: GitRepo, tmp_path: Path
) -> None:
    git = source(repo, tmp_path)
    with pytest.raises(GitError) as missing:
        git.fetch()
    assert missing.value.temporary
    sha = repo.commit_and_push("one")
    assert git.fetch() == sha
    with pytest.raises(ReconError, match="no directory 'elsewhere'"):
        source(repo, tmp_path, "elsewhere").checkout(sha)
    with pytest.raises(GitError):
        GitSource((tmp_path / "nowhere.git").as_uri(), "main", "", tmp_path / "m2").fetch()


def test_old_exports_are_removed_but_the_kept_commit_stays(repo: GitRepo, tmp_path: Path) -> None:
    git = source(repo, tmp_path)
    good = repo.commit_and_push("good")
    git.fetch()
    git.checkout(good)
    shas = []
    for i in range(5):
        (repo.node / f"broken-{i}.yaml").write_text("kind: [\n")
        shas.append(repo.commit_and_push(f"broken {i}"))
        git.fetch()
        git.checkout(shas[-1], keep=[good])
    kept = {p.name for p in (git.workdir / "commits").iterdir()}
    assert good in kept  # the last good commit's files stay for the loop
    assert shas[-1] in kept
    assert shas[0] not in kept  # the others are cleaned up
    assert len(kept) <= 4


def test_the_file_watcher_sees_manifests_change_in_a_directory(tmp_path: Path) -> None:
    root = tmp_path / "m"
    (root / "vms").mkdir(parents=True)
    events = threading.Semaphore(0)
    watcher = FileWatcher([str(root)], 0.05, events.release)
    watcher.start()
    try:

        def seen() -> bool:
            return events.acquire(timeout=0.1)

        (root / "vms" / "web-1.yaml").write_text("a: 1\n")  # created
        wait_until(seen)
        (root / "vms" / "web-1.yaml").write_text("a: 2\n")  # written
        wait_until(seen)
        # An editor's save: a hidden temporary file renamed over the manifest.
        tmp = root / "vms" / ".web-1.yaml.swp"
        tmp.write_text("a: 3\n")
        os.replace(tmp, root / "vms" / "web-1.yaml")
        wait_until(seen)
        (root / "db").mkdir()  # a new directory, and a manifest in it
        (root / "db" / "db-1.yml").write_text("a: 1\n")
        wait_until(seen)
        (root / "vms" / "web-1.yaml").unlink()  # deleted
        wait_until(seen)
    finally:
        watcher.stop()


def test_the_file_watcher_sees_a_single_file_replaced(tmp_path: Path) -> None:
    path = tmp_path / "net.yaml"
    path.write_text("a: 1\n")
    events = threading.Semaphore(0)
    watcher = FileWatcher([str(path)], 0.05, events.release)
    watcher.start()
    try:
        tmp = tmp_path / "net.yaml.new"
        tmp.write_text("a: 2\n")
        os.replace(tmp, path)
        wait_until(lambda: events.acquire(timeout=0.1))
    finally:
        watcher.stop()
