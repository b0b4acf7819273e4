"""reconciler.providers.libvirt.xml against golden files and libvirt's real test driver.

Round trips define what the module builds on `test:///default`, read the host's XML back and
check that every field the XML carries comes back as the manifest has it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import libvirt
import pytest
import yaml

from reconciler.model.fields import Fields, all_fields, set_fields
from reconciler.model.kinds import (
    KINDS,
    Container,
    Manifest,
    Network,
    StoragePool,
    VirtualMachine,
)
from reconciler.providers.base import Stamp
from reconciler.providers.libvirt import xml as lx

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
GOLDEN = Path(__file__).resolve().parent / "golden"
POOL_DIR = "/var/lib/recon/pools/default"
UUID = "a9e1c0de-5b5e-4c3a-9a51-0123456789ab"

# Fields the XML cannot carry: run state and autostart live on the connection, sizes and pools
# in volumes, guest settings and hostnames in what the caller does after define.
NOT_IN_XML = re.compile(
    r"^(state|autostart|uuid|hostname|template|applications|guest\..*|disk\..*"
    r"|disks\[[^\]]+\]\.(size|pool|template))$"
)

# libvirt prints every error to stderr as well as raising it; the tests expect some errors.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def load(relative: str) -> Manifest:
    data = yaml.safe_load((MANIFESTS / relative).read_text())
    return KINDS[data["kind"]].model_validate(data)


def load_vm(relative: str) -> VirtualMachine:
    manifest = load(relative)
    assert isinstance(manifest, VirtualMachine)
    return manifest


def load_container(relative: str) -> Container:
    manifest = load(relative)
    assert isinstance(manifest, Container)
    return manifest


def vm(**spec: Any) -> VirtualMachine:
    return VirtualMachine.model_validate(
        {
            "apiVersion": "reconciler/v1",
            "kind": "VirtualMachine",
            "metadata": {"name": spec.pop("name", "vm-x")},
            "spec": {"cpus": 1, "memory": "256Mi", **spec},
        }
    )


def container(**spec: Any) -> Container:
    return Container.model_validate(
        {
            "apiVersion": "reconciler/v1",
            "kind": "Container",
            "metadata": {"name": spec.pop("name", "ct-x")},
            "spec": {
                "template": "debian-12-minimal",
                "cpus": 1,
                "memory": "256Mi",
                "disk": {"pool": "default", "size": "1Gi"},
                **spec,
            },
        }
    )


def stamp_for(manifest: Manifest, file: str | None = None) -> Stamp:
    return Stamp(
        file=file or f"manifests/{manifest.name}.yaml",
        spec_hash="sha256:" + "ab" * 32,
        applied=set_fields(manifest),
        revision="0123abcd",
    )


def disk_volumes(manifest: VirtualMachine | Container) -> dict[str, lx.DiskVolume]:
    if isinstance(manifest, Container):
        name = lx.volume_name(manifest.name, "root", "raw")
        return {"root": lx.DiskVolume("default", name, f"{POOL_DIR}/{name}", "raw")}
    out = {}
    for disk in manifest.spec.disks:
        name = lx.volume_name(manifest.name, disk.name, disk.format)
        out[disk.name] = lx.DiskVolume(disk.pool, name, f"{POOL_DIR}/{name}", disk.format)
    return out


def domain_xml(manifest: VirtualMachine | Container, driver: str = "test", **kw: Any) -> str:
    return lx.build_domain(
        manifest,
        uuid=kw.pop("uuid", UUID),
        stamp=kw.pop("stamp", None) or stamp_for(manifest),
        volumes=disk_volumes(manifest),
        driver=driver,
        **kw,
    )


def carried(manifest: Manifest) -> Fields:
    """Every field the manifest has, defaults included, that the XML can show."""
    wanted = {**all_fields(manifest), **set_fields(manifest)}
    return {k: v for k, v in wanted.items() if not NOT_IN_XML.match(k)}


def assert_fields_match(manifest: Manifest, observed: Fields) -> None:
    expected = carried(manifest)
    assert expected, "nothing to compare"
    got = {k: observed.get(k, "<missing>") for k in expected}
    assert got == expected


@pytest.fixture
def conn() -> Iterator[Any]:
    """The test driver, with everything a test defines removed afterwards: test:///default is
    one host shared by every connection in the process."""
    c = libvirt.open("test:///default")
    domains = {d.name() for d in c.listAllDomains()}
    networks = {n.name() for n in c.listAllNetworks()}
    pools = {p.name() for p in c.listAllStoragePools()}
    yield c
    for dom in c.listAllDomains():
        if dom.name() not in domains:
            if dom.isActive():
                dom.destroy()
            dom.undefine()
    for net in c.listAllNetworks():
        if net.name() not in networks:
            if net.isActive():
                net.destroy()
            net.undefine()
    for pool in c.listAllStoragePools():
        if pool.name() not in pools:
            if pool.isActive():
                for vol in pool.listAllVolumes():
                    vol.delete()
                pool.destroy()
            pool.undefine()
    c.close()


# --- golden files -----------------------------------------------------------------------------


def _golden_web_1(driver: str) -> str:
    return domain_xml(load_vm("vms/web-1.yaml"), driver)


def _golden_network() -> str:
    net = load("network.yaml")
    assert isinstance(net, Network)
    return lx.build_network(net, uuid=UUID, stamp=stamp_for(net, "manifests/network.yaml"))


def _golden_pool() -> str:
    pool = load("storage.yaml")
    assert isinstance(pool, StoragePool)
    template = Stamp(
        file="manifests/templates.yaml",
        spec_hash="sha256:" + "cd" * 32,
        applied={"format": "qcow2", "pool": "default"},
    )
    return lx.build_pool(
        pool,
        uuid=UUID,
        stamp=stamp_for(pool, "manifests/storage.yaml"),
        templates={"debian-12-base": template},
    )


GOLDEN_CASES: dict[str, Callable[[], str]] = {
    "web-1.test.xml": lambda: _golden_web_1("test"),
    "web-1.kvm.xml": lambda: _golden_web_1("kvm"),
    "cache-1.test.xml": lambda: domain_xml(load_container("containers/cache-1.yaml"), "test"),
    "network-lan.xml": _golden_network,
    "pool-default.xml": _golden_pool,
}


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden(name: str) -> None:
    built = GOLDEN_CASES[name]()
    path = GOLDEN / name
    if os.environ.get("RECON_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(built)
    assert path.exists(), f"{path} is missing: run with RECON_UPDATE_GOLDEN=1 to write it"
    assert built == path.read_text()


# --- domains on the test driver ---------------------------------------------------------------

VMS = {
    "web-1": lambda: load_vm("vms/web-1.yaml"),
    "db-1": lambda: load_vm("vms/db-1.yaml"),
    # libvirt drops current= when it equals the count: maxCpus must still read back.
    "efi-mixed": lambda: vm(
        name="efi-1",
        cpus=2,
        maxCpus=2,
        memory="768Mi",
        maxMemory="2Gi",
        firmware="efi",
        bootOrder=["cdrom", "network", "disk"],
        disks=[
            {"name": "sys", "pool": "default", "size": "1Gi"},
            {"name": "logs", "pool": "default", "size": "1Gi", "bus": "sata"},
            {"name": "more-data", "pool": "default", "size": "1Gi"},
        ],
        interfaces=[{"network": "lan", "model": "e1000"}, {"network": "wan", "model": "rtl8139"}],
    ),
    # The CPU model shares <cpu> with the NUMA cell DIMM hotplug needs.
    "cpu-model": lambda: vm(
        name="cpu-1",
        cpus=1,
        memory="512Mi",
        maxMemory="1Gi",
        cpuModel="qemu64",
        disks=[{"name": "sys", "pool": "default", "size": "1Gi"}],
        interfaces=[{"network": "lan"}],
    ),
}


@pytest.mark.parametrize("case", sorted(VMS))
def test_vm_round_trip(conn: Any, case: str) -> None:
    manifest = VMS[case]()
    stamp = stamp_for(manifest)
    dom = conn.defineXML(domain_xml(manifest, stamp=stamp))
    defined = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    dom.create()
    # Both what a restart would use and what the running guest has.
    for text in (defined, dom.XMLDesc(0)):
        parsed = lx.parse_domain(text)
        assert_fields_match(manifest, parsed.fields)
        assert parsed.name == manifest.name
        assert parsed.uuid == UUID
        assert parsed.kind == "VirtualMachine"
        assert parsed.stamp == stamp
        assert parsed.memory_bytes == manifest.spec.memory
        assert parsed.disk_paths == {k: v.path for k, v in disk_volumes(manifest).items()}
        pct = manifest.spec.memory_guarantee or 0
        assert parsed.guarantee_bytes == manifest.spec.memory * pct // 100


def test_vm_disk_targets_count_per_bus() -> None:
    manifest = VMS["efi-mixed"]()
    root = ET.fromstring(domain_xml(manifest))
    targets = [(t.get("dev"), t.get("bus")) for t in root.iterfind("devices/disk/target")]
    assert targets == [("vda", "virtio"), ("sda", "sata"), ("vdb", "virtio")]


def test_container_round_trip(conn: Any) -> None:
    manifest = load_container("containers/cache-1.yaml")
    stamp = stamp_for(manifest)
    dom = conn.defineXML(domain_xml(manifest, stamp=stamp))
    dom.create()
    for flags in (libvirt.VIR_DOMAIN_XML_INACTIVE, 0):
        parsed = lx.parse_domain(dom.XMLDesc(flags))
        assert_fields_match(manifest, parsed.fields)
        assert parsed.kind == "Container"
        assert parsed.stamp == stamp
        assert parsed.disk_paths == {"root": f"{POOL_DIR}/cache-1_root.raw"}
        assert parsed.guarantee_bytes == 128 * 1024**2


def test_container_without_swap_or_routes_reads_back(conn: Any) -> None:
    manifest = container(
        swap="0",
        memoryGuarantee="0%",
        interfaces=[
            {"network": "lan", "ipAddresses": ["10.77.0.5/24", "fd00::5/64"]},
            {"network": "lan", "mac": "52:54:00:AA:00:01"},
        ],
    )
    parsed = lx.parse_domain(conn.defineXML(domain_xml(manifest)).XMLDesc(0))
    assert_fields_match(manifest, parsed.fields)
    assert parsed.fields["swap"] == "0"
    assert parsed.fields["memoryGuarantee"] == "0%"
    assert parsed.fields["interfaces[0].gateway"] is None
    assert parsed.fields["interfaces[1].ipAddresses"] == []


def test_live_memory_change_is_observed(conn: Any) -> None:
    manifest = load_vm("vms/web-1.yaml")
    dom = conn.defineXML(domain_xml(manifest))
    dom.create()
    # A balloon only goes down from <memory>; growing is DIMM hotplug, which this driver lacks.
    dom.setMemoryFlags(768 * 1024, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    live = lx.parse_domain(dom.XMLDesc(0))
    assert live.fields["memory"] == "768Mi"
    assert live.memory_bytes == 768 * 1024**2
    # The guarantee is bytes on the host: against less memory it is a larger share.
    assert live.fields["memoryGuarantee"] == "67%"
    assert lx.parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).fields["memory"] == "1Gi"


def test_stamp_from_metadata_api(conn: Any) -> None:
    manifest = load_vm("vms/web-1.yaml")
    stamp = stamp_for(manifest)
    dom = conn.defineXML(domain_xml(manifest, stamp=stamp))
    text = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, lx.NS)
    assert lx.stamp_from_element(ET.fromstring(text)) == ("VirtualMachine", stamp)


def test_foreign_domains_have_no_stamp(conn: Any) -> None:
    # test:///default ships a domain named "test" that recon never made.
    builtin = lx.parse_domain(conn.lookupByName("test").XMLDesc(0))
    assert builtin.stamp is None
    assert builtin.kind == "VirtualMachine"
    assert builtin.fields["cpus"] >= 1
    assert builtin.fields["memory"]

    foreign_ct = (
        "<domain type='test'><name>someone-else</name><memory unit='MiB'>64</memory>"
        "<vcpu>1</vcpu><os><type arch='x86_64'>exe</type><init>/bin/sh</init></os>"
        "<devices><filesystem type='mount'><source dir='/srv/ct'/><target dir='/'/>"
        "</filesystem></devices></domain>"
    )
    parsed = lx.parse_domain(conn.defineXML(foreign_ct).XMLDesc(0))
    assert parsed.stamp is None
    assert parsed.kind == "Container"
    assert parsed.memory_bytes == 64 * 1024**2
    assert parsed.disk_paths == {}


def test_foreign_disks_are_not_named() -> None:
    text = (
        "<domain type='kvm'><name>other</name><uuid>" + UUID + "</uuid>"
        "<memory>1048576</memory><vcpu>1</vcpu><os><type>hvm</type><loader>/x.fd</loader></os>"
        "<devices><disk type='file' device='disk'><source file='/images/other.img'/>"
        "<target dev='vda' bus='virtio'/></disk>"
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
        "<source file='/images/other-data.raw'/><target dev='vdb' bus='virtio'/></disk>"
        "<disk type='file' device='cdrom'><source file='/iso/other-cd.raw'/>"
        "<target dev='hdc' bus='ide'/></disk></devices></domain>"
    )
    parsed = lx.parse_domain(text)
    assert parsed.kind == "VirtualMachine"
    assert parsed.disk_paths == {"data": "/images/other-data.raw"}
    assert parsed.fields["disks[data].format"] == "raw"
    assert parsed.fields["firmware"] == "efi"
    # Only the test driver keeps the guarantee in the XML; elsewhere absence says nothing.
    assert "memoryGuarantee" not in parsed.fields
    assert parsed.guarantee_bytes == 0


# --- drivers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("driver", ["kvm", "qemu"])
def test_container_refused_on_qemu(driver: str) -> None:
    with pytest.raises(ValueError, match="cannot run containers"):
        domain_xml(load_container("containers/cache-1.yaml"), driver)


def test_vm_refused_on_lxc() -> None:
    with pytest.raises(ValueError, match="cannot run virtual machines"):
        domain_xml(load_vm("vms/web-1.yaml"), "lxc")


def test_unknown_driver_refused() -> None:
    with pytest.raises(ValueError, match="unknown libvirt driver"):
        domain_xml(load_vm("vms/web-1.yaml"), "xen")


@pytest.mark.parametrize("driver", ["qemu", "kvm", "vz"])
def test_no_min_guarantee_where_refused(driver: str) -> None:
    root = ET.fromstring(domain_xml(load_vm("vms/web-1.yaml"), driver))
    assert root.get("type") == driver
    assert root.find("memtune/min_guarantee") is None
    assert root.find("memtune") is None


def test_min_guarantee_on_test_driver() -> None:
    root = ET.fromstring(domain_xml(load_vm("vms/web-1.yaml"), "test"))
    guarantee = root.find("memtune/min_guarantee")
    assert guarantee is not None
    assert (guarantee.text, guarantee.get("unit")) == ("524288", "KiB")


@pytest.mark.parametrize("driver", ["test", "lxc", "vz"])
def test_container_min_guarantee_only_on_test(driver: str) -> None:
    root = ET.fromstring(domain_xml(load_container("containers/cache-1.yaml"), driver))
    assert (root.find("memtune/min_guarantee") is not None) == (driver == "test")
    swap = root.find("memtune/swap_hard_limit")
    assert swap is not None
    assert swap.text == str((512 + 256) * 1024)


def test_machine_type_only_for_qemu() -> None:
    manifest = load_vm("vms/web-1.yaml")
    for driver, machine in (("kvm", "pc"), ("qemu", "pc"), ("test", None), ("vz", None)):
        os_type = ET.fromstring(domain_xml(manifest, driver)).find("os/type")
        assert os_type is not None
        assert os_type.get("machine") == machine


def test_arch_comes_from_the_caller() -> None:
    root = ET.fromstring(domain_xml(load_vm("vms/web-1.yaml"), "test", arch="aarch64"))
    os_type = root.find("os/type")
    assert os_type is not None
    assert os_type.get("arch") == "aarch64"


def test_memory_not_in_whole_kib_refused() -> None:
    with pytest.raises(ValueError, match="whole number of KiB"):
        domain_xml(vm(memory="1000"))


def test_missing_volume_refused() -> None:
    manifest = load_vm("vms/db-1.yaml")
    with pytest.raises(ValueError, match="no volume given for disk 'data'"):
        lx.build_domain(
            manifest,
            uuid=UUID,
            stamp=stamp_for(manifest),
            driver="test",
            volumes={k: v for k, v in disk_volumes(manifest).items() if k != "data"},
        )


# --- escaping ---------------------------------------------------------------------------------

NASTY = "manifests/a<b&c>\"d'e]]>f&amp;<!DOCTYPE x>.yaml"


def nasty_stamp(manifest: Manifest) -> Stamp:
    return Stamp(
        file=NASTY,
        spec_hash="h]]>",
        applied={"note": NASTY, "n": [1, NASTY]},
        revision="<&>",
        set_name="set'\"",
    )


def test_stamp_escaping_domain(conn: Any) -> None:
    manifest = load_vm("vms/web-1.yaml")
    stamp = nasty_stamp(manifest)
    built = domain_xml(manifest, stamp=stamp)
    ET.fromstring(built)  # well-formed
    assert lx.parse_domain(built).stamp == stamp
    host_xml = conn.defineXML(built).XMLDesc(0)
    parsed = lx.parse_domain(host_xml)
    assert parsed.stamp == stamp
    assert_fields_match(manifest, parsed.fields)


def test_stamp_escaping_network_and_pool(conn: Any) -> None:
    net = load("network.yaml")
    pool = load("storage.yaml")
    assert isinstance(net, Network)
    assert isinstance(pool, StoragePool)
    net_stamp, pool_stamp = nasty_stamp(net), nasty_stamp(pool)
    defined = conn.networkDefineXML(lx.build_network(net, uuid=None, stamp=net_stamp))
    assert lx.parse_network(defined.XMLDesc(0)).stamp == net_stamp
    defined_pool = conn.storagePoolDefineXML(
        lx.build_pool(pool, uuid=None, stamp=pool_stamp, templates={"t-1": pool_stamp})
    )
    parsed = lx.parse_pool(defined_pool.XMLDesc(0))
    assert parsed.stamp == pool_stamp
    assert parsed.templates == {"t-1": pool_stamp}


@pytest.mark.parametrize("bad", ["a\x00b", "a\x1bb", "a\rb", "a\ud800b"])
def test_text_xml_cannot_carry_is_refused(bad: str) -> None:
    manifest = load_vm("vms/web-1.yaml")
    stamp = Stamp(file=bad, spec_hash="h", applied={})
    with pytest.raises(ValueError, match=r"XML cannot carry|carriage return"):
        domain_xml(manifest, stamp=stamp)


# --- stamps -----------------------------------------------------------------------------------


@pytest.mark.parametrize("revision", [None, "rev-1"])
def test_stamp_element_and_json_round_trip(revision: str | None) -> None:
    stamp = Stamp(
        file="f.yaml",
        spec_hash="abc",
        applied={"memory": "1Gi", "b": [1, "x"]},
        revision=revision,
        set_name="prod",
    )
    elem = lx.stamp_to_element(stamp, "Network")
    assert elem.tag == f"{{{lx.NS}}}resource"
    assert (elem.find(f"{{{lx.NS}}}revision") is None) == (revision is None)
    assert lx.stamp_from_element(elem) == ("Network", stamp)
    assert lx.stamp_from_json(lx.stamp_to_json(stamp, "Network")) == ("Network", stamp)
    assert "\n" not in lx.stamp_to_json(stamp, "Network")


def test_damaged_stamps_are_none() -> None:
    elem = lx.stamp_to_element(Stamp(file="f", spec_hash="h", applied={}), "Network")
    applied = elem.find(f"{{{lx.NS}}}applied")
    assert applied is not None
    applied.text = "{not json"
    assert lx.stamp_from_element(elem) is None
    assert lx.stamp_from_element(ET.Element("{urn:other}resource")) is None
    assert lx.stamp_from_json("[1, 2]") is None
    assert lx.stamp_from_json("not json") is None
    assert lx.stamp_from_json('{"kind": "Network", "applied": {}}') is None


# --- networks, pools, volumes -----------------------------------------------------------------


def test_network_round_trip(conn: Any) -> None:
    net = load("network.yaml")
    assert isinstance(net, Network)
    stamp = stamp_for(net)
    defined = conn.networkDefineXML(lx.build_network(net, uuid=UUID, stamp=stamp))
    defined.create()
    parsed = lx.parse_network(defined.XMLDesc(0))
    assert_fields_match(net, parsed.fields)
    assert (parsed.name, parsed.uuid, parsed.stamp) == ("lan", UUID, stamp)


@pytest.mark.parametrize(
    "spec",
    [
        {"mode": "isolated", "ipv4": {"address": "10.78.0.1/16"}},
        {"mode": "route", "bridge": "rt0", "ipv4": {"address": "10.79.0.1/24"}},
        {"mode": "bridge", "bridge": "br0"},
    ],
)
def test_network_modes_round_trip(conn: Any, spec: dict[str, Any]) -> None:
    net = Network.model_validate(
        {
            "apiVersion": "reconciler/v1",
            "kind": "Network",
            "metadata": {"name": "net-x"},
            "spec": spec,
        }
    )
    parsed = lx.parse_network(
        conn.networkDefineXML(lx.build_network(net, uuid=None, stamp=stamp_for(net))).XMLDesc(0)
    )
    assert_fields_match(net, parsed.fields)
    assert parsed.uuid  # filled in by libvirt


def test_network_netmask_reads_as_prefix(conn: Any) -> None:
    text = (
        "<network><name>masked</name><ip address='10.77.0.1' netmask='255.255.255.0'>"
        "<dhcp><range start='10.77.0.10' end='10.77.0.20'/></dhcp></ip></network>"
    )
    parsed = lx.parse_network(conn.networkDefineXML(text).XMLDesc(0))
    assert parsed.stamp is None
    assert parsed.fields == {
        "mode": "isolated",
        "ipv4.address": "10.77.0.1/24",
        "ipv4.dhcp.start": "10.77.0.10",
        "ipv4.dhcp.end": "10.77.0.20",
    }


def test_bridge_network_needs_bridge_and_no_ip() -> None:
    net = Network.model_validate(
        {
            "apiVersion": "reconciler/v1",
            "kind": "Network",
            "metadata": {"name": "n"},
            "spec": {"mode": "bridge"},
        }
    )
    with pytest.raises(ValueError, match="bridge"):
        lx.build_network(net, uuid=None, stamp=stamp_for(net))


def test_pool_round_trip(conn: Any) -> None:
    pool = load("storage.yaml")
    assert isinstance(pool, StoragePool)
    stamp = stamp_for(pool)
    templates = {
        "debian-12-base": Stamp(
            file="manifests/templates.yaml", spec_hash="t1", applied={"format": "qcow2"}
        ),
        "debian-12-minimal": Stamp(
            file="manifests/templates.yaml", spec_hash="t2", applied={"format": "tar"}, revision="r"
        ),
    }
    defined = conn.storagePoolDefineXML(
        lx.build_pool(pool, uuid=UUID, stamp=stamp, templates=templates)
    )
    parsed = lx.parse_pool(defined.XMLDesc(0))
    assert_fields_match(pool, parsed.fields)
    assert (parsed.name, parsed.uuid, parsed.stamp) == ("default", UUID, stamp)
    assert parsed.templates == templates

    # Template stamps change without the pool's manifest. (Inactive: the test driver
    # silently keeps the old definition of an active pool that is defined again.)
    more = {**templates, "extra": Stamp(file="x.yaml", spec_hash="t3", applied={})}
    del more["debian-12-base"]
    conn.storagePoolDefineXML(lx.build_pool_from_parsed(parsed, templates=more))
    defined.create()
    again = lx.parse_pool(defined.XMLDesc(0))
    assert again.templates == more
    assert (again.stamp, again.uuid, again.fields) == (stamp, UUID, parsed.fields)


def test_foreign_pool_has_no_stamp(conn: Any) -> None:
    parsed = lx.parse_pool(conn.storagePoolLookupByName("default-pool").XMLDesc(0))
    assert parsed.stamp is None
    assert parsed.templates == {}
    assert parsed.fields == {"type": "dir", "path": "/default-pool"}
    with pytest.raises(ValueError, match="no recon stamp"):
        lx.build_pool_from_parsed(parsed, templates={})


def test_volume_round_trip(conn: Any) -> None:
    pool = load("storage.yaml")
    assert isinstance(pool, StoragePool)
    defined = conn.storagePoolDefineXML(
        lx.build_pool(pool, uuid=None, stamp=stamp_for(pool), templates={})
    )
    defined.create()
    base_name = lx.template_volume_name("debian-12-base", "qcow2")
    base = lx.parse_volume(
        defined.createXML(lx.build_volume(base_name, capacity=2 * 1024**3, fmt="qcow2")).XMLDesc(0)
    )
    assert (base.name, base.path, base.capacity, base.format, base.backing_path) == (
        "template-debian-12-base.qcow2",
        f"{POOL_DIR}/template-debian-12-base.qcow2",
        2 * 1024**3,
        "qcow2",
        None,
    )
    backing = lx.DiskVolume("default", base.name, base.path, "qcow2")
    name = lx.volume_name("web-1", "root", "qcow2")
    vol = defined.createXML(
        lx.build_volume(name, capacity=10 * 1024**3, fmt="qcow2", backing=backing)
    )
    parsed = lx.parse_volume(vol.XMLDesc(0))
    assert (parsed.name, parsed.path, parsed.capacity, parsed.format, parsed.backing_path) == (
        "web-1_root.qcow2",
        vol.path(),
        10 * 1024**3,
        "qcow2",
        base.path,
    )
    raw = lx.parse_volume(
        defined.createXML(
            lx.build_volume("cache-1-root.raw", capacity=5 * 1024**3 + 7, fmt="raw")
        ).XMLDesc(0)
    )
    assert (raw.capacity, raw.format) == (5 * 1024**3 + 7, "raw")


@pytest.mark.parametrize(
    ("unit", "factor"),
    [
        (None, 1),
        ("bytes", 1),
        ("KiB", 1024),
        ("k", 1024),
        ("KB", 1000),
        ("G", 1024**3),
        ("GB", 1000**3),
        ("TiB", 1024**4),
    ],
)
def test_volume_capacity_units(unit: str | None, factor: int) -> None:
    vol = ET.Element("volume")
    ET.SubElement(vol, "name").text = "v.raw"
    cap = ET.SubElement(vol, "capacity")
    cap.text = "3"
    if unit is not None:
        cap.set("unit", unit)
    assert lx.parse_volume(ET.tostring(vol, encoding="unicode")).capacity == 3 * factor


@pytest.mark.parametrize("name", ["../../etc/evil", "a/b", ".hidden"])
def test_volume_names_must_be_plain(name: str) -> None:
    with pytest.raises(ValueError, match="plain file name"):
        lx.build_volume(name, capacity=1, fmt="raw")


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("owner", "disk", "fmt"),
    [("web-1", "root", "qcow2"), ("cache-1", "root", "raw"), ("a", "data-2", "qcow2")],
)
def test_volume_name_inverse(owner: str, disk: str, fmt: str) -> None:
    name = lx.volume_name(owner, disk, fmt)
    assert name == f"{owner}_{disk}.{fmt}"
    assert lx.disk_name_from_path(owner, f"/pools/x/{name}") == disk
    # A volume named before the "_" separator is still its guest's.
    assert lx.disk_name_from_path(owner, f"/pools/x/{owner}-{disk}.{fmt}") == disk


def test_volume_names_of_different_guests_never_collide() -> None:
    # Under "<guest>-<disk>" these were one file each: db-x-data, template-debian-12-base.
    assert lx.volume_name("db", "x-data", "qcow2") != lx.volume_name("db-x", "data", "qcow2")
    assert lx.volume_name("template", "debian-12-base", "qcow2") != lx.template_volume_name(
        "debian-12-base", "qcow2"
    )


@pytest.mark.parametrize(
    ("owner", "path"),
    [
        ("web-1", "/p/web-2-root.qcow2"),
        ("web", "/p/web-1-root.qcow2"),
        ("web", "/p/web-1_root.qcow2"),
        ("db", "/p/db-x_data.qcow2"),
        ("web-1", "/p/web-1-root.img"),
        ("web-1", "/p/web-1-.qcow2"),
        ("web-1", "/p/web-1root.raw"),
    ],
)
def test_disk_name_from_foreign_paths(owner: str, path: str) -> None:
    assert lx.disk_name_from_path(owner, path) is None


@pytest.mark.parametrize(
    ("owner", "disk", "fmt"),
    [("../x", "root", "qcow2"), ("web-1", "Root", "raw"), ("web-1", "root", "vmdk")],
)
def test_volume_name_refuses_bad_parts(owner: str, disk: str, fmt: str) -> None:
    with pytest.raises(ValueError):
        lx.volume_name(owner, disk, fmt)


def test_template_volume_name() -> None:
    assert lx.template_volume_name("debian-12-base", "qcow2") == "template-debian-12-base.qcow2"
    assert lx.template_volume_name("debian-12-minimal", "tar") == "template-debian-12-minimal.tar"
    with pytest.raises(ValueError):
        lx.template_volume_name("debian-12-minimal", "raw")


# --- hostile XML ------------------------------------------------------------------------------

LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>\n'
)
EXTERNAL = '<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'

PARSERS: dict[str, Callable[[str], object]] = {
    "domain": lx.parse_domain,
    "network": lx.parse_network,
    "pool": lx.parse_pool,
    "volume": lx.parse_volume,
}


@pytest.mark.parametrize("tag", sorted(PARSERS))
@pytest.mark.parametrize("prolog", [LAUGHS, EXTERNAL, "<!doctype x>"])
def test_parsers_refuse_doctype_and_entities(tag: str, prolog: str) -> None:
    text = f"{prolog}<{tag}><name>&lol2;</name></{tag}>"
    with pytest.raises(ValueError, match="DOCTYPE or entity"):
        PARSERS[tag](text)


@pytest.mark.parametrize("tag", sorted(PARSERS))
def test_parsers_refuse_malformed_and_wrong_roots(tag: str) -> None:
    with pytest.raises(ValueError, match="malformed"):
        PARSERS[tag](f"<{tag}><name>x</name>")
    with pytest.raises(ValueError, match="expected a"):
        PARSERS[tag]("<other><name>x</name></other>")


@pytest.mark.parametrize("virtualization", ["kvm", "qemu"])
def test_the_virtualization_type_asked_for_is_the_domain_type_and_reads_back(
    virtualization: str,
) -> None:
    manifest = vm(name="tcg-1", cpus=1, memory="512Mi", virtualization=virtualization)
    # Connected through the other driver, the domain still gets the type the manifest asks.
    driver = "qemu" if virtualization == "kvm" else "kvm"
    text = domain_xml(manifest, driver)
    assert ET.fromstring(text).get("type") == virtualization
    assert lx.parse_domain(text).fields["virtualization"] == virtualization
