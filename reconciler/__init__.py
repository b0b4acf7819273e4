"""recon: a declarative, GitOps-style reconciler for OpenVZ/Virtuozzo-style virtualization hosts.

One-way flow: load -> validate -> graph -> observe -> diff -> plan -> apply -> status.
"""

# The one place the version is written: pyproject.toml reads it from here (setuptools'
# dynamic version), so `recon --version` needs no importlib.metadata at start-up.
__version__ = "0.1.0"
