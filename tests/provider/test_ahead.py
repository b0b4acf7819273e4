"""providers/ahead.py: a connection opened in a thread before the command needs it, taken
once by the provider's open, with the failure of the open raised where it is taken."""

from __future__ import annotations

from pathlib import Path

import libvirt
import pytest

from reconciler.providers import ahead
from reconciler.providers.libvirt.embedded import EmbeddedHost


def node_file(tmp_path: Path) -> Path:
    host = EmbeddedHost(tmp_path / "host.xml")
    host.open().close()  # writes an empty node file
    return host.path


def test_the_embedded_host_takes_the_connection_opened_ahead(tmp_path: Path) -> None:
    path = node_file(tmp_path)
    uri = ahead.node_file_uri(path)
    ahead.start(uri, path)
    host = EmbeddedHost(path)
    conn = host.open()
    try:
        assert uri not in ahead._openings  # taken, not left for another open
        assert conn.getType() == "TEST"
        assert host.current()
        # The signature came with the connection: a writer since makes the host stale.
        path.write_text(path.read_text())
        assert not host.current()
    finally:
        conn.close()
    assert ahead.take(uri) is None  # once only


def test_a_failed_open_is_raised_where_it_is_taken(tmp_path: Path) -> None:
    uri = f"test://{tmp_path}/no-such-node.xml"
    ahead.start(uri)
    with pytest.raises(libvirt.libvirtError):
        ahead.take(uri)
    assert ahead.take(uri) is None
