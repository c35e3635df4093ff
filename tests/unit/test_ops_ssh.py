"""fiotray.ops.ssh over the demo services: the user's settings applied, the tunnel check."""

from __future__ import annotations

import dataclasses

import pytest

from fiotray.core import errors
from fiotray.core.errors import FiotrayError, VpnError
from fiotray.ops import ssh, tunnels

FACTORY = "demo-factory"


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


async def test_ssh_to_a_device_that_does_not_exist_says_so(services):
    with pytest.raises(errors.NotFoundError, match="No device named no-such-device in") as e:
        await ssh.command(services, None, "no-such-device")
    assert "fiotray devices --factory" in str(e.value) and "enable VPN" not in str(e.value)


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
