"""bench/run.py end to end at a tiny size: it runs, and prints a table with ratios.

No timing is asserted: only that every measured command has a row with a numeric ratio.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "bench" / "run.py"
RECON = Path(sys.executable).parent / "recon"
DOCS = ROOT / "docs" / "benchmarks.md"

ROW = re.compile(
    r"^\|\s*5\s*\|\s*(?P<command>[a-z-]+)\s*\|\s*(?P<recon>[0-9.]+)\s*\|\s*(?P<floor>[0-9.]+)"
    r"\s*\|\s*(?P<ratio>[0-9]+\.[0-9]+)x\s*\|\s*(?P<rss>[0-9]+)\s*\|",
    re.M,
)


def test_bench_runs_at_size_5(tmp_path: Path) -> None:
    docs_before = DOCS.read_bytes() if DOCS.exists() else None
    result = subprocess.run(
        [
            sys.executable,
            str(RUN),
            "--sizes",
            "5",
            "--repeat",
            "1",
            "--workdir",
            str(tmp_path / "work"),
            "--recon",
            str(RECON),
            "--json",
            str(tmp_path / "results.json"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {m["command"]: m for m in ROW.finditer(result.stdout)}
    assert {"validate", "diff-first", "diff", "apply"} <= rows.keys(), result.stdout
    for command in ("validate", "diff-first", "diff", "apply"):
        row = rows[command]
        assert float(row["ratio"]) > 0
        assert float(row["recon"]) > 0 and float(row["floor"]) > 0
        assert int(row["rss"]) > 0
    # Without --write the docs are left alone.
    assert (DOCS.read_bytes() if DOCS.exists() else None) == docs_before
    assert (tmp_path / "results.json").exists()
