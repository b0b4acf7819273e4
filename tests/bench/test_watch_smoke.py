"""bench/watch.py end to end at its smallest size: a real `recon watch` takes edits and heals
drift, the probe finds every function it times, and docs/benchmarks.md is left alone.

No timing is asserted: only that every sample was taken and the host ended as the manifests
say.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WATCH = ROOT / "bench" / "watch.py"
DOCS = ROOT / "docs" / "benchmarks.md"


def test_watch_bench_runs_at_size_50(tmp_path: Path) -> None:
    docs_before = DOCS.read_bytes()
    out = tmp_path / "watch.json"
    result = subprocess.run(
        [
            sys.executable,
            str(WATCH),
            "--size",
            "50",
            "--edits",
            "3",
            "--drifts",
            "2",
            "--probe-edits",
            "2",
            "--probe-drifts",
            "1",
            "--profile-edits",
            "1",
            "--workdir",
            str(tmp_path / "work"),
            "--json",
            str(out),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads(out.read_text())
    watch = data["watch"]
    assert watch["edits"]["n"] == 3
    assert watch["drifts"]["n"] == 2
    assert watch["changes_per_pass"] == [1]  # each edit and each drift: one change, one pass
    assert watch["unasked_passes"] == 0
    assert watch["exit"] == 0
    assert data["final_diff_exit"] == 0  # the host matches every edit
    # The probe timed what it expected to find: a renamed function would be listed here.
    assert data["breakdown"]["missing"] == []
    assert data["breakdown"]["edit"]["samples"] >= 1
    assert data["breakdown"]["drift"]["samples"] >= 1
    assert DOCS.read_bytes() == docs_before
