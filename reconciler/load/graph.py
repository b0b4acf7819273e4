"""References between resources as a DAG, and the order to create (and, reversed, delete) them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from graphlib import CycleError, TopologicalSorter

from reconciler.model.errors import ReconError
from reconciler.model.kinds import Container, Manifest, Template, VirtualMachine
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource

# Among resources with no path between them, a stable order that reads well in a plan.
KIND_ORDER = ["HostPolicy", "StoragePool", "Network", "Template", "VirtualMachine", "Container"]


def kind_rank(kind: str) -> int:
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)


def references(manifest: Manifest) -> Iterable[ResourceRef]:
    """What a manifest needs to exist before it."""
    if isinstance(manifest, VirtualMachine):
        for disk in manifest.spec.disks:
            yield ResourceRef("StoragePool", disk.pool)
            if disk.template:
                yield ResourceRef("Template", disk.template)
        for iface in manifest.spec.interfaces:
            yield ResourceRef("Network", iface.network)
    elif isinstance(manifest, Container):
        yield ResourceRef("Template", manifest.spec.template)
        yield ResourceRef("StoragePool", manifest.spec.disk.pool)
        for citf in manifest.spec.interfaces:
            yield ResourceRef("Network", citf.network)
    elif isinstance(manifest, Template):
        yield ResourceRef("StoragePool", manifest.spec.pool)


def sort_key(ref: ResourceRef) -> tuple[int, str]:
    return (kind_rank(ref.kind), ref.name)


def creation_order(
    resources: Sequence[Resource], extra: Iterable[ResourceRef] = ()
) -> list[ResourceRef]:
    """Dependencies first. Refs in `extra` (objects only on the host) are ordered by kind."""
    graph: dict[ResourceRef, set[ResourceRef]] = {ref: set() for ref in extra}
    for res in resources:
        graph[res.ref] = set(references(res.manifest))
    # A reference to something outside the set (already on the host) orders nothing.
    known = graph.keys()
    for deps in graph.values():
        deps.intersection_update(known)
    sorter: TopologicalSorter[ResourceRef] = TopologicalSorter(graph)
    try:
        sorter.prepare()
    except CycleError as exc:  # references only point down the kind order, so this is a bug
        raise ReconError(f"reference cycle: {exc.args[1]}") from exc
    order: list[ResourceRef] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=sort_key)
        order.extend(ready)
        sorter.done(*ready)
    return order
