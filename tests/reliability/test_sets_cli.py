"""Who owns what: an object stamped by one `--set` is never changed, moved or pruned by
another without --adopt, so two sets (or two loops) cannot take it in turns."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Recon, edit, output


def test_an_object_of_another_set_is_refused_and_moves_only_with_adopt(
    recon: Recon, applied: Path
) -> None:
    db = applied / "vms" / "db-1.yaml"
    edit(db, "memory: 2Gi", "memory: 3Gi")
    for result in (
        recon("diff", "--set", "blue", "-f", db),
        recon("apply", "--set", "blue", "-f", db),
    ):
        assert result.returncode in (1, 2), output(result)
        assert "VirtualMachine/db-1 (set default): owned by another set" in result.stderr
        assert "--set default" in result.stderr and "--adopt" in result.stderr
    assert recon("diff", "--set", "blue", "-f", db).returncode == 2
    # Nothing was changed, nor re-stamped: the default set still owns it as it was.
    db_1 = recon.objects()["VirtualMachine/db-1"]
    assert db_1["stamp"]["set"] == "default" and db_1["fields"]["memory"] == "2Gi"
    # --adopt moves it on purpose; from then on the default set leaves it alone.
    moved = recon("apply", "--set", "blue", "--adopt", "-f", db)
    assert moved.returncode == 0, output(moved)
    db_1 = recon.objects()["VirtualMachine/db-1"]
    assert db_1["stamp"]["set"] == "blue" and db_1["fields"]["memory"] == "3Gi"
    edit(db, "memory: 3Gi", "memory: 2Gi")
    back = recon("apply", "-f", applied)
    assert back.returncode == 1, output(back)
    assert "VirtualMachine/db-1 (set blue): owned by another set" in back.stderr
    assert recon.objects()["VirtualMachine/db-1"]["fields"]["memory"] == "3Gi"
    # The default set's prune does not count it as its own either.
    db.unlink()
    pruned = recon("apply", "--prune", "-f", applied)
    assert pruned.returncode == 0, output(pruned)
    assert "VirtualMachine/db-1" in recon.objects()
