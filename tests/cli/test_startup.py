"""Start-up: `recon --version`, `recon --help` and a TAB on a verb import no command module,
no model, no engine and no host library; each verb is imported when it runs, and the table
that lists the verbs says what each command says of itself."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

import reconciler
from reconciler.cli.main import VERBS, cli, load_verb

# What start-up must not pay for: command modules, the kinds (pydantic model building), the
# schemas, the engine, the loop, and the libraries behind them.
HEAVY = (
    "reconciler.cli.",  # reconciler.cli.main itself is checked for below
    "reconciler.model.kinds",
    "reconciler.engine",
    "reconciler.control",
    "reconciler.providers.libvirt",
    "pydantic",
    "jsonschema",
    "libvirt",
    "yaml",
    "watchdog",
    "prometheus_client",
    "importlib.metadata",
)

# Runs main() as the console script does, then prints the modules it imported.
PROBE = """
import json, sys
from reconciler.cli.main import main
sys.argv = ["recon", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit:
    pass
sys.stdout.flush()
print("\\nMODULES " + json.dumps(sorted(sys.modules)))
"""


def imported(args: list[str], env: dict[str, str] | None = None) -> tuple[str, set[str]]:
    """What the command printed (stdout, then stderr) and the modules it imported."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("RECON_", "_RECON_"))}
    full.update(env or {})
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=full,
    )
    out, _, modules = result.stdout.rpartition("\nMODULES ")
    return out + result.stderr, set(json.loads(modules))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.startswith(HEAVY) and m != "reconciler.cli.main")


@pytest.mark.parametrize("args", [["--version"], ["--help"], []])
def test_version_and_help_import_no_command_model_or_host(args: list[str]) -> None:
    out, modules = imported(args)
    assert "reconciler.cli.main" in modules
    assert heavy(modules) == []
    if args == ["--version"]:
        assert out.strip() == f"recon, version {reconciler.__version__}"
    else:
        for verb in VERBS:  # every verb listed, each with its short help
            assert f"  {verb} " in out


def test_a_tab_on_the_verb_lists_every_verb_without_importing_one(tmp_path: Path) -> None:
    env = {
        "_RECON_COMPLETE": "bash_complete",
        "COMP_WORDS": "recon ",
        "COMP_CWORD": "1",
        "RECON_HOME": str(tmp_path),
    }
    out, modules = imported([], env)
    offered = {line.split(",", 1)[1] for line in out.splitlines() if "," in line}
    assert offered == set(VERBS)
    assert heavy(modules) == []


def test_a_verb_imports_its_own_module_only_when_run() -> None:
    _, modules = imported(["schema", "--help"])
    assert "reconciler.cli.validate_cmds" in modules
    assert "reconciler.cli.plan_cmds" not in modules
    assert "reconciler.cli.control_cmds" not in modules


def test_validate_loads_no_host_library(tmp_path: Path) -> None:
    """validate contacts no host: neither libvirt nor the provider is imported."""
    manifest = tmp_path / "pool.yaml"
    manifest.write_text(
        "apiVersion: reconciler/v1\nkind: StoragePool\nmetadata: {name: p}\nspec: {path: /srv}\n"
    )
    out, modules = imported(["validate", "-f", str(manifest)])
    assert "1 resources in 1 files are valid" in out
    assert not any(m.startswith(("libvirt", "reconciler.providers.libvirt")) for m in modules)
    assert not any(m.startswith(("reconciler.engine", "reconciler.control")) for m in modules)


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_the_table_says_what_each_command_says(verb: str) -> None:
    command = load_verb(verb)
    assert command.name == verb
    assert VERBS[verb][1] == command.get_short_help_str(limit=10**6)


def test_help_lists_the_verbs_as_click_would_with_every_command_loaded() -> None:
    """The lazy list is the list click prints when each command is added to a plain group."""
    eager = click.Group("recon", context_settings=cli.context_settings)
    for verb in VERBS:
        eager.add_command(load_verb(verb), verb)

    def commands(group: click.Group) -> str:
        formatter = click.HelpFormatter(width=100)
        group.format_commands(click.Context(group, info_name="recon"), formatter)
        return formatter.getvalue()

    listed = commands(cli)
    assert listed.startswith("Commands:") and listed.count("\n") == len(VERBS) + 1
    assert listed == commands(eager)


def test_the_version_is_the_installed_one() -> None:
    assert reconciler.__version__ == importlib.metadata.version("recon")
