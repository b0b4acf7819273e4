"""The libvirt provider: domain, network, pool and volume XML built and parsed with an XML
library, the embedded host (libvirt's test driver persisted to a file), observe and apply."""

from reconciler.providers.libvirt.provider import LibvirtProvider

__all__ = ["LibvirtProvider"]
