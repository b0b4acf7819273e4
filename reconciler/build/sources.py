"""Where a template's packages come from: the repositories its manifest names, or else the
apt sources of the host recon runs on (so that a build works wherever `apt-get` works), and
what state those repositories are in (their Release files' dates).

A mirror's address is read from the host and handed to the builder; it is never written into
a record, a log line or an error message (it may carry credentials, and it says nothing about
what was built). Repositories are named by suite instead.
"""

from __future__ import annotations

import email.utils
import os
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.model.kinds import Template

APT_ETC = Path("/etc/apt")
# osName, version -> suite, for the manifests that give no suite.
CODENAMES = {
    ("debian", "11"): "bullseye",
    ("debian", "12"): "bookworm",
    ("debian", "13"): "trixie",
    ("ubuntu", "20.04"): "focal",
    ("ubuntu", "22.04"): "jammy",
    ("ubuntu", "24.04"): "noble",
}
_TIMEOUT = 30.0


class SourceError(Exception):
    """No usable repository for a template, said in words an operator can act on."""


@dataclass(frozen=True, slots=True)
class AptSource:
    uri: str
    suite: str
    components: tuple[str, ...]
    options: tuple[str, ...] = ()

    def line(self) -> str:
        opts = f"[{' '.join(self.options)}] " if self.options else ""
        return f"deb {opts}{self.uri} {self.suite} {' '.join(self.components)}"


def suite_of(template: Template) -> str:
    spec = template.spec
    assert spec.source.build is not None
    if spec.source.build.suite is not None:
        return spec.source.build.suite
    suite = CODENAMES.get((spec.os_name, spec.version))
    if suite is None:
        raise SourceError(
            f"no suite is known for {spec.os_name} {spec.version}: "
            "set spec.source.build.suite (e.g. bookworm)"
        )
    return suite


def sources_for(template: Template, etc: Path = APT_ETC) -> list[AptSource]:
    """The apt sources a build of this template uses."""
    suite = suite_of(template)
    if template.spec.repositories:
        return [
            AptSource(
                repo.url,
                repo.suite or suite,
                tuple(repo.components),
                ("trusted=yes",) if repo.trusted else (),
            )
            for repo in template.spec.repositories
        ]
    found = [s for s in host_sources(etc) if s.suite == suite or s.suite.startswith(f"{suite}-")]
    if not found:
        raise SourceError(
            f"the apt sources of this host have no suite {suite!r}: "
            "name the repository in spec.repositories"
        )
    return found


def host_sources(etc: Path = APT_ETC) -> list[AptSource]:
    """The `deb` entries of the host's apt sources, one-line and deb822 files alike."""
    out: list[AptSource] = []
    one_line = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]
    for path in one_line:
        out += _one_line_sources(_read(path))
    for path in sorted((etc / "sources.list.d").glob("*.sources")):
        out += _deb822_sources(_read(path))
    return out


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _one_line_sources(text: str) -> Iterable[AptSource]:
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        options: tuple[str, ...] = ()
        match = re.match(r"^deb\s+\[([^\]]*)\]\s+(.*)$", line)
        if match:
            options, line = tuple(match.group(1).split()), f"deb {match.group(2)}"
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "deb":
            yield AptSource(parts[1], parts[2], tuple(parts[3:]) or ("main",), options)


def _deb822_sources(text: str) -> Iterable[AptSource]:
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for raw in stanza.splitlines():
            if raw.startswith("#") or not raw.strip():
                continue
            if raw[0].isspace() and key:
                fields[key] += " " + raw.strip()
                continue
            key, _, value = raw.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        options = []
        if fields.get("signed-by") and "\n" not in fields["signed-by"]:
            signed = fields["signed-by"].split()
            if len(signed) == 1 and signed[0].startswith("/"):
                options.append(f"signed-by={signed[0]}")
        if fields.get("trusted", "").lower() == "yes":
            options.append("trusted=yes")
        components = tuple(fields.get("components", "main").split())
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                yield AptSource(uri, suite, components, tuple(options))


def apt_proxy() -> str | None:
    """The host's apt HTTP proxy (Acquire::http::Proxy), for builds to use as apt does."""
    try:
        out = subprocess.run(
            ["apt-config", "shell", "P", "Acquire::http::Proxy"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.match(r"^P='([^']*)'", out.strip())
    return match.group(1) if match and match.group(1) else None


def repository_state(sources: Sequence[AptSource]) -> dict[str, str]:
    """Suite -> the Date of its Release file, for every suite a build reads: what a build is
    made against. Its latest date is the build's SOURCE_DATE_EPOCH."""
    state: dict[str, str] = {}
    for source in sources:
        state[source.suite] = _release_date(source)
    return state


def newest_epoch(state: dict[str, str]) -> int:
    stamps = [email.utils.parsedate_to_datetime(d).timestamp() for d in state.values()]
    return int(max(stamps)) if stamps else 0


def _release_date(source: AptSource) -> str:
    base = source.uri.rstrip("/")
    last: str = "no Release file"
    for name in ("InRelease", "Release"):
        url = f"{base}/dists/{source.suite}/{name}"
        try:
            text = _fetch(url)
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code} {exc.reason}"
            continue
        except FileNotFoundError:
            last = "no Release file"
            continue
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
            raise SourceError(
                f"cannot reach the repository of suite {source.suite!r}: {reason}"
            ) from None
        match = re.search(r"^Date:\s*(.+)$", text, re.MULTILINE)
        if match:
            return match.group(1).strip()
        last = "its Release file has no Date"
    raise SourceError(f"the repository of suite {source.suite!r}: {last}")


def _fetch(url: str) -> str:
    if url.startswith("file://"):
        return Path(url[len("file://") :]).read_text(encoding="utf-8", errors="replace")
    proxy = apt_proxy()
    handlers: list[urllib.request.BaseHandler] = []
    if proxy and not os.environ.get("http_proxy"):
        handlers.append(urllib.request.ProxyHandler({"http": proxy, "https": proxy}))
    opener = urllib.request.build_opener(*handlers)
    with opener.open(url, timeout=_TIMEOUT) as response:
        data: bytes = response.read(4 << 20)
    return data.decode("utf-8", errors="replace")
