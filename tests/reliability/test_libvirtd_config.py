"""The libvirtd.conf scripts/libvirtd writes: with no authentication on the UNIX sockets, both
must be closed to other local users (the read-only one would show them every guest's
definition and recon's stamps). `scripts/libvirtd config` only prints the file; it starts,
stops and changes nothing."""

from __future__ import annotations

import re
import subprocess

from tests.conftest import ROOT


def settings() -> dict[str, str]:
    result = subprocess.run(
        [str(ROOT / "scripts" / "libvirtd"), "config"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    pairs = re.findall(r'^(\w+) = "([^"]*)"$', result.stdout, re.MULTILINE)
    assert len(pairs) == len(result.stdout.splitlines()), result.stdout
    return dict(pairs)


def test_both_sockets_are_root_and_libvirt_group_only() -> None:
    conf = settings()
    for key in ("unix_sock_rw_perms", "unix_sock_ro_perms"):
        mode = int(conf[key], 8)
        assert mode & 0o007 == 0, f"{key} = {conf[key]} lets any local user in"
    has_group = (
        subprocess.run(["getent", "group", "libvirt"], capture_output=True, check=False).returncode
        == 0
    )
    assert conf.get("unix_sock_group") == ("libvirt" if has_group else None)
    # Unauthenticated on purpose (no polkit): which is why the modes above matter.
    assert conf["auth_unix_ro"] == conf["auth_unix_rw"] == "none"
