"""Floors for bench/run.py: the least a process must do to get the same result as recon.

Run as a separate process by bench/run.py, with the same interpreter as recon, so that
interpreter start-up and the import of yaml and libvirt count on both sides. It imports only
the standard library, PyYAML (libyaml's C loader) and libvirt: nothing of recon.

    floor.py yaml  DIR                 parse every manifest with yaml.CSafeLoader
    floor.py diff  DIR HOST_XML        the above, then one bulk read of the embedded host
    floor.py apply OBJECTS_JSON NODE   create the same objects in a fresh node file, save it

It prints one JSON line with the time of each phase (seconds, measured inside the process).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

T0 = time.perf_counter()

import libvirt  # noqa: E402
import yaml  # noqa: E402

T_IMPORTS = time.perf_counter() - T0

TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"


def _quiet(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr by default."""


libvirt.registerErrorHandler(_quiet, None)


def manifest_files(top: str) -> list[str]:
    found: list[str] = []
    for directory, subdirs, names in os.walk(top):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        found += [
            os.path.join(directory, n)
            for n in names
            if not n.startswith(".") and n.endswith((".yaml", ".yml"))
        ]
    return sorted(found)


def parse_all(top: str) -> int:
    docs = 0
    for path in manifest_files(top):
        with open(path, "rb") as fh:
            docs += sum(1 for _ in yaml.load_all(fh.read(), Loader=yaml.CSafeLoader))
    return docs


def floor_yaml(top: str) -> dict[str, Any]:
    t = time.perf_counter()
    docs = parse_all(top)
    return {"documents": docs, "yaml_s": time.perf_counter() - t}


def floor_diff(top: str, host_xml: str) -> dict[str, Any]:
    out = floor_yaml(top)
    t = time.perf_counter()
    conn = libvirt.open(f"test://{Path(host_xml).resolve()}")
    out["open_s"] = time.perf_counter() - t
    t = time.perf_counter()
    domains = conn.listAllDomains(0)
    size = sum(len(dom.XMLDesc(0)) for dom in domains)
    out["read_s"] = time.perf_counter() - t
    out["domains"] = len(domains)
    out["xml_bytes"] = size
    conn.close()
    return out


def _node_head(memory_kib: int, cpus: int) -> str:
    """The same empty node recon's embedded host starts from."""
    cpu = (
        f"<cpu><mhz>2400</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets>"
        f"<cores>{cpus}</cores><threads>1</threads><active>{cpus}</active></cpu>"
    )
    return f"<node>{cpu}<memory>{memory_kib}</memory>"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(".floor-" + path.name)
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def floor_apply(objects_json: str, node: str) -> dict[str, Any]:
    """Create what recon's first apply created: pools (started) with their volumes, networks
    (started), domains defined then started, autostart flags; then save the node file once."""
    objects = json.loads(Path(objects_json).read_text(encoding="utf-8"))
    memory_kib, cpus = int(objects["memory_kib"]), int(objects["cpus"])
    node_path = Path(node).resolve()
    node_path.parent.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    t = time.perf_counter()
    _write_atomic(node_path, _node_head(memory_kib, cpus) + "</node>")
    conn = libvirt.open(f"test://{node_path}")
    out["open_s"] = time.perf_counter() - t

    t = time.perf_counter()
    for pool_obj in objects["pools"]:
        pool = conn.storagePoolDefineXML(pool_obj["xml"], 0)
        pool.create(0)
        pool.setAutostart(1 if pool_obj["autostart"] else 0)
        for vol_xml in pool_obj["volumes"]:
            pool.createXML(vol_xml, 0)
    for net_obj in objects["networks"]:
        net = conn.networkDefineXML(net_obj["xml"])
        net.create()
        net.setAutostart(1 if net_obj["autostart"] else 0)
    for dom_obj in objects["domains"]:
        dom = conn.defineXML(dom_obj["xml"])
        dom.setAutostart(1 if dom_obj["autostart"] else 0)
        if dom_obj["running"]:
            dom.create()
    out["create_s"] = time.perf_counter() - t

    # One save, as the embedded host must persist what it did (recon does it atomically too).
    t = time.perf_counter()
    parts = [_node_head(memory_kib, cpus)]
    run_tag = f"<test:runstate xmlns:test='{TEST_NS}'>{{}}</test:runstate></domain>"
    for dom in conn.listAllDomains(0):
        text = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        run = 1 if dom.isActive() else 5
        parts.append(text.rstrip()[: -len("</domain>")] + run_tag.format(run))
    for net in conn.listAllNetworks(0):
        parts.append(net.XMLDesc(0))
    for pool in conn.listAllStoragePools(0):
        text = pool.XMLDesc(0).rstrip()[: -len("</pool>")]
        parts.append(text + "".join(v.XMLDesc(0) for v in pool.listAllVolumes(0)) + "</pool>")
    parts.append("</node>")
    _write_atomic(node_path, "".join(parts))
    out["save_s"] = time.perf_counter() - t
    out["domains"] = len(objects["domains"])
    conn.close()
    return out


def main(argv: list[str]) -> int:
    mode, *args = argv
    if mode == "yaml":
        out = floor_yaml(args[0])
    elif mode == "diff":
        out = floor_diff(args[0], args[1])
    elif mode == "apply":
        out = floor_apply(args[0], args[1])
    else:
        print(f"unknown mode {mode!r}", file=sys.stderr)
        return 2
    out["imports_s"] = T_IMPORTS
    out["total_s"] = time.perf_counter() - T0
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
