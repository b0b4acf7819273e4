"""Label selectors (`-l`): the grammar, parsed by hand, and what get, diff, apply and delete
select with them, by manifest labels and by the labels recon records on the host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.model.selectors import Requirement, SelectorError, parse_selector
from tests.conftest import Recon, edit, output

# --- the grammar -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "requirements"),
    [
        ("role=web", [Requirement("role", "=", ("web",))]),
        ("role==web", [Requirement("role", "=", ("web",))]),
        ("role!=web", [Requirement("role", "!=", ("web",))]),
        ("env in (prod, staging)", [Requirement("env", "in", ("prod", "staging"))]),
        ("env notin (dev)", [Requirement("env", "notin", ("dev",))]),
        ("env in(a,b)", [Requirement("env", "in", ("a", "b"))]),
        ("tier", [Requirement("tier", "exists")]),
        ("!tier", [Requirement("tier", "!exists")]),
        (
            "a=1, !b,c in (x,y),app.kubernetes.io/name=recon",
            [
                Requirement("a", "=", ("1",)),
                Requirement("b", "!exists"),
                Requirement("c", "in", ("x", "y")),
                Requirement("app.kubernetes.io/name", "=", ("recon",)),
            ],
        ),
        ("in in (in)", [Requirement("in", "in", ("in",))]),  # a key may be called "in"
        ("", []),
        ("empty=", [Requirement("empty", "=", ("",))]),
    ],
)
def test_selector_grammar(text: str, requirements: list[Requirement]) -> None:
    assert list(parse_selector(text).requirements) == requirements


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("=web", 1),
        ("role=web,", 10),
        ("role web", 6),
        ("env in (a", 10),
        ("env in a", 8),
        ("role=we b", 9),
        ("role=a/b", 6),
        ("Bad Key=x", 5),
        ("-x=1", 1),
    ],
)
def test_selector_mistakes_name_their_column(text: str, column: int) -> None:
    with pytest.raises(SelectorError, match=f"column {column}$"):
        parse_selector(text)


def test_selector_matches_as_kubernetes_does() -> None:
    labels = {"role": "web", "env": "prod"}
    assert parse_selector("role=web,env in (prod,staging)").matches(labels)
    assert parse_selector("role!=db").matches(labels)
    assert parse_selector("tier!=db").matches(labels)  # absent: != holds
    assert parse_selector("tier notin (db)").matches(labels)  # absent: notin holds
    assert not parse_selector("tier in (db)").matches(labels)
    assert not parse_selector("role,!env").matches(labels)
    assert parse_selector("").matches({})


# --- the commands ------------------------------------------------------------------------------


def names(recon: Recon, *args: str) -> set[str]:
    listed = json.loads(recon.ok("get", *args, "-o", "json").stdout)
    return {f"{i['kind']}/{i['metadata']['name']}" for i in listed["items"]}


def test_get_selects_by_the_labels_recorded_on_the_host(recon: Recon, applied: Path) -> None:
    assert names(recon, "-l", "role=web") == {"VirtualMachine/web-1"}
    assert names(recon, "-l", "role in (web, db)") == {
        "VirtualMachine/web-1",
        "VirtualMachine/db-1",
    }
    assert names(recon, "vm", "-l", "role!=web") == {"VirtualMachine/db-1"}
    assert names(recon, "-l", "app.kubernetes.io/managed-by") == {"StoragePool/default"}
    assert "Network/lan" in names(recon, "-l", "!role")
    table = recon.ok("get", "-l", "role notin (web,db)").stdout
    assert "cache-1" in table and "web-1" not in table
    bad = recon("get", "-l", "role=")  # valid: the empty value; nothing has it
    assert bad.returncode == 0
    usage = recon("get", "-l", "role in web")
    assert usage.returncode == 2
    assert "column 9" in usage.stderr and "hint:" in usage.stderr


def test_diff_and_apply_plan_only_the_selected_manifests(recon: Recon, applied: Path) -> None:
    edit(applied / "vms" / "web-1.yaml", "cpus: 2", "cpus: 3")
    edit(applied / "vms" / "db-1.yaml", "cpus: 2", "cpus: 1")
    only_db = recon("diff", "-f", applied, "-l", "role=db")
    assert only_db.returncode == 1
    assert "db-1" in only_db.stdout and "web-1" not in only_db.stdout
    recon.ok("apply", "-f", applied, "-l", "role=web")
    assert recon("diff", "-f", applied, "-l", "role=web").returncode == 0
    assert recon("diff", "-f", applied, "-l", "role=db").returncode == 1
    none = recon("apply", "-f", applied, "-l", "role=nothing")
    assert none.returncode == 2 and "no manifest matches" in none.stderr


def test_prune_with_a_selector_prunes_only_matching_owned_objects(
    recon: Recon, applied: Path
) -> None:
    (applied / "vms" / "web-1.yaml").unlink()
    (applied / "vms" / "db-1.yaml").unlink()
    # db-1 matches the selector and is in no manifest: pruned. web-1 does not match: kept,
    # though no manifest names it either.
    result = recon("apply", "-f", applied, "--prune", "-l", "role in (db, cache)")
    assert result.returncode == 0, output(result)
    objects = set(recon.objects())
    assert "VirtualMachine/db-1" not in objects
    assert {"VirtualMachine/web-1", "Container/cache-1", "Network/lan"} <= objects


def test_delete_by_selector(recon: Recon, applied: Path) -> None:
    recon.ok("delete", "vm", "-l", "role=db")
    objects = set(recon.objects())
    assert "VirtualMachine/db-1" not in objects and "VirtualMachine/web-1" in objects
    recon.ok("delete", "-f", applied / "containers", "-f", applied / "vms", "-l", "role=cache")
    objects = set(recon.objects())
    assert "Container/cache-1" not in objects and "VirtualMachine/web-1" in objects
