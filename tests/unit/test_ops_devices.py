"""fiotray.ops.devices over the demo services: the list, enable/disable, which actions apply."""

from __future__ import annotations

import pytest

from fiotray.core.devices import DeviceRow
from fiotray.core.errors import FiotrayError
from fiotray.core.models import ListedDevice
from fiotray.core.tunnelstate import State
from fiotray.ops import devices

FACTORY = "demo-factory"


def _row(*, enabled: bool, address: str = "", pending: bool = False) -> DeviceRow:
    device = ListedDevice("d", "uuid", "owner", None, None, "target", "", "main", False)
    return DeviceRow(device, enabled, address, pending)


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


def test_the_web_app_comes_from_the_sign_in_or_is_not_offered(tmp_path):
    from fiotray.core.factories import Factory, FactoryStore
    from fiotray.core.secrets import MemorySecretStore
    from fiotray.core.services import Services
    from fiotray.core.settings import SettingsStore
    from fiotray.core.tunnels import TunnelController, TunnelStore

    factories, tunnels, secrets = FactoryStore(tmp_path), TunnelStore(tmp_path), MemorySecretStore()
    services = Services(
        factories, tunnels, SettingsStore(tmp_path), secrets, TunnelController(tunnels, secrets)
    )
    factories.save(Factory(factory="f", auth="token"))  # app.foundries.io, the default
    factories.save(
        Factory(factory="own", auth="token", oauth_url="https://app.example.com:8443/oauth")
    )
    factories.save(Factory(factory="odd", auth="token", oauth_url="https://sso.example.com/oauth"))
    assert devices.web_url(services, "f", "a b/c") == (
        "https://app.foundries.io/factories/f/devices/a%20b%2Fc/"
    )
    assert devices.web_url(services, "own", "d") == (
        "https://app.example.com:8443/factories/own/devices/d/"
    )
    assert devices.web_url(services, "odd", "d") is None  # cannot be known
    assert devices.web_url(services, "nope", "d") is None


async def test_the_demo_has_no_web_app(services):
    assert devices.web_url(services, FACTORY, "on-vpn") is None


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
