"""The embedded host: libvirt's own test driver, persisted to a node file between commands.

The test driver keeps everything in memory and loads its initial state from a node file
(`test:///ABS/PATH`). After changes, recon writes every object back into that file atomically
(temp file + rename), so the next command finds the host as the last one left it. What the
node file format cannot carry (autostart flags) rides in an element of recon's namespace that
the driver ignores.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import libvirt

from reconciler.providers.libvirt.events import remember_write

TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"
RECON_NS = "http://recon.dev/xmlns/reconciler/v1"
ET.register_namespace("test", TEST_NS)
ET.register_namespace("recon", RECON_NS)

DEFAULT_MEMORY_KIB = 16 * 1024 * 1024
DEFAULT_CPUS = 8
# Run states as the node file spells them.
RUNNING, PAUSED, SHUTOFF = 1, 3, 5


def default_home() -> Path:
    env = os.environ.get("RECON_HOME")
    if env:
        return Path(env)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "recon"


def _empty_node(memory_kib: int, cpus: int) -> ET.Element:
    node = ET.Element("node")
    cpu = ET.SubElement(node, "cpu")
    for tag, value in (
        ("mhz", 2400),
        ("model", "x86_64"),
        ("nodes", 1),
        ("sockets", 1),
        ("cores", cpus),
        ("threads", 1),
        ("active", cpus),
    ):
        ET.SubElement(cpu, tag).text = str(value)
    ET.SubElement(node, "memory").text = str(memory_kib)
    return node


class EmbeddedHost:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._dirty = False
        self._last_save = 0.0

    @property
    def uri(self) -> str:
        return f"test://{self.path.resolve()}"

    def open(self) -> libvirt.virConnect:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            memory = int(os.environ.get("RECON_EMBEDDED_MEMORY_KIB", DEFAULT_MEMORY_KIB))
            cpus = int(os.environ.get("RECON_EMBEDDED_CPUS", DEFAULT_CPUS))
            self._write(_empty_node(memory, cpus))
        conn = libvirt.open(self.uri)
        self._restore_autostart(conn)
        return conn

    def _restore_autostart(self, conn: libvirt.virConnect) -> None:
        root = ET.parse(self.path).getroot()
        elem = root.find(f"{{{RECON_NS}}}embedded")
        if elem is None or not elem.text:
            return
        state: dict[str, list[str]] = json.loads(elem.text)
        for name in state.get("domains", []):
            conn.lookupByName(name).setAutostart(1)
        for name in state.get("networks", []):
            conn.networkLookupByName(name).setAutostart(1)
        for name in state.get("pools", []):
            conn.storagePoolLookupByName(name).setAutostart(1)

    def changed(self, conn: libvirt.virConnect, *, force: bool = False) -> None:
        """Persist soon: at most every half second during a long apply, always at the end.
        A process killed in between loses only what a rerun will redo."""
        self._dirty = True
        if force or time.monotonic() - self._last_save > 0.5:
            self.save(conn)

    def flush(self, conn: libvirt.virConnect) -> None:
        if self._dirty:
            self.save(conn)

    def save(self, conn: libvirt.virConnect) -> None:
        info = conn.getInfo()
        node = _empty_node(info[1] * 1024, info[2])
        autostart: dict[str, list[str]] = {"domains": [], "networks": [], "pools": []}
        for dom in conn.listAllDomains(0):
            elem = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            state = dom.state()[0]
            run = {libvirt.VIR_DOMAIN_RUNNING: RUNNING, libvirt.VIR_DOMAIN_PAUSED: PAUSED}.get(
                state, SHUTOFF
            )
            ET.SubElement(elem, f"{{{TEST_NS}}}runstate").text = str(run)
            node.append(elem)
            if dom.autostart():
                autostart["domains"].append(dom.name())
        for net in conn.listAllNetworks(0):
            node.append(ET.fromstring(net.XMLDesc(0)))
            if net.autostart():
                autostart["networks"].append(net.name())
        for pool in conn.listAllStoragePools(0):
            elem = ET.fromstring(pool.XMLDesc(0))
            for vol in pool.listAllVolumes(0):
                elem.append(ET.fromstring(vol.XMLDesc(0)))
            node.append(elem)
            if pool.autostart():
                autostart["pools"].append(pool.name())
        ET.SubElement(node, f"{{{RECON_NS}}}embedded").text = json.dumps(autostart)
        self._write(node)
        self._dirty = False
        self._last_save = time.monotonic()

    def _write(self, node: ET.Element) -> None:
        data: Any = ET.tostring(node, encoding="unicode")
        remember_write(data.encode("utf-8"))
        fd, tmp = tempfile.mkstemp(prefix=".host-", suffix=".xml", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
