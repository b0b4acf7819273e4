"""The manifest language, apiVersion `reconciler/v1`: one pydantic model per kind.

Models are strict (no coercion: `cpus: "2"` is an error, not 2), frozen, and forbid unknown
fields. Field names are camelCase in YAML. Checks that need more than one field or more than one
document live in reconciler.load.validate, where they can name the exact field.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

from reconciler.model.factories import empty_dict, empty_list
from reconciler.model.patterns import (
    COMPONENT_PATTERN,
    CPU_MODEL_PATTERN,
    DURATION_PATTERN,
    ENV_PATTERN,
    HOSTNAME_PATTERN,
    IFACE_PATTERN,
    LABEL_KEY_PATTERN,
    LABEL_VALUE_PATTERN,
    MAC_PATTERN,
    NAME_PATTERN,
    OS_NAME_PATTERN,
    PACKAGE_PATTERN,
    PATTERN_HELP,
    SHA256_PATTERN,
    SSH_KEY_PATTERN,
    SUITE_PATTERN,
    URL_PATTERN,
    URL_REST_MAX,
    URL_SHAPE,
    USER_PATTERN,
    UUID_PATTERN,
    VERSION_PATTERN,
)
from reconciler.model.quantity import (
    PERCENT_PATTERN,
    QUANTITY_PATTERN,
    format_quantity,
    parse_percent,
    parse_quantity,
)

API_VERSION = "reconciler/v1"


def _pattern(pattern: str, max_length: int | None = None) -> Any:
    return StringConstraints(pattern=pattern, max_length=max_length)


Name = Annotated[str, _pattern(NAME_PATTERN, 63)]
Hostname = Annotated[str, _pattern(HOSTNAME_PATTERN, 253)]
Uuid = Annotated[str, _pattern(UUID_PATTERN)]
LabelKey = Annotated[str, _pattern(LABEL_KEY_PATTERN, 317)]
LabelValue = Annotated[str, _pattern(LABEL_VALUE_PATTERN, 63)]

Quantity = Annotated[
    int,
    BeforeValidator(parse_quantity),
    PlainSerializer(format_quantity, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": QUANTITY_PATTERN}),
]
Percent = Annotated[
    int,
    BeforeValidator(parse_percent),
    PlainSerializer(lambda n: f"{n}%", return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": PERCENT_PATTERN}),
]


def _check_mac(value: str) -> str:
    if int(value[:2], 16) & 1:
        raise ValueError("MAC address must be unicast (the first octet must be even)")
    return value.lower()


Mac = Annotated[str, _pattern(MAC_PATTERN), AfterValidator(_check_mac)]


def _check_path(value: str) -> str:
    if "\x00" in value or "\n" in value:
        raise ValueError("path must not contain NUL or newline characters")
    return value


def _check_absolute_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("expected an absolute path starting with '/'")
    if ".." in value.split("/"):
        raise ValueError("path must not contain '..' components")
    return _check_path(value)


AbsolutePath = Annotated[
    str,
    StringConstraints(min_length=1, max_length=4096),
    AfterValidator(_check_absolute_path),
    WithJsonSchema({"type": "string", "pattern": "^/", "maxLength": 4096}),
]
FilePath = Annotated[
    str,
    StringConstraints(min_length=1, max_length=4096),
    AfterValidator(_check_path),
]


def _check_interface_address(value: str) -> str:
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError as exc:
        raise ValueError("expected an address with prefix such as '10.0.0.5/24'") from exc
    if "/" not in value:
        raise ValueError("expected an address with prefix such as '10.0.0.5/24'")
    return str(iface)


def _check_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise ValueError("expected an IP address such as '10.0.0.1'") from exc


InterfaceAddress = Annotated[
    str,
    StringConstraints(max_length=64),
    AfterValidator(_check_interface_address),
]
IpAddress = Annotated[str, StringConstraints(max_length=64), AfterValidator(_check_ip)]

Cpus = Annotated[int, Field(ge=1, le=4096)]
Duration = Annotated[str, _pattern(DURATION_PATTERN)]
_DURATION_UNITS = {"h": 3600, "d": 86400, "w": 7 * 86400}


def duration_seconds(value: str) -> int:
    """Seconds in a Duration such as '7d'."""
    return int(value[:-1]) * _DURATION_UNITS[value[-1]]


class Strict(BaseModel):
    """Base for every manifest object: strict types, unknown fields refused, immutable."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        hide_input_in_errors=True,
    )


# --- metadata ---------------------------------------------------------------------------------


class Metadata(Strict):
    name: Name
    labels: dict[LabelKey, LabelValue] = Field(default_factory=empty_dict)
    annotations: dict[LabelKey, Annotated[str, StringConstraints(max_length=4096)]] = Field(
        default_factory=empty_dict
    )


# --- secrets ----------------------------------------------------------------------------------


