"""Where secrets may come from, and reading them before anything is planned or applied.

The operator, never a manifest, says where recon may read secrets: one directory for
`valueFrom.file` (`--secrets-dir` / `RECON_SECRETS_DIR`, default `$RECON_HOME/secrets`) and
a prefix for `valueFrom.env` (`--secrets-env-prefix` / `RECON_SECRETS_ENV_PREFIX`; without
one, only names ending in `_PASSWORD`). Anything else is refused at validation, so a commit
cannot send `/etc/shadow` or the process's other variables into a guest.

Values are returned, never logged or echoed: diagnostics name the reference, not the value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from reconciler.load.document_checks import _Context
from reconciler.load.secret_policy import SecretPolicy as SecretPolicy  # re-exported
from reconciler.model.diagnostics import Diagnostic, FieldPath, format_path
from reconciler.model.kinds import SecretRef
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.model.secrets import secret_fields

Contexts = Mapping[ResourceRef, _Context]


def _diag(
    res: Resource, contexts: Contexts | None, path: FieldPath, message: str, hint: str
) -> Diagnostic:
    ctx = contexts.get(res.ref) if contexts is not None else None
    if ctx is not None:
        return ctx.diag(path, message, hint)
    return Diagnostic(
        file=res.file,
        line=res.line,
        column=None,
        message=message,
        kind=res.ref.kind,
        name=res.ref.name,
        field=format_path(path),
        hint=hint,
    )


def _place(
    res: Resource, contexts: Contexts | None, path: FieldPath, ref: SecretRef, policy: SecretPolicy
) -> tuple[Path | str | None, Diagnostic | None]:
    """Where the secret is read from (a file's path or a variable's name), or why not."""
    source = ref.value_from
    if source.env is not None:
        if policy.env_allowed(source.env):
            return source.env, None
        return None, _diag(
            res,
            contexts,
            (*path, "valueFrom", "env"),
            f"secret environment variable {source.env} is not one recon may read "
            f"({policy.env_rule()})",
            "the operator allows variables with --secrets-env-prefix or "
            "RECON_SECRETS_ENV_PREFIX; a manifest cannot",
        )
    assert source.file is not None
    found = policy.file_path(str(source.file))
    if found is not None:
        return found, None
    return None, _diag(
        res,
        contexts,
        (*path, "valueFrom", "file"),
        f"secret file {source.file} is outside the secrets directory {policy.directory}",
        "put the file in the secrets directory (a path relative to it); the operator sets "
        "the directory with --secrets-dir or RECON_SECRETS_DIR",
    )


def check_places(
    resources: Sequence[Resource], policy: SecretPolicy, contexts: Contexts | None = None
) -> list[Diagnostic]:
    """Every secret reference that points outside what the operator allows. No file is read
    and no variable looked at: validation needs no secret."""
    out = []
    for res in resources:
        for _key, path, ref in secret_fields(res.manifest):
            _found, problem = _place(res, contexts, path, ref, policy)
            if problem is not None:
                out.append(problem)
    return out


def read_secrets(
    resources: Sequence[Resource],
    policy: SecretPolicy,
    contexts: Contexts | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[dict[tuple[ResourceRef, str], str], list[Diagnostic]]:
    """The value of every secret the resources reference, and a diagnostic for each one that
    is not allowed, not set, or not readable. All of them are read before any plan is made,
    so a missing one stops a run before its first action."""
    env = os.environ if environ is None else environ
    values: dict[tuple[ResourceRef, str], str] = {}
    problems: list[Diagnostic] = []
    for res in resources:
        for key, path, ref in secret_fields(res.manifest):
            place, problem = _place(res, contexts, path, ref, policy)
            if problem is not None:
                problems.append(problem)
                continue
            if isinstance(place, str):
                value = env.get(place)
                if value is None:
                    problems.append(
                        _diag(
                            res,
                            contexts,
                            (*path, "valueFrom", "env"),
                            f"secret environment variable {place} is not set",
                            f"export {place} before running recon; nothing was applied",
                        )
                    )
                    continue
            else:
                assert isinstance(place, Path)
                try:
                    value = place.read_text(encoding="utf-8").rstrip("\n")
                except OSError as exc:
                    reason = exc.strerror or type(exc).__name__
                    problems.append(
                        _diag(
                            res,
                            contexts,
                            (*path, "valueFrom", "file"),
                            f"cannot read secret file {place}: {reason}",
                            "the file must exist in the secrets directory and be readable "
                            "by recon; nothing was applied",
                        )
                    )
                    continue
                except UnicodeDecodeError:
                    problems.append(
                        _diag(
                            res,
                            contexts,
                            (*path, "valueFrom", "file"),
                            f"secret file {place} is not UTF-8 text",
                            "nothing was applied",
                        )
                    )
                    continue
            values[(res.ref, key)] = value
    return values, problems
