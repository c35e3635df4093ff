"""fiotray.server.daemon's rule for which peers are the server's, and the hosts block."""

from __future__ import annotations

import os
import stat

import pytest

from fiotray.core import wgconf
from fiotray.server import hosts
from fiotray.server.daemon import manages
from fiotray.server.sync import CurrentPeer

SERVER = "10.42.42.1"


@pytest.mark.parametrize(
    ("allowed", "managed"),
    [
        (("10.42.42.2/32",), True),  # a device
        (("10.42.127.254/32",), True),  # an engineer
        (("10.42.42.1/32",), False),  # the server's own address: never a peer's
        (("10.42.200.1/32",), False),  # outside the VPN network: set up by hand
        (("10.42.42.0/24",), False),  # a route, not one address
        (("10.42.42.2/32", "10.42.42.3/32"), False),
        ((), False),
    ],
)
def test_which_peers_the_server_manages(allowed, managed):
    assert manages(CurrentPeer("k", allowed), SERVER, wgconf.vpn_subnet(SERVER)) is managed


def test_the_hosts_block_is_replaced_in_place_atomically(tmp_path):
    path = tmp_path / "hosts"
    path.write_text(
        "127.0.0.1\tlocalhost\n"
        "## Factory(acme) VPN Lookups\n10.42.42.9\told-device\n## END Factory(acme) VPN Lookups\n"
        "192.0.2.1\tother\n"
    )
    path.chmod(0o644)
    entries = [("10.42.42.2", "dev-1"), ("10.42.42.3", "bad name;rm"), ("10.42.127.254", "alice")]
    assert hosts.update(path, "acme", entries)
    assert path.read_text() == (
        "127.0.0.1\tlocalhost\n"
        "## Factory(acme) VPN Lookups\n10.42.42.2\tdev-1\n10.42.127.254\talice\n"
        "## END Factory(acme) VPN Lookups\n"
        "192.0.2.1\tother\n"
    )
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert not hosts.update(path, "acme", entries)  # unchanged: not rewritten
    assert [p.name for p in tmp_path.iterdir()] == ["hosts"]  # no temp file left


def test_a_hosts_file_without_the_block_gets_it_at_the_end(tmp_path):
    path = tmp_path / "hosts"
    path.write_text("127.0.0.1\tlocalhost")  # no final newline
    hosts.update(path, "acme", [("10.42.42.2", "dev-1")])
    assert path.read_text().splitlines() == [
        "127.0.0.1\tlocalhost",
        "## Factory(acme) VPN Lookups",
        "10.42.42.2\tdev-1",
        "## END Factory(acme) VPN Lookups",
    ]
