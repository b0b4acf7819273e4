"""What libvirt's domain capabilities say about this host."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.providers.libvirt.xml.common import parse, text_of

# --- host capabilities ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DomainCapabilities:
    """What libvirt's domain capabilities say for one virttype on this host."""

    virttype: str
    # Some EFI firmware is installed: a firmware descriptor, or a loader image path.
    efi: bool


def parse_domain_capabilities(xml_text: str) -> DomainCapabilities:
    root = parse(xml_text, "domainCapabilities")
    firmware = {v.text for v in root.iterfind("os/enum[@name='firmware']/value")}
    loaders = [v.text for v in root.iterfind("os/loader/value") if v.text]
    return DomainCapabilities(
        virttype=text_of(root, "domain") or "",
        efi="efi" in firmware or bool(loaders),
    )