class SecretSource(Strict):
    """Where a secret value comes from. Exactly one of env or file."""

    env: Annotated[str, _pattern(ENV_PATTERN)] | None = None
    file: FilePath | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretSource:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' or 'file'")
        return self


class SecretRef(Strict):
    """A reference to a secret. The value itself never appears in a manifest."""

    value_from: SecretSource


# --- shared pieces ----------------------------------------------------------------------------

RunState = Literal["Running", "Stopped"]
BootDevice = Literal["disk", "network", "cdrom"]


class Disk(Strict):
    name: Name
    pool: Name
    size: Quantity
    format: Literal["qcow2"] = "qcow2"
    template: Name | None = None
    bus: Literal["virtio", "sata", "scsi", "ide"] = "virtio"


class VmInterface(Strict):
    network: Name
    mac: Mac | None = None
    model: Literal["virtio", "e1000", "rtl8139"] = "virtio"


class GuestUser(Strict):
    name: Annotated[str, _pattern(USER_PATTERN)]
    password: SecretRef | None = None
    # Public keys are not secrets: inline is what users of cloud-init and prlctl expect.
    ssh_authorized_keys: list[Annotated[str, _pattern(SSH_KEY_PATTERN, 16384)]] = Field(
        default_factory=empty_list
    )


class Guest(Strict):
    hostname: Hostname | None = None
    users: list[GuestUser] = Field(default_factory=empty_list)


# --- kinds ------------------------------------------------------------------------------------


class VirtualMachineSpec(Strict):
    uuid: Uuid | None = None
    cpus: Cpus
    max_cpus: Cpus | None = None
    memory: Quantity
    max_memory: Quantity | None = None
    memory_guarantee: Percent | None = None
    firmware: Literal["bios", "efi"] = "bios"
    boot_order: list[BootDevice] = Field(
        default_factory=lambda: list[BootDevice](["disk"]), min_length=1, max_length=3
    )
    disks: list[Disk] = Field(default_factory=empty_list, max_length=64)
    interfaces: list[VmInterface] = Field(default_factory=empty_list, max_length=32)
    guest: Guest | None = None
    state: RunState = "Running"
    autostart: bool = False
    # kvm or qemu (TCG): unset is the best the host offers. A VM nested in a VM without
    # hardware virtualization may need qemu (see docs/real-hosts.md).
    virtualization: Literal["kvm", "qemu"] | None = None
    cpu_model: Annotated[str, _pattern(CPU_MODEL_PATTERN)] | None = None


class ContainerDisk(Strict):
    pool: Name
    size: Quantity


class ContainerInterface(Strict):
    network: Name
    mac: Mac | None = None
    ip_addresses: list[InterfaceAddress] = Field(default_factory=empty_list, max_length=64)
    gateway: IpAddress | None = None


class ContainerDns(Strict):
    """The container's resolver: its /etc/resolv.conf, written by recon."""

    nameservers: list[IpAddress] = Field(min_length=1, max_length=3)
    search: list[Hostname] = Field(default_factory=empty_list, max_length=6)


class ContainerSpec(Strict):
    uuid: Uuid | None = None
    template: Name
    cpus: Cpus
    memory: Quantity
    memory_guarantee: Percent | None = None
    swap: Quantity = 0
    disk: ContainerDisk
    hostname: Hostname | None = None
    # Users, their passwords (by reference) and ssh keys, set inside the container; the
    # hostname may sit here too (as on a VM), but only in one of the two places.
    guest: Guest | None = None
    interfaces: list[ContainerInterface] = Field(default_factory=empty_list, max_length=32)
    dns: ContainerDns | None = None
    # Application templates layered on `template` (vzpkg's appcache): the root is made from
    # a cache of the OS template plus their packages. A change makes the root again.
    applications: list[Name] = Field(default_factory=empty_list, max_length=16)
    state: RunState = "Running"
    autostart: bool = False


class FileSource(Strict):
    """A local file; a relative path is read relative to the manifest's directory."""

    path: FilePath
    sha256: Annotated[str, _pattern(SHA256_PATTERN)]


class BuildSource(Strict):
    """Build the template from the distribution's packages with mmdebstrap (vzpkg create
    cache): spec.packages on top of the variant, from spec.repositories (by default the apt
    sources of the host recon runs on)."""

    # The release code name; by default the one osName and version name ('debian' '12' is
    # bookworm, 'ubuntu' '24.04' is noble).
    suite: Annotated[str, _pattern(SUITE_PATTERN)] | None = None
    variant: Literal["minbase", "required", "important", "standard"] = "minbase"
    # Scripts next to the manifest (a relative path is read relative to its directory), run
    # in order as `script ROOT` once the packages are in: EZ templates' post-cache. Their
    # content is part of what makes a template's revision.
    customize: list[FilePath] = Field(default_factory=empty_list, max_length=32)
    # Rebuild when the last build is older than this and the repository has moved since.
    max_age: Duration | None = None
    # The root filesystem's size (qcow2 templates; guests' disks may be larger).
    disk_size: Quantity = 2 * 1024**3


