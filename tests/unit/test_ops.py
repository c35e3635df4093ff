"""fiotray.ops over the demo services: the fake API over HTTP, the simulated tunnel.

Each front end (CLI, GUI backend, MCP) only adapts these; what they decide is tested
here once.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fiotray.core import errors
from fiotray.core.devices import DeviceRow
from fiotray.core.errors import FiotrayError, VpnError
from fiotray.core.models import ListedDevice
from fiotray.core.services import demo_services
from fiotray.core.tunnelstate import State
from fiotray.ops import accounts, devices, ssh, tunnels

FACTORY = "demo-factory"
CONF = """[Interface]
PrivateKey = dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=
Address = 10.9.0.2/32

[Peer]
PublicKey = 3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=
Endpoint = 127.0.0.1:51820
AllowedIPs = 10.9.0.0/24
"""


@pytest.fixture
async def services():
    s = demo_services(devices=4)
    fake = s.demo.server.factory
    fake.auto_apply_after = None
    fake.add_device("on-vpn", vpn_address="10.42.42.77")
    fake.add_device("off-vpn", vpn_enabled=False)
    yield s
    await s.aclose()


def _row(*, enabled: bool, address: str = "", pending: bool = False) -> DeviceRow:
    device = ListedDevice("d", "uuid", "owner", None, None, "target", "", "main", False)
    return DeviceRow(device, enabled, address, pending)


# -- devices ------------------------------------------------------------------------


async def test_list_search_and_set_vpn(services):
    rows = await devices.list_devices(services)
    assert {"on-vpn", "off-vpn"} <= {r.device.name for r in rows}
    assert [r.device.name for r in await devices.list_devices(services, search="off-vp")] == [
        "off-vpn"
    ]
    state = await devices.set_vpn(services, FACTORY, "off-vpn", True)
    assert state.enabled and state.pending and state.address
    assert services.pending().names(FACTORY) == ["off-vpn"]
    services.demo.server.factory.apply_pending("off-vpn")
    applied = await devices.applied(services, FACTORY, "off-vpn")
    assert applied.enabled and not applied.pending
    assert services.pending().names(FACTORY) == []


async def test_hostile_device_name_never_reaches_the_api(services):
    before = len(services.demo.server.requests)
    with pytest.raises(FiotrayError):
        await devices.set_vpn(services, FACTORY, "-oProxyCommand=x", True)
    assert len(services.demo.server.requests) == before


def test_web_url_quotes_names():
    assert (
        devices.web_url("f", "a b/c") == "https://app.foundries.io/factories/f/devices/a%20b%2Fc/"
    )


@pytest.mark.parametrize(
    ("row", "tunnel", "state", "route", "no_key", "expect"),
    [
        # SSH needs the device on the VPN, and (but for the public route) the tunnel up.
        (
            dict(enabled=True, address="10.0.0.2"),
            True,
            State.CONNECTED,
            "jump",
            False,
            dict(ssh=None, enable_vpn="already enabled", disable_vpn=None),
        ),
        (
            dict(enabled=True, address="10.0.0.2"),
            True,
            State.DISCONNECTED,
            "jump",
            False,
            dict(ssh="connect the tunnel first"),
        ),
        (
            dict(enabled=True, address="10.0.0.2"),
            True,
            None,
            "direct",
            False,
            dict(ssh="connect the tunnel first"),
        ),
        (
            dict(enabled=True, address="10.0.0.2"),
            False,
            None,
            "jump",
            False,
            dict(ssh="no VPN tunnel for this factory"),
        ),
        (dict(enabled=True, address="10.0.0.2"), False, None, "public", False, dict(ssh=None)),
        (
            dict(enabled=False, address="10.0.0.2"),
            True,
            State.CONNECTED,
            "jump",
            False,
            dict(
                ssh="VPN is off for this device",
                copy_ssh="VPN is off for this device",
                copy_address=None,
                enable_vpn=None,
                disable_vpn="already disabled",
            ),
        ),
        (
            dict(enabled=False),
            True,
            State.CONNECTED,
            "jump",
            False,
            dict(copy_address="no VPN address", disable_vpn="VPN never enabled"),
        ),
        (
            dict(enabled=True, address="10.0.0.2", pending=True),
            True,
            State.CONNECTED,
            "jump",
            False,
            dict(enable_vpn="already enabled, not applied yet"),
        ),
        (
            dict(enabled=False, address="10.0.0.2", pending=True),
            True,
            None,
            "jump",
            False,
            dict(disable_vpn="already disabled, not applied yet"),
        ),
        (
            dict(enabled=False),
            True,
            None,
            "jump",
            True,
            dict(enable_vpn="no WireGuard key yet", disable_vpn="no WireGuard key yet"),
        ),
    ],
)
def test_which_actions_apply_and_why_not(row, tunnel, state, route, no_key, expect):
    can = devices.actions(
        _row(**row), has_tunnel=tunnel, tunnel_state=state, route=route, no_key=no_key
    )
    for action, reason in expect.items():
        got = getattr(can, action)
        assert got.reason == reason, action
        assert got.ok is (reason is None)


# -- ssh ----------------------------------------------------------------------------


async def test_ssh_command_applies_settings_then_tunnel_then_route(services):
    services.settings.update(lambda s: dataclasses.replace(s, ssh_user="admin", ssh_route="direct"))
    cmd = await ssh.command(services, None, "on-vpn")
    assert cmd.settings.route == "direct" and "admin@10.42.42.77" in cmd.argv
    assert "-J" not in cmd.argv
    # The factory's tunnel has its own login: it wins over the user's default.
    ssh.configure_tunnel(services, FACTORY, {"user": "root"})
    assert "root@10.42.42.77" in (await ssh.command(services, None, "on-vpn")).argv
    # A route asked for wins over both.
    jumped = await ssh.command(services, FACTORY, "on-vpn", route="jump")
    assert "-J" in jumped.argv and jumped.title == f"on-vpn — {FACTORY} (fiotray SSH)"
    assert ssh.route(services, FACTORY) == "direct"


async def test_ssh_refused_for_a_device_off_the_vpn(services):
    with pytest.raises(VpnError, match="off-vpn has no VPN address") as refused:
        await ssh.command(services, None, "off-vpn")
    assert refused.value.code == errors.VPN_NOT_ENABLED


async def test_a_route_through_a_tunnel_that_is_down_is_refused(services):
    cmd = await ssh.command(services, None, "on-vpn")
    with pytest.raises(VpnError) as refused:
        ssh.check_tunnel(services, cmd)
    assert refused.value.code == errors.TUNNEL_DOWN
    await tunnels.connect(services, wait=0)
    ssh.check_tunnel(services, cmd)  # up now: no complaint
    public = dataclasses.replace(cmd, settings=dataclasses.replace(cmd.settings, route="public"))
    await tunnels.disconnect(services)
    ssh.check_tunnel(services, public)  # the public route needs no tunnel


async def test_ssh_config_written(services, tmp_path):
    out = tmp_path / "ssh" / "demo.conf"
    written = await ssh.write_config(services, output=out)
    assert written.path == out and written.hosts >= 1
    assert f"Host fiotray.{FACTORY}.on-vpn" in out.read_text()
    assert "off-vpn" not in out.read_text()


def test_bad_tunnel_ssh_settings_save_nothing(services):
    before = services.tunnels.path.read_text()
    with pytest.raises(FiotrayError):
        ssh.configure_tunnel(services, FACTORY, {"user": "a;b"})
    assert services.tunnels.path.read_text() == before


# -- tunnels ------------------------------------------------------------------------


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


async def test_add_foundries_tunnel_checks_the_address(services):
    with pytest.raises(FiotrayError):
        await tunnels.add_foundries(services, address="10.42.42.77", name="taken")
    added = await tunnels.add_foundries(services, address="10.42.42.200", name="mine")
    assert added.tunnel.address == "10.42.42.200" and added.tunnel.factory == FACTORY
    assert added.admin_line.startswith("wg set ") and added.tunnel.public_key in added.admin_line


# -- accounts and services -----------------------------------------------------------


async def test_the_demo_keeps_to_its_temp_dir(services, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    await tunnels.add_foundries(services, address="10.42.42.201", name="scratch")
    await devices.set_vpn(services, FACTORY, "off-vpn", True)
    root = services.settings.path.parent.parent
    assert services.tunnels.path.is_relative_to(root)
    assert list(tmp_path.iterdir()) == []
    assert [f.factory for f in accounts.factories(services)] == [FACTORY]
    assert accounts.factories(services)[0].default
    await services.aclose()
    assert not Path(root).exists()
