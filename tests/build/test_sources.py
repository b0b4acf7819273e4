"""Where a build's packages come from: the host's apt sources (one-line and deb822), or the
template's repositories, and the repositories' state (their Release dates). No network: the
mirrors here are file:// trees and a closed local port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.build import sources as src
from reconciler.model.kinds import Template

DEB822 = """\
Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
Enabled: no
URIs: http://disabled.example/debian
Suites: bookworm
"""


def template(**spec: Any) -> Template:
    base: dict[str, Any] = {
        "osName": "debian",
        "version": "12",
        "format": "tar",
        "pool": "default",
        "source": {"build": {}},
    }
    base.update(spec)
    return Template.model_validate(
        {"apiVersion": "reconciler/v1", "kind": "Template", "metadata": {"name": "t"}, "spec": base}
    )


def apt_etc(tmp_path: Path, sources_list: str = "", deb822: str = "") -> Path:
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list").write_text(sources_list)
    if deb822:
        (etc / "sources.list.d" / "debian.sources").write_text(deb822)
    return etc


def test_deb822_entries_become_one_source_per_uri_and_suite(tmp_path: Path) -> None:
    found = src.host_sources(apt_etc(tmp_path, deb822=DEB822))
    assert [(s.uri, s.suite) for s in found] == [
        ("http://mirror.example/debian", "bookworm"),
        ("http://mirror.example/debian", "bookworm-updates"),
        ("http://mirror.example/debian-security", "bookworm-security"),
    ]
    assert found[0].components == ("main", "contrib")
    assert found[0].line() == (
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://mirror.example/debian bookworm main contrib"
    )


def test_one_line_sources_keep_their_options(tmp_path: Path) -> None:
    etc = apt_etc(
        tmp_path,
        "# old style\ndeb [arch=amd64 trusted=yes] http://m.example/debian bookworm main\n"
        "deb-src http://m.example/debian bookworm main\n",
    )
    (only,) = src.host_sources(etc)
    assert only.options == ("arch=amd64", "trusted=yes")
    assert only.suite == "bookworm"


def test_a_build_uses_the_hosts_entries_of_its_suite(tmp_path: Path) -> None:
    etc = apt_etc(tmp_path, "deb http://m.example/debian trixie main\n", DEB822)
    chosen = src.sources_for(template(), etc)
    assert {s.suite for s in chosen} == {"bookworm", "bookworm-updates", "bookworm-security"}


def test_a_suite_the_host_lacks_is_a_clear_error(tmp_path: Path) -> None:
    etc = apt_etc(tmp_path, deb822=DEB822)
    with pytest.raises(src.SourceError, match=r"no suite 'trixie'.*spec\.repositories"):
        src.sources_for(template(version="13"), etc)
    with pytest.raises(src.SourceError, match="no suite is known for debian 99"):
        src.sources_for(template(version="99"), etc)


def test_repositories_replace_the_hosts_sources(tmp_path: Path) -> None:
    t = template(
        repositories=[
            {"name": "local", "url": "file:///srv/mirror", "trusted": True},
            {"name": "extra", "url": "http://x.example/d", "suite": "extra", "components": ["a"]},
        ]
    )
    lines = [s.line() for s in src.sources_for(t, apt_etc(tmp_path, deb822=DEB822))]
    assert lines == [
        "deb [trusted=yes] file:///srv/mirror bookworm main",
        "deb http://x.example/d extra a",
    ]


def test_the_repository_state_is_each_suites_release_date(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    for suite, date in (
        ("bookworm", "Sat, 10 May 2025 10:00:00 UTC"),
        ("bookworm-updates", "Tue, 20 May 2025 08:00:00 UTC"),
    ):
        (mirror / "dists" / suite).mkdir(parents=True)
        (mirror / "dists" / suite / "Release").write_text(f"Origin: Debian\nDate: {date}\n")
    sources = [
        src.AptSource(mirror.as_uri(), s, ("main",)) for s in ("bookworm", "bookworm-updates")
    ]
    state = src.repository_state(sources)
    assert state == {
        "bookworm": "Sat, 10 May 2025 10:00:00 UTC",
        "bookworm-updates": "Tue, 20 May 2025 08:00:00 UTC",
    }
    # The newest date is the build's SOURCE_DATE_EPOCH.
    assert src.newest_epoch(state) == 1747728000


def test_an_unreachable_repository_says_so_without_its_address() -> None:
    source = src.AptSource("http://127.0.0.1:9/secret-mirror-path", "bookworm", ("main",))
    with pytest.raises(src.SourceError) as caught:
        src.repository_state([source])
    assert "cannot reach the repository of suite 'bookworm'" in str(caught.value)
    assert "secret-mirror-path" not in str(caught.value)
