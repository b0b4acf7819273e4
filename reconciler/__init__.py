"""recon: a declarative, GitOps-style reconciler for OpenVZ/Virtuozzo-style virtualization hosts.

One-way flow: load -> validate -> graph -> observe -> diff -> plan -> apply -> status.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("recon")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
