"""`recon sync`, end to end: real git repositories made with `git`, a bare remote served over
file://, commits, an invalid commit, force-pushes, and SIGUSR1 to fetch at once."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

from tests.conftest import Recon, edit
from tests.control.conftest import (
    EXAMPLES,
    GitRepo,
    StartLoop,
    condition,
    resource,
    settled,
)

WEB = "VirtualMachine/web-1"
DB = "VirtualMachine/db-1"


def stamp_revision(objects: dict[str, dict[str, Any]], ref: str) -> str | None:
    stamp = objects[ref]["stamp"]
    return None if stamp is None else stamp["revision"]


def web_at(recon: Recon, cpus: int, revision: str) -> bool:
    web = recon.objects().get(WEB)
    return (
        web is not None
        and web["fields"]["cpus"] == cpus
        and (web["stamp"] or {}).get("revision") == revision
    )


def sync(start_loop: StartLoop, repo: GitRepo, *extra: str) -> Any:
    return start_loop(
        "sync", "--repo", repo.url, "--ref", "main", "--path", "node-1", "--resync", "600", *extra
    )


def test_sync_applies_each_commit_and_records_its_sha(
    recon: Recon, repo: GitRepo, start_loop: StartLoop
) -> None:
    first = repo.commit_and_push("node-1: the examples")
    loop = sync(start_loop, repo, "--interval", "0.5")
    status = loop.wait_status(lambda s: settled(s, EXAMPLES))
    assert status["revision"] == status["last_good_revision"] == first
    assert status["source"] == f"git: {repo.url}#main:node-1"
    assert status["runs"][-1]["revision"] == first
    assert resource(status, WEB)["last_applied_revision"] == first
    objects = recon.objects()
    assert {stamp_revision(objects, ref) for ref in objects} == {first}
    wide = recon.ok("get", "-o", "wide").stdout
    assert first in wide

    edit(repo.node / "vms" / "web-1.yaml", "  cpus: 2\n", "  cpus: 3\n")
    second = repo.commit_and_push("web-1: 3 cpus")
    loop.wait_host(lambda: web_at(recon, 3, second))
    # Each object records the commit that last changed it.
    objects = recon.objects()
    assert stamp_revision(objects, DB) == first
    status = loop.wait_status(lambda s: s["revision"] == second and settled(s, EXAMPLES))
    assert status["last_good_revision"] == second
    assert resource(status, WEB)["last_applied_revision"] == second
    assert loop.stop() == 0


def test_an_invalid_commit_is_not_applied_at_all_and_the_last_good_one_stays(
    recon: Recon, repo: GitRepo, start_loop: StartLoop
) -> None:
    good = repo.commit_and_push("node-1: the examples")
    loop = sync(start_loop, repo, "--interval", "0.5")
    loop.wait_status(lambda s: settled(s, EXAMPLES))

    # One commit: a valid change to web-1 and an invalid db-1. None of it may be applied.
    edit(repo.node / "vms" / "web-1.yaml", "  cpus: 2\n", "  cpus: 3\n")
    edit(repo.node / "vms" / "db-1.yaml", "  memory: 2Gi\n", "  memory: lots\n")
    bad = repo.commit_and_push("a valid and an invalid change")
    status = loop.wait_status(lambda s: s["revision"] == bad and s["errors"])
    assert status["last_good_revision"] == good
    assert any("node-1/vms/db-1.yaml" in e for e in status["errors"])  # the file in the repo
    assert status["runs"][-1]["result"] == "invalid"
    assert status["runs"][-1]["revision"] == bad
    assert web_at(recon, 2, good)
    shown = recon.ok("status")
    assert "node-1/vms/db-1.yaml" in shown.stderr

    edit(repo.node / "vms" / "db-1.yaml", "  memory: lots\n", "  memory: 2Gi\n")
    fixed = repo.commit_and_push("db-1: fixed")
    loop.wait_host(lambda: web_at(recon, 3, fixed))
    status = loop.wait_status(lambda s: s["last_good_revision"] == fixed and not s["errors"])
    assert condition(status, WEB) == "Ready"
    assert loop.stop() == 0


def test_a_force_push_is_followed_and_sigusr1_fetches_at_once(
    recon: Recon, repo: GitRepo, start_loop: StartLoop
) -> None:
    first = repo.commit_and_push("node-1: the examples")
    # A long fetch interval: only SIGUSR1 makes the loop fetch after the start.
    loop = sync(start_loop, repo, "--interval", "600")
    loop.wait_status(lambda s: settled(s, EXAMPLES) and s["revision"] == first)

    web = repo.node / "vms" / "web-1.yaml"
    edit(web, "  cpus: 2\n", "  cpus: 3\n")
    second = repo.commit_and_push("web-1: 3 cpus")
    loop.send(signal.SIGUSR1)
    loop.wait_host(lambda: web_at(recon, 3, second))

    # Force-pushed back to the older commit: that is what the branch names now.
    repo.git("reset", "-q", "--hard", first)
    repo.push(force=True)
    loop.send(signal.SIGUSR1)
    loop.wait_host(lambda: web_at(recon, 2, first))
    loop.wait_status(lambda s: s["revision"] == first and settled(s, EXAMPLES))

    # ... and to a different history altogether.
    edit(web, "  cpus: 2\n", "  cpus: 4\n")
    other = repo.commit("web-1: 4 cpus, on another history")
    repo.push(force=True)
    loop.send(signal.SIGUSR1)
    loop.wait_host(lambda: web_at(recon, 4, other))
    status = loop.wait_status(lambda s: s["revision"] == other and settled(s, EXAMPLES))
    assert status["last_good_revision"] == other
    assert loop.stop() == 0


def test_a_branch_that_does_not_exist_yet_is_reported_then_followed(
    recon: Recon, repo: GitRepo, start_loop: StartLoop
) -> None:
    # The remote is empty: nothing to apply, and `recon status` says why.
    loop = sync(start_loop, repo, "--interval", "0.5", "--log-format", "json")
    status = loop.wait_status(lambda s: bool(s["runs"]) and s["runs"][-1]["result"] == "failed")
    assert "main" in status["runs"][-1]["error"]
    assert status["errors"]
    assert recon.objects() == {}

    started = time.time()
    first = repo.commit_and_push("node-1: the examples")
    status = loop.wait_status(lambda s: s["revision"] == first and settled(s, EXAMPLES))
    assert any(r["started"] > started for r in status["runs"])
    assert status["errors"] == []
    assert loop.stop() == 0
    records = [json.loads(line) for line in loop.lines]  # every line is JSON
    fetch_failed = [r for r in records if r["msg"] == "git fetch failed"]
    assert len(fetch_failed) == 1  # said once, not at every interval
    assert any(r["msg"] == "reconciled" and r["revision"] == first for r in records)