class TemplateSource(Strict):
    """Exactly one of file (an image you have) or build (made from a package list)."""

    file: FileSource | None = None
    build: BuildSource | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> TemplateSource:
        if (self.file is None) == (self.build is None):
            raise ValueError("give exactly one of 'file' or 'build'")
        return self


def _url_length(value: str) -> str:
    if len(value.partition("://")[2]) > URL_REST_MAX:
        raise ValueError(f"expected {PATTERN_HELP[URL_PATTERN]}")
    return value


class Repository(Strict):
    name: Name
    url: Annotated[str, _pattern(URL_SHAPE), AfterValidator(_url_length)] = Field(
        json_schema_extra={"pattern": URL_PATTERN}
    )
    # By default the template's suite and 'main'.
    suite: Annotated[str, _pattern(SUITE_PATTERN)] | None = None
    components: list[Annotated[str, _pattern(COMPONENT_PATTERN)]] = Field(
        default_factory=lambda: ["main"], min_length=1, max_length=8
    )
    # A mirror without a signature apt can check (a local file:// one): said out loud.
    trusted: bool = False


class TemplateSpec(Strict):
    os_name: Annotated[str, _pattern(OS_NAME_PATTERN)]
    version: Annotated[str, _pattern(VERSION_PATTERN)]
    arch: Literal["x86_64", "aarch64", "i686", "ppc64le"] = "x86_64"
    packages: list[Annotated[str, _pattern(PACKAGE_PATTERN)]] = Field(default_factory=empty_list)
    repositories: list[Repository] = Field(default_factory=empty_list)
    # qcow2: a VM base image (disk backing file); tar: a container template cache.
    format: Literal["qcow2", "tar"]
    # os: a whole system; application: packages (and scripts) that layer on the OS
    # template `base` for the Containers that name it in `applications`.
    type: Literal["os", "application"] = "os"
    base: Name | None = None
    pool: Name
    source: TemplateSource


class StoragePoolSpec(Strict):
    type: Literal["dir"] = "dir"
    path: AbsolutePath
    autostart: bool = True


class DhcpRange(Strict):
    start: IpAddress
    end: IpAddress


class Ipv4(Strict):
    address: InterfaceAddress
    dhcp: DhcpRange | None = None


class NetworkSpec(Strict):
    mode: Literal["nat", "route", "bridge", "isolated"] = "nat"
    bridge: Annotated[str, _pattern(IFACE_PATTERN)] | None = None
    ipv4: Ipv4 | None = None
    autostart: bool = True


class Ksm(Strict):
    enabled: bool
    pages_to_scan: Annotated[int, Field(ge=1, le=100000)] | None = None
    sleep_millisecs: Annotated[int, Field(ge=0, le=100000)] | None = None
    merge_across_nodes: bool | None = None


class HostPolicySpec(Strict):
    memory_reserve: Quantity = 0
    guarantee_overcommit: Literal["Refuse", "Warn"] = "Refuse"
    ksm: Ksm | None = None


class Manifest(Strict):
    """Envelope shared by every kind; subclasses pin `kind` and `spec`."""

    KIND: ClassVar[str] = ""
    api_version: Literal["reconciler/v1"]
    metadata: Metadata

    @property
    def name(self) -> str:
        return self.metadata.name


class VirtualMachine(Manifest):
    """A KVM/QEMU virtual machine (libvirt domain, type hvm)."""

    KIND: ClassVar[str] = "VirtualMachine"
    kind: Literal["VirtualMachine"]
    spec: VirtualMachineSpec


class Container(Manifest):
    """A system container (OpenVZ/Virtuozzo or libvirt LXC) built from an EZ template cache."""

    KIND: ClassVar[str] = "Container"
    kind: Literal["Container"]
    spec: ContainerSpec


class Template(Manifest):
    """An EZ OS template: identity, package set, and where its cache or base image comes from."""

    KIND: ClassVar[str] = "Template"
    kind: Literal["Template"]
    spec: TemplateSpec


class StoragePool(Manifest):
    """A directory storage pool for disks and template images."""

    KIND: ClassVar[str] = "StoragePool"
    kind: Literal["StoragePool"]
    spec: StoragePoolSpec


class Network(Manifest):
    """A virtual network: NAT, routed, isolated, or an existing host bridge."""

    KIND: ClassVar[str] = "Network"
    kind: Literal["Network"]
    spec: NetworkSpec


class HostPolicy(Manifest):
    """Host memory policy: the reserve kept for the host, guarantee overcommit, and KSM."""

    KIND: ClassVar[str] = "HostPolicy"
    kind: Literal["HostPolicy"]
    spec: HostPolicySpec


KINDS: dict[str, type[Manifest]] = {
    cls.KIND: cls for cls in (StoragePool, Network, Template, VirtualMachine, Container, HostPolicy)
}
