"""Where recon keeps its state when no --home is given: $RECON_HOME, else
$XDG_STATE_HOME/recon, else ~/.local/state/recon. Imports nothing of libvirt, so that the
command line can name the directory without loading a provider."""

from __future__ import annotations

import os
from pathlib import Path


def default_home() -> Path:
    env = os.environ.get("RECON_HOME")
    if env:
        return Path(env)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "recon"
