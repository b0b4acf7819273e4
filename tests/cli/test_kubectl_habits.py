"""kubectl habits (issue #15): words in tables, --dry-run's exit code, the prompt on a
terminal, objects from `get -o yaml|json` that apply back unchanged, label selectors."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Recon


def columns(table: str) -> dict[str, dict[str, str]]:
    """A kubectl-style table by NAME, each row by column heading (cells may hold spaces)."""
    head, *lines = [line for line in table.splitlines() if line.strip()]
    names = head.split()
    starts = [head.index(f" {n} ") + 1 if i else 0 for i, n in enumerate(names[:-1])]
    starts.append(head.index(" " + names[-1]) + 1)
    rows = {}
    for line in lines:
        if not line.startswith(names[0]) and line[0].isupper() and starts[1] < len(line):
            cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
            rows[cells[1]] = dict(zip(names, cells, strict=True))
    return rows


def test_get_wide_prints_yes_and_no_not_python_booleans(recon: Recon, applied: Path) -> None:
    wide = recon.ok("get", "-o", "wide").stdout
    assert "True" not in wide and "False" not in wide
    rows = columns(wide.split("\n\n")[0])
    # db-1 is the one guest the examples do not autostart.
    assert rows["db-1"]["AUTOSTART"] == "no"
    assert rows["web-1"]["AUTOSTART"] == "yes"
    assert rows["default"]["AUTOSTART"] == "yes"
    assert rows["debian-12-base"]["AUTOSTART"] == "-"
    assert rows["web-1"]["MANAGED"] == "yes"
