"""References resolved on the host, as kubectl resolves them: `recon apply -f vms/web-1.yaml`
may name a pool, network or template that no file given defines, if recon already owns it on
the host. `validate` stays offline and strict; `validate --allow-host-refs` reports such
references as notes. No command lives here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from reconciler.cli.objects import to_object
from reconciler.cli.output import fail, print_diagnostics
from reconciler.cli.render import echo_err
from reconciler.load.cross_checks import dangling_ref
from reconciler.model.diagnostics import Diagnostic
from reconciler.model.kinds import KINDS
from reconciler.model.refs import ResourceRef
from reconciler.model.resource import Resource
from reconciler.providers.base import Observation


def resolve_on_host(
    pending: Sequence[Diagnostic], observation: Observation, *, prune: bool, set_name: str
) -> list[Resource]:
    """Every reference in `pending` must name an object recon owns on the host, and one that
    this run will not prune (--prune stays scoped to the files given: an object of the same
    set that no file names would be deleted under the guest that uses it). Exits 2 with every
    reference that does not resolve.

    Returns the objects referred to as recon applied them (from their stamps): an apply needs
    some of them (a guest's disk is made from its template's image, found by the template's
    pool)."""
    problems: list[Diagnostic] = []
    used: dict[ResourceRef, Resource] = {}
    for diag in pending:
        ref = dangling_ref(diag)
        assert ref is not None
        obs = observation.objects.get(ref)
        if obs is None or not obs.owned or obs.stamp is None:
            problems.append(
                replace(
                    diag,
                    message=f"refers to {ref}, which no manifest defines and recon does not "
                    "own on the host",
                )
            )
        elif prune and obs.stamp.set_name == set_name:
            problems.append(
                replace(
                    diag,
                    message=f"refers to {ref}, which --prune would delete: no file given "
                    "defines it",
                    hint=f"add the file that defines {ref} to -f, or apply without --prune",
                )
            )
        elif ref not in used:
            manifest = {k: v for k, v in to_object(obs).items() if k != "status"}
            manifest["metadata"] = {"name": ref.name}
            used[ref] = Resource(KINDS[ref.kind].model_validate(manifest), obs.stamp.file, 0)
    if problems:
        print_diagnostics(problems)
        fail(
            f"{len(problems)} references do not resolve; nothing was done",
            "give the files that define them too (-f), or apply those first",
            code=2,
        )
    if used:
        echo_err("using from the host: " + ", ".join(sorted(str(ref) for ref in used)))
    return list(used.values())
