"""Secret references in a manifest, and the salted digest recon keeps of an applied value.

Pure: no I/O. Where values may come from and reading them is the load layer's job
(`reconciler/load/secrets.py`).

Why scrypt: the digest sits in the object's stamp, which anyone who may read the host's
libvirt objects can read (`virsh dumpxml`). Guest passwords are often guessable, and a fast
keyed hash (HMAC-SHA256 with the salt beside it) can be tried billions of times a second; scrypt
is slow and memory-hard on purpose, so a stamp is no shortcut to the password. The salt is
random per resource and per apply, so equal passwords on two guests have different digests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import lru_cache

from reconciler.model.diagnostics import FieldPath
from reconciler.model.kinds import Container, Manifest, SecretRef, VirtualMachine
from reconciler.model.refs import ResourceRef

# (resource, flat key of the secret such as `guest.users[admin].password`) -> the value.
SecretValues = Mapping[tuple[ResourceRef, str], str]

DIGEST_PREFIX = "scrypt$"
# About 16 MiB and a few tens of milliseconds per digest.
_N, _R, _P = 2**14, 8, 1


def secret_fields(manifest: Manifest) -> list[tuple[str, FieldPath, SecretRef]]:
    """Each secret the manifest references: its flat key, its path in the document, and the
    reference."""
    out: list[tuple[str, FieldPath, SecretRef]] = []
    if isinstance(manifest, VirtualMachine | Container) and manifest.spec.guest is not None:
        for index, user in enumerate(manifest.spec.guest.users):
            if user.password is not None:
                path: FieldPath = ("spec", "guest", "users", index, "password")
                out.append((f"guest.users[{user.name}].password", path, user.password))
    return out


@lru_cache(maxsize=4096)
def secret_digest(value: str, salt: str) -> str:
    """The salted digest of a secret value (kept in memory per process: a control loop
    compares the same values on every pass)."""
    digest = hashlib.scrypt(
        value.encode("utf-8"), salt=bytes.fromhex(salt), n=_N, r=_R, p=_P, dklen=32
    )
    return DIGEST_PREFIX + digest.hex()
