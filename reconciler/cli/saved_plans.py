"""Saved plans (`recon diff --out PLAN.json`, `recon apply -f PLAN.json`): the file's format,
reading it back whole or refusing it (exit 2, never a traceback), and Terraform's stale-plan
rule (the saved manifests planned again against the host must give the recorded changes).
Shared by plan_cmds.py; no command lives here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reconciler.cli.output import fail
from reconciler.engine.plan import PlanOptions, make_plan
from reconciler.load.validate import ScriptError, implied_fields
from reconciler.model.errors import ReconError
from reconciler.model.fields import Fields
from reconciler.model.kinds import KINDS, Manifest
from reconciler.model.plan import Change, Plan
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.model.secrets import SecretValues
from reconciler.providers.base import Observation


def plan_json(plan: Plan, resources: Sequence[Resource], options: PlanOptions) -> dict[str, Any]:
    data = plan.to_json()
    data["recon-plan"] = 1
    # The set the plan was made for: what it creates must be stamped with it, or a later
    # `apply --prune` of another set would count those objects as its own.
    data["set"] = options.set_name
    # How it was planned: apply plans again with these and refuses what differs.
    data["options"] = {
        "prune": options.prune,
        "allowEmpty": options.allow_empty,
        "adopt": options.adopt,
        "deleteVolumes": options.delete_volumes,
        # Whether secret values were compared (not against an export): apply plans again
        # the same way.
        "secrets": options.secrets is not None,
    }
    data["resources"] = [
        {
            "file": r.file,
            "line": r.line,
            "manifest": r.manifest.model_dump(mode="json", by_alias=True, exclude_unset=True),
            # A built Template's revision, which its scripts' content is part of: the plan
            # may be applied where those scripts are not (another checkout, another machine).
            **({"inputs": dict(r.inputs)} if r.inputs else {}),
        }
        for r in resources
    ]
    return data


def plan_from_json(data: dict[str, Any]) -> tuple[Plan, list[Resource]]:
    """The plan and its manifests; a file edited into something else is a usage error, with
    the first thing found wrong (exit 2), never a traceback."""
    try:
        return _read_plan(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # pydantic's ValidationError is a ValueError: a manifest edited out of shape.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fail(
            f"the saved plan is malformed ({type(exc).__name__}: {first}); nothing was applied",
            "make it again with `recon diff --out`",
            code=2,
        )


def saved_options(data: dict[str, Any], values: SecretValues) -> PlanOptions:
    raw = data.get("options")
    if not isinstance(raw, dict) or not all(isinstance(v, bool) for v in raw.values()):
        fail(
            "the saved plan does not say how it was planned (made by an older recon?); "
            "nothing was applied",
            "make it again with `recon diff --out`",
            code=2,
        )
    return PlanOptions(
        prune=raw.get("prune", False),
        set_name=str(data.get("set", "default")),
        allow_empty=raw.get("allowEmpty", False),
        adopt=raw.get("adopt", False),
        revision=data.get("revision"),
        delete_volumes=raw.get("deleteVolumes", False),
        secrets=values if raw.get("secrets", False) else None,
    )


def same_as_saved(
    plan: Plan, resources: list[Resource], observation: Observation, options: PlanOptions
) -> None:
    """Terraform's stale-plan rule, and more: the saved manifests are planned again against
    the host (admission included), and anything but the recorded changes is refused. An
    edited manifest, a change added or removed by hand, cannot slip through."""
    try:
        again = make_plan(resources, observation, options)
    except ReconError as exc:
        fail(f"the saved plan's manifests are refused now: {exc}", exc.hint, code=1)
    if [c.to_json() for c in again.changes] != [c.to_json() for c in plan.changes]:
        fail(
            "the saved plan's changes are not what its manifests plan against this host "
            "(the file was edited); nothing was applied",
            "make it again with `recon diff --out` and review it",
            code=1,
        )


def _saved_inputs(manifest: Manifest, item: dict[str, Any]) -> Fields:
    """The implied fields the plan recorded. Where the scripts they come from can be read,
    they must still give the same: a script edited after the plan was made is refused."""
    saved = item.get("inputs") or {}
    if not isinstance(saved, dict) or not all(isinstance(v, str) for v in saved.values()):
        raise ValueError("resources[].inputs must map names to strings")
    try:
        now = implied_fields(manifest, item["file"])
    except ScriptError:
        return saved  # not here: the recorded revision names the build
    if now != saved:
        fail(
            f"{item['file']}: a customize script changed since the plan was made; "
            "nothing was applied",
            "make the plan again with `recon diff --out`",
            code=1,
        )
    return now


def _read_plan(data: dict[str, Any]) -> tuple[Plan, list[Resource]]:
    resources = []
    for item in data["resources"]:
        manifest = KINDS[item["manifest"]["kind"]].model_validate(item["manifest"])
        inputs = _saved_inputs(manifest, item)
        resources.append(Resource(manifest, item["file"], item["line"], inputs))
    plan = Plan(
        changes=[Change.from_json(c) for c in data["changes"]],
        unchanged=[ResourceRef.parse(r) for r in data["unchanged"]],
        fingerprint=data["fingerprint"],
        revision=data.get("revision"),
        host=data["host"],
        warnings=data.get("warnings", []),
    )
    return plan, resources


def saved_plan(paths: Sequence[str]) -> dict[str, Any] | None:
    if len(paths) != 1 or not paths[0].endswith(".json") or not Path(paths[0]).is_file():
        return None
    try:
        data = json.loads(Path(paths[0]).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        fail(f"{paths[0]}: not a readable plan file", code=2)
    if not isinstance(data, dict) or data.get("recon-plan") != 1:
        fail(f"{paths[0]}: not a plan saved by `recon diff --out`", code=2)
    return data
