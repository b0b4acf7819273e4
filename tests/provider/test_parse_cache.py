"""providers/libvirt/parse_cache.py: a one-shot observation takes the parses of the last one
from the state directory, parses only the texts it has not seen, and is the observation a
parse of every text gives, whatever the file holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.providers.libvirt import parse_cache as pc
from reconciler.providers.libvirt import xml as lx
from reconciler.providers.libvirt.provider import LibvirtProvider
from tests.conftest import OtherTool, Recon


def observe(home: Path) -> dict[str, Any]:
    provider = LibvirtProvider(home=home)
    try:
        observation = provider.observe()
    finally:
        provider.close()
    return {
        str(ref): (o.fields, o.stamp, o.running, o.extra, o.volumes)
        for ref, o in observation.objects.items()
    }


def the_file(home: Path) -> Path:
    files = list((home / "cache").glob("parses-*.marshal"))
    assert len(files) == 1, files
    return files[0]


def test_the_next_observation_parses_nothing_it_has_seen(
    recon: Recon, applied: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = observe(recon.home)
    written = the_file(recon.home).stat().st_mtime_ns

    def refuse(text: str) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr(lx, "parse_domain", refuse)
    monkeypatch.setattr(lx, "parse_volume", refuse)
    assert observe(recon.home) == first
    assert the_file(recon.home).stat().st_mtime_ns == written  # nothing new: not rewritten


def test_what_changed_behind_recons_back_is_parsed_again(
    recon: Recon, applied: Path, other_tool: OtherTool
) -> None:
    before = observe(recon.home)
    with other_tool(recon.host_xml) as conn:
        dom = conn.lookupByName("web-1")
        dom.destroy()
        text = dom.XMLDesc(2)
        assert "<vcpu placement='static' current='2'>" in text
        conn.defineXML(text.replace("current='2'>", "current='1'>", 1))
    after = observe(recon.home)
    assert after["VirtualMachine/web-1"] != before["VirtualMachine/web-1"]
    assert after["VirtualMachine/web-1"][0]["cpus"] == 1
    assert after["VirtualMachine/web-1"][2] is False
    others = {k: v for k, v in after.items() if k != "VirtualMachine/web-1" and "Host" not in k}
    assert others == {k: before[k] for k in others}


@pytest.mark.parametrize("damage", [b"", b"not marshal at all", b"\xe9\x00\x01", None])
def test_a_damaged_or_foreign_file_counts_as_none(
    recon: Recon, applied: Path, damage: bytes | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = observe(recon.home)
    path = the_file(recon.home)
    if damage is None:  # written by a recon whose parser differs: its tag does
        monkeypatch.setattr(pc, "_FORMAT", b"another parser")
    else:
        path.write_bytes(damage)
    assert observe(recon.home) == first
    assert pc.ParseCache(path)._load() != {}  # and written again, readable


def test_rows_give_back_the_parse(recon: Recon, applied: Path) -> None:
    provider = LibvirtProvider(home=recon.home)
    try:
        domains = provider.conn.listAllDomains(0)
        assert {d.name() for d in domains} >= {"web-1"}
        for dom in domains:
            for text in (dom.XMLDesc(0), dom.XMLDesc(2)):
                parsed = lx.parse_domain(text)
                assert pc.from_row(pc.to_row(parsed)) == parsed
        volumes = [v for p in provider.conn.listAllStoragePools(0) for v in p.listAllVolumes(0)]
        assert volumes
        for vol in volumes:
            volume = lx.parse_volume(vol.XMLDesc(0))
            assert pc.volume_from_row(pc.volume_row(volume)) == volume
    finally:
        provider.close()


def test_an_empty_host_needs_no_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert observe(home)  # its HostPolicy
    assert list((home / "cache").glob("*")) == []
