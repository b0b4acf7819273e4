"""Template builds: `recon template build` against plain mmdebstrap of the same spec, in the
same run, and a cached re-run.

- floor: `mmdebstrap --mode=root --variant=minbase --include=PACKAGES SUITE out.tar SOURCES`,
  the same packages recon installs for the example container template, the host's own apt
  sources, no hooks, a cold package cache;
- recon, cold: `recon template build debian-12-minimal -f manifests/` into an empty artifact
  cache and an empty package cache (so both download everything);
- recon, cached: the same command again (the revision is in the cache: nothing is built; what
  is left is recon's own time: start-up, loading the manifests, hashing the scripts, reading the
  cache's record).

Runs as root (mmdebstrap --mode=root). Usage: `.venv/bin/python bench/templates.py [--runs N]
[--write]`; --write puts the table into docs/benchmarks.md (section "Template builds").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.run import DOCS, write_block  # noqa: E402
from reconciler.build import builder  # noqa: E402
from reconciler.build import sources as src  # noqa: E402
from reconciler.load.manifests import load_manifests  # noqa: E402
from reconciler.model.kinds import Template  # noqa: E402

RECON = str(Path(sys.executable).parent / "recon")
NAME = "debian-12-minimal"


def timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{result.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("template builds need root (mmdebstrap --mode=root)")
    loaded = load_manifests([str(REPO / "manifests")])
    (template,) = [
        r.manifest
        for r in loaded.resources
        if isinstance(r.manifest, Template) and r.manifest.name == NAME
    ]
    packages = sorted({*template.spec.packages, *builder.CONTAINER_BASE})
    sources = src.sources_for(template)
    floor: list[float] = []
    cold: list[float] = []
    cached: list[float] = []
    sizes: dict[str, int] = {}
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="recon-bench-tpl-", dir="/var/tmp") as tmp:
            work = Path(tmp)
            listing = work / "sources.list"
            listing.write_text("".join(s.line() + "\n" for s in sources))
            env = {**os.environ, "TMPDIR": str(work)}
            plain = [
                "mmdebstrap",
                "--mode=root",
                "--variant=minbase",
                f"--include={','.join(packages)}",
                "--aptopt=Acquire::Check-Valid-Until false",
                src.suite_of(template),
                str(work / "plain.tar"),
                str(listing),
            ]
            recon_env = {
                **os.environ,
                "RECON_HOME": str(work / "home"),
                "RECON_TEMPLATE_CACHE": str(work / "cache"),
                "RECON_APT_CACHE": str(work / "apt"),
            }
            build = [RECON, "template", "build", NAME, "-f", str(REPO / "manifests")]
            # Alternate which goes first: the mirror's (and the page cache's) warm-up favours
            # the second.
            order = ("floor", "recon") if run % 2 == 0 else ("recon", "floor")
            for which in order:
                if which == "floor":
                    floor.append(timed(plain, env))
                    sizes["floor"] = (work / "plain.tar").stat().st_size
                    (work / "plain.tar").unlink()
                else:
                    cold.append(timed(build, recon_env))
            record = next((work / "cache").glob("*/record.json"))
            sizes["recon"] = json.loads(record.read_text())["size"]
            cached.append(min(timed(build, recon_env) for _ in range(3)))
    ratio = statistics.median(cold) / statistics.median(floor)
    rows = [
        "| what | seconds (median of runs) | runs | target |",
        "|---|---|---|---|",
        f"| plain mmdebstrap (floor) | {statistics.median(floor):.1f} | {len(floor)} | - |",
        f"| recon template build, cold caches | {statistics.median(cold):.1f} | {len(cold)} | - |",
        f"| **ratio** recon / floor | **{ratio:.2f}x** | | within 1.2x: "
        f"{'met' if ratio <= 1.2 else 'not met'} |",
        f"| recon template build, cached (whole command) | {statistics.median(cached):.2f} | "
        f"{len(cached)} (best of 3 each) | under 1 s: "
        f"{'met' if statistics.median(cached) < 1 else 'not met'} |",
    ]
    body = "\n".join(rows) + (
        f"\n\nImage sizes: floor {sizes['floor'] / 1e6:.0f} MB, recon {sizes['recon'] / 1e6:.0f} "
        f"MB (recon's customize hooks: hostname, hosts, machine-id, SSH host keys, the "
        f"package list). Runs alternate which of the two goes first. Measured "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load average {os.getloadavg()[0]:.1f}."
    )
    print(body)
    if args.write:
        write_block(DOCS, "templates", body, "Template builds")


if __name__ == "__main__":
    main()
