"""scripts/ci-plan-example, the pipeline of docs/operations.md run locally, works end to end."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import BUILD_ENV, RECON, ROOT


def test_the_ci_plan_example_runs_clean(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
    env.update(RECON=RECON, TMPDIR=str(tmp_path), NO_COLOR="1")
    env.update(BUILD_ENV)
    result = subprocess.run(
        [str(ROOT / "scripts" / "ci-plan-example")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The comment CI posts: the PR's change, planned against the published state.
    assert "| ~ update | `VirtualMachine/web-1` | **restart** |" in result.stdout
    assert "planned against the exported host state host-state.json" in result.stdout
    # The host applied exactly that plan, and then matched main.
    assert "~ VirtualMachine/web-1: updated, restarted" in result.stderr
    assert "the host matches main" in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing left behind
