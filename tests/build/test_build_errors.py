"""Builds that fail, through the CLI against the host's real apt sources: the cause in apt's
own words (or the script's), exit 1, nothing partial in the cache, nothing that needs the
template created, the rest applied. Needs root and the builders (skipped otherwise)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Recon, build_unavailable, output

TEMPLATE = """\
apiVersion: reconciler/v1
kind: Template
metadata: {{name: broken}}
spec:
  osName: debian
  version: "12"
  format: tar
  pool: default
  packages: [{packages}]
  source:
    build: {build}
---
apiVersion: reconciler/v1
kind: StoragePool
metadata: {{name: default}}
spec: {{path: {pool}}}
---
apiVersion: reconciler/v1
kind: Container
metadata: {{name: ct}}
spec:
  template: broken
  cpus: 1
  memory: 128Mi
  disk: {{pool: default, size: 1Gi}}
"""


@pytest.fixture(autouse=True)
def _can_build() -> None:
    reason = build_unavailable()
    if reason:
        pytest.skip(reason)


def run(tmp_path: Path, packages: str, build: str = "{}") -> tuple[str, Path, Recon]:
    d = tmp_path / "m"
    d.mkdir(exist_ok=True)
    (d / "all.yaml").write_text(
        TEMPLATE.format(packages=packages, build=build, pool=tmp_path / "pool")
    )
    cache = tmp_path / "cache"
    recon = Recon(tmp_path / "home", tmp_path)
    result = recon("apply", "-f", d, env={"RECON_TEMPLATE_CACHE": str(cache)}, timeout=900)
    assert result.returncode == 1, output(result)
    return output(result), cache, recon


def nothing_partial(cache: Path, recon: Recon) -> None:
    assert not cache.exists() or [p.name for p in cache.iterdir()] == []
    host = recon.host_xml.read_text()
    assert "<name>ct</name>" not in host  # the container that needs it is not created
    assert "<name>default</name>" in host  # the pool, which does not, is


def test_an_unknown_package_fails_in_apts_words(tmp_path: Path) -> None:
    text, cache, recon = run(tmp_path, "procps, no-such-package-recon-test")
    assert "Template/broken: the build failed:" in text
    assert "Unable to locate package no-such-package-recon-test" in text
    nothing_partial(cache, recon)


def test_a_customize_script_that_fails_is_named(tmp_path: Path) -> None:
    script = tmp_path / "m" / "fail.sh"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\necho 'recon-test: the script says no' >&2\nexit 3\n")
    script.chmod(0o755)
    text, cache, recon = run(tmp_path, "procps", "{customize: [fail.sh]}")
    assert "Template/broken: the build failed:" in text
    assert "fail.sh" in text
    nothing_partial(cache, recon)
    # A rerun trips over nothing a failed build left: it fails the same way, cleanly.
    again = recon(
        "apply", "-f", tmp_path / "m", env={"RECON_TEMPLATE_CACHE": str(cache)}, timeout=900
    )
    assert again.returncode == 1 and "Template/broken: the build failed:" in output(again)
