"""Bad flag values are usage errors (exit 2) naming the flag, before anything is read or
changed; an empty host setting never means a real host."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT, Recon, output

MANIFESTS = str(ROOT / "manifests")


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["watch", "-f", MANIFESTS, "--resync", "0"], "--resync"),
        (["watch", "-f", MANIFESTS, "--resync", "-5"], "--resync"),
        (["watch", "-f", MANIFESTS, "--resync", "-0.5"], "--resync"),
        (["watch", "-f", MANIFESTS, "--debounce", "nan"], "--debounce"),
        (["sync", "--repo", "file:///nonexistent", "--interval", "0"], "--interval"),
        (["sync", "--repo", "file:///nonexistent", "--interval", "-1"], "--interval"),
        (["watch", "-f", MANIFESTS, "--metrics-addr", "127.0.0.1:99999"], "--metrics-addr"),
        (["watch", "-f", MANIFESTS, "--metrics-addr", "localhost"], "--metrics-addr"),
        (["apply", "-f", MANIFESTS, "--shutdown-timeout", "-5"], "--shutdown-timeout"),
        (["apply", "-f", MANIFESTS, "--shutdown-timeout", "nan"], "--shutdown-timeout"),
        (["apply", "-f", MANIFESTS, "--set", "Prod Hosts"], "--set"),
        (["diff", "-f", MANIFESTS, "--set", "../x"], "--set"),
    ],
)
def test_bad_flag_values_are_usage_errors(recon: Recon, args: list[str], flag: str) -> None:
    result = recon(*args)
    assert result.returncode == 2, output(result)
    assert f"Invalid value for '{flag}'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not recon.host_xml.exists()  # nothing was opened, let alone applied


def test_an_empty_home_is_refused_not_the_current_directory(recon: Recon) -> None:
    result = recon("--home", "", "get")
    assert result.returncode == 2, output(result)
    assert "--home" in result.stderr
    assert not (recon.cwd / "host.xml").exists()


def test_an_empty_connect_is_the_embedded_host(recon: Recon) -> None:
    """`--connect ''` and `RECON_CONNECT=''` both mean the embedded host (libvirt's default
    URI would be the real qemu:///system as root)."""
    flag = recon("--connect", "", "apply", "-f", MANIFESTS)
    assert flag.returncode == 0, output(flag)
    assert recon.host_xml.exists()
    env = recon("diff", "-f", MANIFESTS, env={"RECON_CONNECT": ""})
    assert env.returncode == 0, output(env)
