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
from collections.abc import Iterable
from pathlib import Path

import libvirt

from reconciler.providers import ahead
from reconciler.providers.files import private_dirs
from reconciler.providers.libvirt.events import remember_write

TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"
RECON_NS = "http://recon.dev/xmlns/reconciler/v1"
ET.register_namespace("test", TEST_NS)
ET.register_namespace("recon", RECON_NS)

DEFAULT_MEMORY_KIB = 16 * 1024 * 1024
DEFAULT_CPUS = 8
# Run states as the node file spells them (libvirt's own virDomainState numbers).
RUNNING, PAUSED, SHUTOFF = 1, 3, 5


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
    def __init__(self, path: Path, *, remember: bool = True) -> None:
        """remember: keep the definitions an observation reads for the next save (a save
        reads every other one again)."""
        self.path = path
        self._remember = remember
        self._dirty = False
        self._last_save = 0.0
        self._save_cost = 0.0
        # Each domain's persistent definition as libvirt last gave it to this process (by
        # a save, or by an observation: `remember`), less those a change has touched since.
        self._definitions: dict[str, str] = {}
        # Networks and pools (with their volumes) as the last save wrote them, and their
        # autostart flags; None once a change may have touched them.
        self._storage: tuple[list[str], list[str], list[str]] | None = None
        # The node file as this process last read or wrote it: another process that
        # replaces it (another recon command, an operator's tool) changes this.
        self._signature: tuple[int, int, int, int] | None = None

    @property
    def uri(self) -> str:
        return ahead.node_file_uri(self.path)

    def open(self) -> libvirt.virConnect:
        if not self.path.exists():
            private_dirs(self.path.parent)
            memory = int(os.environ.get("RECON_EMBEDDED_MEMORY_KIB", DEFAULT_MEMORY_KIB))
            cpus = int(os.environ.get("RECON_EMBEDDED_CPUS", DEFAULT_CPUS))
            self._write(_empty_node(memory, cpus))
        opened = ahead.take(self.uri)  # opened while the command imported (recon diff)
        if opened is not None:
            conn, self._signature = opened
        else:
            # Taken before the driver reads the file: a write in between makes current() false.
            self._signature = self._stat()
            conn = libvirt.open(self.uri)
        self._restore_autostart(conn)
        return conn

    def _stat(self) -> ahead.Signature | None:
        return ahead.signature(self.path)

    def current(self) -> bool:
        """Whether the node file is still the one this process opened or last saved: a
        connection kept open across passes is only the host while nobody else wrote it.
        Every writer replaces the file (a new inode, new times), so a stat tells."""
        return self._signature is not None and self._stat() == self._signature

    def _restore_autostart(self, conn: libvirt.virConnect) -> None:
        state = self._read_embedded()
        for name in state.get("domains", []):
            conn.lookupByName(name).setAutostart(1)
        for name in state.get("networks", []):
            conn.networkLookupByName(name).setAutostart(1)
        for name in state.get("pools", []):
            conn.storagePoolLookupByName(name).setAutostart(1)

    def _read_embedded(self) -> dict[str, list[str]]:
        """recon's element sits at the top of the node file: stop reading once it is found,
        rather than parsing a file of thousands of domains a second time."""
        for _event, elem in ET.iterparse(self.path, events=("end",)):
            if elem.tag == f"{{{RECON_NS}}}embedded":
                return dict(json.loads(elem.text or "{}"))
            if elem.tag in ("domain", "network", "pool"):
                break  # an older file keeps it at the end
        root = ET.parse(self.path).getroot()
        found = root.find(f"{{{RECON_NS}}}embedded")
        return dict(json.loads(found.text or "{}")) if found is not None else {}

    def changed(
        self,
        conn: libvirt.virConnect,
        domains: Iterable[str] | None = None,
        *,
        storage: bool = True,
        force: bool = False,
    ) -> None:
        """Persist soon. `domains` names the domains whose definition changed (None: any
        may have); `storage`, whether networks, pools or volumes may have. Saves are spaced
        by at least half a second and by a few times what the last save cost, so a long
        apply is not spent rewriting the file; the end of a command always saves. A process
        killed in between loses only what a rerun will redo."""
        if storage:
            self._storage = None
        if domains is None:
            self._definitions.clear()
        else:
            for name in domains:
                self._definitions.pop(name, None)
        self._dirty = True
        gap = max(0.5, 4 * self._save_cost)
        if force or time.monotonic() - self._last_save > gap:
            self.save(conn)

    def flush(self, conn: libvirt.virConnect) -> None:
        if self._dirty:
            self.save(conn)

    def forget(self) -> None:
        """Drop what was kept for the next save (after the last one)."""
        self._definitions = {}
        self._storage = None

    def remember(self, name: str, definition: str) -> None:
        """A domain's persistent definition (XMLDesc INACTIVE) just read by an observation:
        the next save need not read it again, unless a change touches it first."""
        if self._remember:
            self._definitions[name] = definition

    @staticmethod
    def _domain_text(definition: str, run: int) -> str:
        # libvirt's own XML as it is (no declaration, one root element), with the run state
        # the node file format adds; the namespace is declared where it is used.
        text = definition.rstrip().removesuffix("</domain>")
        return f'{text}<test:runstate xmlns:test="{TEST_NS}">{run}</test:runstate></domain>'

    def save(self, conn: libvirt.virConnect) -> None:
        started = time.monotonic()
        info = conn.getInfo()
        # Domains: only those a change touched since they were last read are read again. The
        # driver is in this process: asking each domain its state costs less than listing
        # them all once per state.
        domains: list[str] = []
        definitions: dict[str, str] = {}
        autostart_domains: list[str] = []
        for dom in conn.listAllDomains(0):
            name = dom.name()
            state = dom.state()[0]
            run = state if state in (RUNNING, PAUSED) else SHUTOFF
            if dom.autostart():
                autostart_domains.append(name)
            definition = self._definitions.get(name)
            if definition is None:
                definition = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            definitions[name] = definition
            domains.append(self._domain_text(definition, run))
        if self._storage is None:
            self._storage = self._read_storage(conn)
        others, networks, pools = self._storage
        autostart = {"domains": sorted(autostart_domains), "networks": networks, "pools": pools}
        head = _empty_node(info[1] * 1024, info[2])
        ET.SubElement(head, f"{{{RECON_NS}}}embedded").text = json.dumps(autostart)
        opening = ET.tostring(head, encoding="unicode").removesuffix("</node>")
        self._write_text("".join([opening, *domains, *others, "</node>"]))
        self._definitions = definitions
        self._dirty = False
        self._last_save = time.monotonic()
        self._save_cost = self._last_save - started

    @staticmethod
    def _read_storage(conn: libvirt.virConnect) -> tuple[list[str], list[str], list[str]]:
        """Networks and pools as node-file text (a pool's volumes go inside its element),
        and the names of those that start with the host."""
        texts: list[str] = []
        networks: list[str] = []
        pools: list[str] = []
        for net in conn.listAllNetworks(0):
            texts.append(net.XMLDesc(0))
            if net.autostart():
                networks.append(net.name())
        for pool in conn.listAllStoragePools(0):
            texts.append(pool.XMLDesc(0).rstrip().removesuffix("</pool>"))
            texts += [vol.XMLDesc(0) for vol in pool.listAllVolumes(0)]
            texts.append("</pool>")
            if pool.autostart():
                pools.append(pool.name())
        return texts, networks, pools

    def _write(self, node: ET.Element) -> None:
        self._write_text(ET.tostring(node, encoding="unicode"))

    def _write_text(self, data: str) -> None:
        remember_write(data.encode("utf-8"))
        fd, tmp = tempfile.mkstemp(prefix=".host-", suffix=".xml", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            self._signature = self._stat()
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
