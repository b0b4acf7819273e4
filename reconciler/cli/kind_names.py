"""KIND as the verbs take it (get, delete, explain, completion), in any case: a kind, its
plural, or a short name. No command lives here."""

from __future__ import annotations

from reconciler.model.kinds import KINDS

# KIND as `get` and `delete KIND NAME` take it, in any case: a kind, its plural, a short name.
KIND_ALIASES = {
    **{k.lower(): k for k in KINDS},
    **{k.lower() + "s": k for k in KINDS},
    "vm": "VirtualMachine",
    "vms": "VirtualMachine",
    "ct": "Container",
    "cts": "Container",
    "pool": "StoragePool",
    "pools": "StoragePool",
    "net": "Network",
    "nets": "Network",
    "networks": "Network",
    "network": "Network",
    "tmpl": "Template",
}
