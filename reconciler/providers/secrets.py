"""Resolving secret references at apply time. Values are returned, never logged or echoed."""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.model.kinds import SecretRef
from reconciler.providers.base import ProviderError


def resolve_secret(ref: SecretRef, base_dir: Path) -> str:
    source = ref.value_from
    if source.env is not None:
        value = os.environ.get(source.env)
        if value is None:
            raise ProviderError(
                f"secret environment variable {source.env} is not set",
                f"export {source.env} before running recon",
            )
        return value
    assert source.file is not None
    path = Path(source.file)
    if not path.is_absolute():
        path = base_dir / path
    try:
        return path.read_text(encoding="utf-8").rstrip("\n")
    except OSError as exc:
        raise ProviderError(f"cannot read secret file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ProviderError(f"secret file {path} is not UTF-8 text") from None
