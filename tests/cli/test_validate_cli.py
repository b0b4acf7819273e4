"""`recon validate` as CI uses it: exit codes, JSON diagnostics, stdin, --help, --version."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from reconciler import __version__

ROOT = Path(__file__).resolve().parents[2]
RECON = str(Path(sys.executable).parent / "recon")

GOOD = """\
apiVersion: reconciler/v1
kind: StoragePool
metadata: {name: default}
spec: {path: /srv/pool}
"""


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RECON, *args], input=stdin, capture_output=True, text=True, check=False, timeout=60
    )


def test_examples_are_valid() -> None:
    result = run("validate", "-f", str(ROOT / "manifests"))
    assert result.returncode == 0, result.stderr
    assert "8 resources in 7 files are valid" in result.stdout


def test_invalid_manifest_exits_1_with_location_on_stderr(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("{path: /srv/pool}", "{path: /srv/pool, colour: on}"))
    result = run("validate", "-f", str(bad))
    assert result.returncode == 1
    assert f"error: {bad}:4:" in result.stderr
    assert "StoragePool/default" in result.stderr
    assert result.stdout == ""


def test_json_output_lists_every_diagnostic_for_ci(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD.replace("name: default", "name: Bad_Name"))
    (tmp_path / "b.yaml").write_text("")
    result = run("validate", "-f", str(tmp_path), "-o", "json")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["valid"] is False
    by_file = {Path(d["file"]).name: d for d in data["diagnostics"]}
    assert set(by_file) == {"a.yaml", "b.yaml"}
    a = by_file["a.yaml"]
    assert (a["line"], a["column"], a["kind"], a["field"]) == (
        3,
        18,
        "StoragePool",
        "metadata.name",
    )
    assert set(a) == {"file", "line", "column", "message", "kind", "name", "field", "hint"}


def test_stdin_is_read_with_dash() -> None:
    result = run("validate", "-f", "-", stdin=GOOD)
    assert result.returncode == 0, result.stderr
    bad = run("validate", "-f", "-", stdin=GOOD + "  extra: 1\n")
    assert bad.returncode == 1
    assert "<stdin>:5:3" in bad.stderr


def test_missing_path_is_an_error_not_an_empty_set(tmp_path: Path) -> None:
    result = run("validate", "-f", str(tmp_path / "nope"))
    assert result.returncode == 1
    assert "nope" in result.stderr


def test_version_and_help() -> None:
    assert run("--version").stdout.strip().endswith(__version__)
    for verb in ("validate", "diff", "apply", "get", "delete", "schema", "observe"):
        result = run(verb, "--help")
        assert result.returncode == 0
        assert "Usage: recon " + verb in result.stdout


def test_usage_error_exits_2() -> None:
    assert run("validate").returncode == 2
