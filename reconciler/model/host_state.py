"""The exported host state (`recon observe`, `--export-state`): the bulk observation of a host as
a versioned JSON document, so a pipeline without access to the host can plan against it.

The models here are the format: loading goes through them (strict), and the JSON Schema in
schemas/host-state.json is generated from them, so the two cannot disagree. Pure: no I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.json_schema import GenerateJsonSchema

from reconciler.model.factories import empty_dict, empty_list
from reconciler.model.schema import SCHEMA_DIALECT

FORMAT = "recon.host-state/v1"
SCHEMA_FILE = "host-state.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)


class StampState(_Strict):
    """recon's mark on an object it owns. It carries the applied fields, and those never hold a
    secret value: a password is recorded as its reference (`valueFrom`), never resolved."""

    file: str
    spec_hash: str = Field(alias="specHash")
    applied: dict[str, Any]
    revision: str | None
    set_name: str = Field(alias="set")
    managed_by: str = Field(alias="managedBy")
    labels: dict[str, str] = Field(default_factory=empty_dict)
    annotations: dict[str, str] = Field(default_factory=empty_dict)


class ObjectState(_Strict):
    """One object as the host had it; `fields` uses the flat keys of the manifests."""

    kind: str = Field(pattern=r"^[A-Z][A-Za-z]+$")
    name: str
    fields: dict[str, Any]
    stamp: StampState | None = Field(description="null: recon does not own it")
    uuid: str | None
    running: bool | None
    guaranteed_bytes: int = Field(alias="guaranteedBytes", ge=0)
    memory_bytes: int = Field(alias="memoryBytes", ge=0)
    extra: dict[str, Any] = Field(
        description="What the provider noted beyond the fields (how a guarantee is held, the "
        "host's free memory, template records, a guest's disk files); never compared."
    )
    in_use_by: list[str] = Field(
        default_factory=empty_list,
        alias="inUseBy",
        description="What still needs this object: paths (a pool's volumes, the disks backed "
        "by a template's image) or guests (a network's; those of the host's other libvirt "
        "driver, 'Container/NAME on URI'): a prune spares it while any is left.",
    )
    volumes: list[str] = Field(
        default_factory=empty_list,
        description="Paths of the volumes a delete takes with it (a guest's disks with "
        "--delete-volumes, a template's image).",
    )
    saved: dict[str, Any] = Field(
        default_factory=empty_dict,
        description="A running guest's saved definition (what its next boot gets), by field, "
        "where it differs from `fields` (what it runs now); compared with the manifest too.",
    )


class HostFactsState(_Strict):
    uri: str
    hostname: str
    driver: str
    memory_bytes: int = Field(alias="memoryBytes", ge=0)
    cpus: int = Field(ge=0)
    capabilities: dict[str, bool]


class HostStateDocument(_Strict):
    """A whole export. `fingerprint` is the observation's, as a saved plan records it."""

    format: Literal["recon.host-state/v1"]
    observed_at: AwareDatetime = Field(alias="observedAt")
    fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")
    complete: bool = Field(description="false: part of the host could not be read")
    host: HostFactsState
    objects: list[ObjectState]


class _NoTitles(GenerateJsonSchema):
    def field_title_should_be_set(self, schema: Any) -> bool:
        return False  # "Memorybytes" helps nobody; the descriptions do


def host_state_schema() -> dict[str, Any]:
    body = HostStateDocument.model_json_schema(by_alias=True, schema_generator=_NoTitles)
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": f"https://recon.dev/schemas/reconciler/v1/{SCHEMA_FILE}",
        **body,
    }


def age_text(observed_at: datetime, now: datetime) -> str:
    """How old an export is, to read: "42s", "5m", "3h", "2d"."""
    seconds = max(int((now - observed_at).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
