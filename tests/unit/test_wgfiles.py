import pytest

from fiotray.core.errors import VpnError
from fiotray.core.wgfiles import WireguardClient, WireguardServer, allocate_address, parse_lines

KEY = "kZ2Jx0nZ3wWmJ0C6m0sN3w4b2Ff0h3aT1x9Yp8QeWmE="


def test_client_marshal_is_fioctl_layout_without_trailing_newline():
    assert WireguardClient("10.42.42.2", KEY).marshal() == f"address=10.42.42.2\npubkey={KEY}"
    disabled = WireguardClient("10.42.42.2", KEY, enabled=False).marshal()
    assert disabled == f"address=10.42.42.2\npubkey={KEY}\nenabled=0"


def test_client_parse_is_tolerant_like_fioctl():
    wcc = WireguardClient.parse(f"  address = 10.42.42.9 \n\njunk line\npubkey={KEY}\n")
    assert (wcc.address, wcc.pubkey, wcc.enabled, wcc.unknown) == ("10.42.42.9", KEY, True, {})
    assert WireguardClient.parse("pubkey=x\nenabled=0").enabled is False
    # base64 keys end in '=': only the first '=' splits.
    assert WireguardClient.parse(f"pubkey={KEY}").pubkey == KEY
    assert WireguardClient.parse("address=1.2.3.4\nfoo=bar").unknown == {"foo": "bar"}


def test_server_parse_defaults_and_disabled():
    server = WireguardServer.parse(
        "endpoint=vpn.example.test:5555\nserver_address=10.42.42.1\npubkey=K"
    )
    assert (server.host, server.port, server.server_address, server.enabled) == (
        "vpn.example.test",
        5555,
        "10.42.42.1",
        True,
    )
    assert WireguardServer.parse("endpoint=[2001:db8::1]:51820\nenabled=0").host == "2001:db8::1"
    assert WireguardServer.parse("endpoint=h:1\nenabled=0").enabled is False


def test_parse_lines_keeps_last_duplicate():
    assert parse_lines("a=1\na=2") == {"a": "2"}


@pytest.mark.parametrize(
    ("server", "used", "expected"),
    [
        ("10.42.42.1", set(), "10.42.42.2"),
        ("10.42.42.1", {"10.42.42.2", "10.42.42.4"}, "10.42.42.3"),
        ("10.42.42.1", {f"10.42.42.{i}" for i in range(2, 256)}, "10.42.43.1"),  # skips .0
        ("10.42.42.254", {"10.42.42.255"}, "10.42.43.1"),
        ("10.42.42.1", {"not-an-ip", "10.42.42.2"}, "10.42.42.3"),
    ],
)
def test_allocate_address(server, used, expected):
    assert allocate_address(server, used) == expected


def test_allocate_gives_up_after_fioctl_window():
    used = {f"10.{b}.{c}.{d}" for b in (42, 43) for c in range(256) for d in range(256)}
    with pytest.raises(VpnError, match="unique IP"):
        allocate_address("10.42.42.1", used)


def test_allocate_rejects_bad_server_address():
    with pytest.raises(VpnError, match="not an IPv4"):
        allocate_address("10.42.42", set())
