"""SecretPolicy: where the operator lets recon read secrets from (the secrets directory for
`valueFrom.file`, the prefix of `valueFrom.env` names). Plain data with no model behind it, so
that the command line can build it at every start without importing the kinds; secrets.py
checks and reads the references against it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Without a configured prefix: the variables named for what the only secret field holds.
DEFAULT_ENV_SUFFIX = "_PASSWORD"


@dataclass(frozen=True, slots=True)
class SecretPolicy:
    directory: Path
    env_prefix: str | None = None

    def env_allowed(self, name: str) -> bool:
        if self.env_prefix:
            return name.startswith(self.env_prefix)
        return name.endswith(DEFAULT_ENV_SUFFIX) and name != DEFAULT_ENV_SUFFIX

    def env_rule(self) -> str:
        if self.env_prefix:
            return f"names starting with {self.env_prefix}"
        return f"names ending in {DEFAULT_ENV_SUFFIX} (no --secrets-env-prefix is set)"

    def file_path(self, name: str) -> Path | None:
        """Where a `valueFrom.file` is, or None when it is outside the secrets directory
        (`..`, an absolute path elsewhere, or a symbolic link that leads out)."""
        given = Path(name)
        if ".." in given.parts:
            return None
        path = given if given.is_absolute() else self.directory / given
        if not _inside(Path(os.path.normpath(path)), Path(os.path.normpath(self.directory))):
            return None
        # Links are followed as a read would follow them, and must still end inside.
        if not _inside(Path(os.path.realpath(path)), Path(os.path.realpath(self.directory))):
            return None
        return path


def _inside(path: Path, directory: Path) -> bool:
    return path != directory and path.is_relative_to(directory)
