"""bench/startup.py end to end with one run of each: a row per command with a ratio against
`import yaml, libvirt`, and the docs left alone without --write. No timing is asserted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STARTUP = ROOT / "bench" / "startup.py"
RECON = Path(sys.executable).parent / "recon"
DOCS = ROOT / "docs" / "benchmarks.md"

ROW = re.compile(
    r"^\| `(?P<command>[^`]+)` \| (?P<median>[0-9.]+) \| [0-9.]+ \| (?P<ratio>[0-9.]+)x \| \d+ \|",
    re.M,
)


def test_startup_bench_runs_once_per_command() -> None:
    docs_before = DOCS.read_bytes()
    result = subprocess.run(
        [sys.executable, str(STARTUP), "--repeat", "1", "--recon", str(RECON)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {m["command"]: m for m in ROW.finditer(result.stdout)}
    assert {"recon --version", "recon --help", "python -c 'import yaml, libvirt'"} <= set(rows)
    assert any(name.startswith("recon validate") for name in rows)
    for row in rows.values():
        assert float(row["median"]) > 0 and float(row["ratio"]) > 0
    assert float(rows["python -c 'import yaml, libvirt'"]["ratio"]) == 1.0
    assert "Heaviest imports of `recon --version`" in result.stdout
    assert DOCS.read_bytes() == docs_before
