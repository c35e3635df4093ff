"""fiotray.ops.tunnels over the demo services and its simulated tunnel."""

from __future__ import annotations

import asyncio

import pytest

from fiotray.core import errors
from fiotray.core.errors import FiotrayError, SetupError, VpnError
from fiotray.core.tunnelstate import State
from fiotray.ops import tunnels

FACTORY = "demo-factory"


CONF = """[Interface]
PrivateKey = dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=
Address = 10.9.0.2/32

[Peer]
PublicKey = 3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=
Endpoint = 127.0.0.1:51820
AllowedIPs = 10.9.0.0/24
"""


async def test_import_connect_remove(services, tmp_path):
    conf = tmp_path / "office.conf"
    conf.write_text(CONF)
    tunnel = await tunnels.import_conf(services, conf)
    assert tunnel.name == "office" and tunnel.kind == "plain"
    assert "PrivateKey" not in tunnel.template
    assert {t.name for t in tunnels.list_tunnels(services)} == {FACTORY, "office"}
    assert tunnels.default_tunnel(services).name == FACTORY  # the first one stays default

    status = await tunnels.connect(services, FACTORY, wait=2)
    assert status.state is State.CONNECTED
    with pytest.raises(VpnError) as refused:
        await tunnels.remove(services, FACTORY)
    assert refused.value.code == errors.TUNNEL_UP
    assert (await tunnels.disconnect(services, FACTORY)).state is State.DISCONNECTED
    await tunnels.remove(services, "office")
    assert [t.name for t in tunnels.list_tunnels(services)] == [FACTORY]


def without_tunnel(services) -> None:
    """The demo factory with no tunnel yet: a factory has one tunnel at most."""
    services.tunnels.remove(FACTORY)


async def test_a_factory_has_one_tunnel(services):
    # The dialog said "choose another name", but the interface comes from the factory.
    with pytest.raises(SetupError, match=f"Factory {FACTORY} already has a tunnel") as caught:
        await tunnels.add_foundries(services, address="10.42.42.200", name="second")
    assert f"fiotray tunnels remove {FACTORY}" in str(caught.value)
    assert [t.name for t in services.tunnels.list()] == [FACTORY]
    without_tunnel(services)
    added = await tunnels.add_foundries(services, address="10.42.42.200", name="second")
    assert added.tunnel.factory == FACTORY


async def test_add_foundries_tunnel_checks_the_address(services):
    without_tunnel(services)
    with pytest.raises(FiotrayError):
        await tunnels.add_foundries(services, address="10.42.42.77", name="taken")
    added = await tunnels.add_foundries(services, address="10.42.42.200", name="mine")
    assert added.tunnel.address == "10.42.42.200" and added.tunnel.factory == FACTORY
    assert added.admin_line.startswith("wg set ") and added.tunnel.public_key in added.admin_line


async def test_add_foundries_picks_an_address_no_device_can_ever_get(services):
    without_tunnel(services)
    from fiotray.core import wgconf
    from fiotray.core.services import DEMO_ADDRESS

    server = services.demo.server.factory
    first = wgconf.engineer_addresses("10.42.42.1")[0]
    server.add_device("squatter", vpn_address=first)  # set by hand, outside fioctl's reach
    added = await tunnels.add_foundries(services, name="auto")
    assert added.tunnel.address == wgconf.engineer_addresses("10.42.42.1")[1]
    assert wgconf.is_engineer_address(added.tunnel.address, "10.42.42.1")
    assert added.tunnel.address != DEMO_ADDRESS
    assert f"allowed-ips {added.tunnel.address}/32" in added.admin_line


async def test_the_admin_is_told_both_ways_to_admit_the_laptop(services, monkeypatch):
    without_tunnel(services)
    import socket

    for var in ("LOGNAME", "USER", "LNAME", "USERNAME"):  # getpass.getuser reads these
        monkeypatch.setenv(var, "ann;rm -rf")
    monkeypatch.setattr(socket, "gethostname", lambda: "Ann's laptop.local")
    added = await tunnels.add_foundries(services, name="both")
    t = added.tunnel
    assert added.server_admin_line == (
        f"fiotray-server -f {FACTORY} peers add ann-rm--rf-Ann-s-laptop {t.public_key} "
        f"--address {t.address}"
    )
    assert added.admin_line.startswith("wg set fiodemo-factory peer ")


async def test_a_key_the_keyring_refuses_takes_the_new_tunnel_back_out(
    services, tmp_path, monkeypatch
):
    from fiotray.core.errors import SecretsUnavailable

    conf = tmp_path / "office.conf"
    conf.write_text(CONF)
    seen: list[set[str]] = []

    def refuse(key: str, value: str) -> None:
        # The tunnel is saved before its key is written (a crash here leaves a tunnel
        # that says its key is missing, never a key nothing names).
        seen.append({t.name for t in tunnels.list_tunnels(services)})
        raise SecretsUnavailable("The system keyring refused to store the secret.")

    monkeypatch.setattr(services.secrets, "set", refuse)
    with pytest.raises(SecretsUnavailable):
        await tunnels.import_conf(services, conf)
    assert seen == [{FACTORY, "office"}]
    assert {t.name for t in tunnels.list_tunnels(services)} == {FACTORY}
    assert "tunnel/office/private_key" not in services.secrets.entry_names()


async def test_the_same_name_added_twice_is_refused_without_touching_the_first(services, tmp_path):
    conf = tmp_path / "office.conf"
    conf.write_text(CONF)
    first = await tunnels.import_conf(services, conf)
    key = services.secrets.get("tunnel/office/private_key")
    with pytest.raises(FiotrayError, match="already exists"):
        await tunnels.import_conf(services, conf)
    assert services.tunnels.get("office") == first
    assert services.secrets.get("tunnel/office/private_key") == key


def test_the_network_check_needs_a_route_and_sends_nothing():
    import os
    import shutil
    import subprocess
    import sys

    assert tunnels.endpoint_reachable("127.0.0.1:51820")
    assert tunnels.endpoint_reachable("[::1]:51820") or not socket_has_ipv6()
    for bad in ("", "no-port", "127.0.0.1:x", ":51820"):
        assert not tunnels.endpoint_reachable(bad), bad
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a network namespace")
    # A fresh network namespace: loopback down, no route to anywhere.
    code = (
        "from fiotray.ops.tunnels import endpoint_reachable as r;"
        "print(r('10.9.8.7:51820'), r('127.0.0.1:51820'))"
    )
    out = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert out.stdout.split() == ["False", "False"], out.stderr


def socket_has_ipv6() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.connect(("::1", 9))
        return True
    except OSError:
        return False


async def test_waiting_for_the_network_ends_when_the_server_can_be_reached(monkeypatch):
    from fiotray.core.tunnels import Tunnel

    tunnel = Tunnel("t", "plain", "wg-t", "", "k", endpoint="vpn.example.com:51820")
    answers = iter([False, False, True])
    asked: list[str] = []

    def reachable(endpoint: str) -> bool:
        asked.append(endpoint)
        return next(answers)

    monkeypatch.setattr(tunnels, "endpoint_reachable", reachable)
    await asyncio.wait_for(tunnels.wait_for_network(tunnel, first=0.01), 5)
    assert asked == ["vpn.example.com:51820"] * 3
    # The demo's simulated server is always there.
    asked.clear()
    await tunnels.wait_for_network(tunnel, demo=True)
    assert asked == []
