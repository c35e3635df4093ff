"""fiotray.server.setup: the key file, the factory's server file, the interface's config."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from fiotray.core import wgconf
from fiotray.core.errors import SetupError
from fiotray.core.wgfiles import WireguardServer
from fiotray.server import setup
from fiotray.server.interface import WgInterface


def test_a_missing_key_file_is_made_private_and_then_reused(tmp_path: Path):
    path = tmp_path / "private.key"
    key, made = setup.private_key(path)
    assert made and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert setup.private_key(path) == (key, False)
    # wg itself agrees it is a private key, and on its public half.
    public = subprocess.run(["wg", "pubkey"], input=key, capture_output=True, text=True)
    assert public.stdout.strip() == wgconf.public_key(key)
    path.write_text("not a key\n")
    with pytest.raises(SetupError, match="does not hold a WireGuard private key"):
        setup.read_private_key(path)


def test_the_factory_file_reads_back_as_devices_and_fioctl_read_it():
    pub = wgconf.public_key(wgconf.generate_private_key())
    f = setup.server_file("vpn.example.com", 5555, "10.42.42.1", pub)
    assert f.name == "wireguard-server" and f.unencrypted
    assert f.on_changed == ("/usr/share/fioconfig/handlers/factory-config-vpn",)
    assert f.value == f"endpoint=vpn.example.com:5555\nserver_address=10.42.42.1\npubkey={pub}"
    server = WireguardServer.parse(f.value)
    assert (server.host, server.port, server.server_address, server.pubkey) == (
        "vpn.example.com",
        5555,
        "10.42.42.1",
        pub,
    )
    settings = setup.ServerSettings.from_factory(server)
    # No key, no hooks: wg-quick only makes the interface and its address.
    assert setup.interface_config(settings) == (
        "[Interface]\nAddress = 10.42.42.1/32\nListenPort = 5555\nSaveConfig = false\n"
    )


def test_the_kept_settings_survive_a_restart_and_a_broken_copy_is_ignored(tmp_path: Path):
    path = tmp_path / "server.json"
    settings = setup.ServerSettings("10.42.42.1", 5555, "pub")
    settings.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert setup.ServerSettings.load(path) == settings
    path.write_text("{")
    assert setup.ServerSettings.load(path) is None


def _intf(tmp_path: Path, addresses: str = "") -> WgInterface:
    def run(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
        return subprocess.CompletedProcess(argv, 0, addresses.encode(), b"")

    return WgInterface("fioacme", run=run, sys_net=tmp_path)


@pytest.mark.parametrize(
    ("endpoint", "port", "vpnaddr", "message"),
    [
        ("vpn.example.com", 0, "10.42.42.1", "out of range"),
        ("1.2.3.4:5555", 5555, "10.42.42.1", "host name or IPv4"),
        ("", 5555, "10.42.42.1", "host name or IPv4"),
        ("vpn.example.com", 5555, "10.42.42", "not an IPv4 address"),
        ("vpn.example.com", 5555, "192.168.1.9", "already an address of this host"),
    ],
)
def test_enable_refuses_what_upstream_refuses(tmp_path, endpoint, port, vpnaddr, message):
    line = "2: eth0    inet 192.168.1.9/24 brd 192.168.1.255 scope global eth0\n"
    with pytest.raises(SetupError, match=message):
        setup.check_enable(endpoint, port, vpnaddr, _intf(tmp_path, line), check_ip=False)


def test_enable_run_again_on_its_own_interface_is_fine(tmp_path):
    (tmp_path / "fioacme").mkdir()  # the interface exists: its address and port are ours
    line = "5: fioacme    inet 10.42.42.1/32 scope global fioacme\n"
    intf = _intf(tmp_path, line)
    assert setup.check_enable("1.2.3.4", 5555, "10.42.42.1", intf, check_ip=True) == "10.42.42.1"
