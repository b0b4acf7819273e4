"""recon's start-up against its floors, measured in the same run.

    .venv/bin/python bench/startup.py --write            # about a minute
    .venv/bin/python bench/startup.py --instructions     # also callgrind counts (slower)

Each command is a fresh process of the real `.venv/bin/recon`, alternated with the floors,
--repeat times (default 21); medians. The floors are the same interpreter:

    floor "python"         python -c pass                      (the interpreter and site)
    floor "yaml, libvirt"  python -c 'import yaml, libvirt'    (the issue's start-up floor)

and recon's commands: `recon --version`, `recon --help`, and `recon validate -f FILE` of one
small manifest (the least a command that reads manifests imports: the kinds and pydantic).

Wall time is noisy on a shared machine; with --instructions each command also runs once under
`valgrind --tool=callgrind`, whose instruction count does not move with the machine's load.
`python -X importtime` of `recon --version` names the modules start-up imports. reconciler/
is byte-compiled first (bench/run.py's precompile), as an installed recon is. --write puts
the table into the `<!-- bench:startup -->` block of docs/benchmarks.md. Nothing here
asserts a time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import run  # bench/run.py: the child runner, precompile, write_block

MANIFEST = """\
apiVersion: reconciler/v1
kind: StoragePool
metadata:
  name: default
spec:
  path: /var/lib/recon/pools/default
"""


def commands(recon: str, python: str, manifest: str) -> dict[str, list[str]]:
    return {
        "python -c pass": [python, "-c", "pass"],
        "python -c 'import yaml, libvirt'": [python, "-c", "import yaml, libvirt"],
        "recon --version": [recon, "--version"],
        "recon --help": [recon, "--help"],
        "recon validate -f FILE (one StoragePool)": [recon, "validate", "-f", manifest],
    }


FLOOR = "python -c 'import yaml, libvirt'"


def instructions(argv: list[str], env: dict[str, str]) -> int | None:
    """Instructions executed by argv under callgrind (None without valgrind)."""
    if shutil.which("valgrind") is None:
        return None
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    found = re.search(r"Collected : (\d+)", out.stderr)
    return int(found.group(1)) if found else None


def heaviest_imports(python: str, recon: str, env: dict[str, str], top: int) -> list[list[Any]]:
    """The modules `recon --version` imports that cost most (cumulative microseconds)."""
    out = subprocess.run(
        [python, "-X", "importtime", recon, "--version"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    rows = []
    for line in out.stderr.splitlines():
        m = re.match(r"import time:\s*(\d+) \|\s*(\d+) \|( *)(\S+)", line)
        if m and len(m.group(3)) <= 3:  # top-level imports and their direct children
            rows.append([m.group(4), int(m.group(2))])
    return sorted(rows, key=lambda r: r[1], reverse=True)[:top]


def measure(
    argvs: dict[str, list[str]], env: dict[str, str], repeat: int, count: bool
) -> dict[str, Any]:
    seconds: dict[str, list[float]] = {name: [] for name in argvs}
    rss: dict[str, int] = {}
    for _ in range(repeat):
        for name, argv in argvs.items():  # alternating: one of each, then again
            child = run.run_child(argv, env, 120)
            if child.returncode != 0:
                raise run.BenchError(f"{name} exited {child.returncode}: {child.stderr[-800:]}")
            seconds[name].append(child.seconds)
            rss[name] = max(rss.get(name, 0), child.max_rss_kib)
    counts = {name: instructions(argv, env) for name, argv in argvs.items()} if count else {}
    return {"seconds": seconds, "max_rss_kib": rss, "instructions": counts}


def markdown(data: dict[str, Any]) -> str:
    seconds, counts = data["seconds"], data["instructions"]
    floor = statistics.median(seconds[FLOOR])
    floor_ir = counts.get(FLOOR)
    head = "| command | median s | min s | / `import yaml, libvirt` | max RSS MiB |"
    rule = "|---|---:|---:|---:|---:|"
    if counts:
        head += " instructions (M) | / floor's |"
        rule += "---:|---:|"
    lines = [head, rule]
    for name, runs in seconds.items():
        med = statistics.median(runs)
        row = (
            f"| `{name}` | {med:.3f} | {min(runs):.3f} | {med / floor:.2f}x "
            f"| {data['max_rss_kib'][name] / 1024:.0f} |"
        )
        if counts:
            ir = counts.get(name)
            row += f" {ir / 1e6:.0f} | {ir / floor_ir:.2f}x |" if ir and floor_ir else " - | - |"
        lines.append(row)
    imports = ", ".join(f"{name} {us / 1000:.1f} ms" for name, us in data["imports"])
    return (
        "\n".join(lines)
        + f"\n\n{data['repeat']} runs of each, alternating; measured {data['measured']} at "
        f"{data['tree']}, 1-minute load average {data['load']:.1f}. Heaviest imports of "
        f"`recon --version` (`-X importtime`, cumulative): {imports}.\n"
        f"\n<!-- bench:startup-data {json.dumps(data, separators=(',', ':'))} -->"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=21, help="runs of each (median)")
    parser.add_argument("--instructions", action="store_true", help="also callgrind counts")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--docs", type=Path, default=run.DOCS, help=argparse.SUPPRESS)
    parser.add_argument("--recon", type=Path, default=run.REPO / ".venv" / "bin" / "recon")
    parser.add_argument("--top", type=int, default=6, help="heaviest imports shown")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    python = args.recon.parent / "python"
    if not args.recon.exists() or not python.exists():
        parser.error(f"{args.recon}: no such command (run ./scripts/bootstrap or set --recon)")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    run.precompile(python, log)
    with tempfile.TemporaryDirectory(prefix="recon-startup-") as tmp:
        manifest = Path(tmp) / "pool.yaml"
        manifest.write_text(MANIFEST, encoding="utf-8")
        env = {**run._base_env(), "RECON_HOME": str(Path(tmp) / "home")}
        argvs = commands(str(args.recon), str(python), str(manifest))
        data = measure(argvs, env, args.repeat, args.instructions)
        data["imports"] = heaviest_imports(str(python), str(args.recon), env, args.top)
    data["repeat"] = args.repeat
    data["measured"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    data["tree"] = run.source_tree()
    data["load"] = os.getloadavg()[0]
    text = markdown(data)
    print(text)
    if args.write:
        run.write_block(args.docs, "startup", text, "Start-up")
        log(f"wrote {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
