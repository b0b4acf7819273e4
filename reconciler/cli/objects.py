"""Host objects as `recon get -o yaml|json` prints them: manifests, as kubectl prints objects.

`apiVersion`, `kind`, `metadata` (name, labels, annotations, uid) and `spec` are what recon
would write: the spec is the applied fields recorded in recon's stamp turned back into their
nesting (model/fields.py `unflatten`), and the labels and annotations recorded with them, so
feeding the output to `recon apply -f -` changes nothing. An object recon does not own has no
stamp: its spec is what the host shows, in the same keys (best effort, not a manifest to
trust). `status` is what the host reports; the loader ignores it (as kubectl apply does), and
so it ignores `metadata.uid`. Several objects are a `List` (`apiVersion: v1`, `items`).

Nothing is stored besides the stamp's flat fields: the stamp already holds every field the
manifest set, and keeping the manifest text too would double every stamp on the host.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, get_args

from reconciler.model.artifacts import IMPLIED_FIELDS
from reconciler.model.fields import unflatten
from reconciler.model.kinds import API_VERSION, KINDS
from reconciler.providers.base import Observed

# HostPolicy has no name on the host (there is one host); printed under the name it is
# usually given.
HOST_POLICY_NAME = "host"
# What a host reports for a guest that is not part of its spec.
_REPORTED_ONLY = frozenset({"uuid"})


def display_name(obs: Observed) -> str:
    return obs.ref.name or HOST_POLICY_NAME


def to_object(obs: Observed) -> dict[str, Any]:
    stamp = obs.stamp if obs.owned else None
    metadata: dict[str, Any] = {"name": display_name(obs)}
    if stamp is not None and stamp.labels:
        metadata["labels"] = dict(stamp.labels)
    if stamp is not None and stamp.annotations:
        metadata["annotations"] = dict(stamp.annotations)
    if obs.uuid:
        metadata["uid"] = obs.uuid
    if stamp is not None:
        spec = unflatten({k: v for k, v in stamp.applied.items() if k not in IMPLIED_FIELDS})
    else:
        shown = _REPORTED_ONLY | IMPLIED_FIELDS
        spec = unflatten({k: v for k, v in obs.fields.items() if k not in shown})
    if stamp is not None and obs.ref.kind == "Template":
        _scripts_from(spec, stamp.file)
    if obs.ref.kind in KINDS:
        spec = _in_model_order(spec, KINDS[obs.ref.kind].model_fields["spec"].annotation)
    return {
        "apiVersion": API_VERSION,
        "kind": obs.ref.kind,
        "metadata": metadata,
        "spec": spec,
        "status": status(obs),
    }


def _scripts_from(spec: dict[str, Any], manifest_file: str) -> None:
    """A built Template's customize scripts by absolute path (from the directory of the
    manifest it was applied from): the object read back from standard input, which has no
    directory, still finds them, and its revision is the same."""
    build = spec.get("source", {}).get("build")
    if not isinstance(build, dict) or not os.path.isabs(manifest_file):
        return
    scripts = build.get("customize")
    if isinstance(scripts, list):
        base = os.path.dirname(manifest_file)
        build["customize"] = [
            s if not isinstance(s, str) or os.path.isabs(s) else os.path.join(base, s)
            for s in scripts
        ]


def _in_model_order(value: Any, model: Any) -> Any:
    """The keys in the order the model declares them (as a manifest is written), not the
    stamp's sorted order; keys the model does not know stay, last."""
    if isinstance(value, list):
        return [_in_model_order(v, model) for v in value]
    fields = getattr(model, "model_fields", None)
    if not isinstance(value, dict) or fields is None:
        return value
    out: dict[str, Any] = {}
    for name, info in fields.items():
        key = info.alias or name
        if key in value:
            out[key] = _in_model_order(value[key], _model_of(info.annotation))
    out.update({k: v for k, v in value.items() if k not in out})
    return out


def _model_of(annotation: Any) -> Any:
    """The pydantic model in `Model`, `Model | None` or `list[Model]`, if any."""
    if hasattr(annotation, "model_fields"):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def observed_state(obs: Observed) -> str | None:
    """The STATE a user reads: a guest's run state (a guest that crashed and stopped says
    so), a pool's or network's Active / Inactive (None: not known, e.g. an older export)."""
    if obs.ref.kind in ("StoragePool", "Network"):
        active = obs.extra.get("active")
        return None if active is None else ("Active" if active else "Inactive")
    state = obs.fields.get("state")
    if state == "Stopped" and obs.extra.get("stateReason") == "crashed":
        return "Stopped (crashed)"
    return None if state is None else str(state)


def status(obs: Observed) -> dict[str, Any]:
    out: dict[str, Any] = {
        "managed": obs.owned,
        "state": observed_state(obs),
        "uuid": obs.uuid,
        "running": obs.running,
    }
    if obs.ref.kind in ("VirtualMachine", "Container"):
        # Why it is in its state (paused by whom, shut off how), when the host says.
        out["stateReason"] = obs.extra.get("stateReason")
        how = obs.extra.get("guarantee")
        out["guarantee"] = {
            "bytes": obs.guaranteed_bytes,
            # How the host holds it (a cgroup, <min_guarantee>), or only recon's admission.
            "heldBy": how if obs.guaranteed_bytes else None,
            "held": bool(obs.guaranteed_bytes)
            and isinstance(how, str)
            and not how.startswith("admission only")
            and not how.endswith("when running"),
        }
        # What the guest itself says (its agent: VMs; its namespaces: containers), where
        # it was asked: its agent's state, its addresses, its OS.
        for key in ("agent", "agentError", "addresses", "os"):
            if obs.extra.get(key) is not None:
                out[key] = obs.extra[key]
        if obs.extra.get("guest") is not None:
            # Whether the settings inside a running container could be read back, and why not.
            out["guest"] = obs.extra["guest"]
    if obs.stamp is not None:
        out["stamp"] = {
            "file": obs.stamp.file,
            "specHash": obs.stamp.spec_hash,
            "revision": obs.stamp.revision,
            "set": obs.stamp.set_name,
        }
    if obs.stamp is not None and obs.stamp.record:
        # A built Template's artifact: revision, digest, build time, every package.
        out["artifact"] = dict(obs.stamp.record)
    if obs.ref.kind == "Template" and obs.in_use_by:
        out["usedBy"] = list(obs.in_use_by)
    if obs.ref.kind == "HostPolicy":
        out["note"] = (
            "the host keeps only KSM's settings; memoryReserve and guaranteeOvercommit are "
            "read from the manifest when a plan is made"
        )
    # What the host shows now, in diff's keys: the spec above is what was applied.
    out["observed"] = obs.fields
    return out


def as_list(objects: Sequence[Observed]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": [to_object(o) for o in objects]}
