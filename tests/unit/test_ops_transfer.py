"""fiotray.ops.transfer over the demo services: the SSH command's route, settings and
tunnel check, applied to the scp argv (no scp runs)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fiotray.core import errors
from fiotray.core.errors import FiotrayError, VpnError
from fiotray.ops import ssh, transfer, tunnels

FACTORY = "demo-factory"


async def test_copy_refused_through_a_tunnel_that_is_down(services, tmp_path: Path):
    src = tmp_path / "a.bin"
    src.write_bytes(b"abc")
    with pytest.raises(VpnError) as refused:
        await transfer.plan_to(services, None, "on-vpn", [src], "/tmp/")
    assert refused.value.code == errors.TUNNEL_DOWN
    with pytest.raises(VpnError) as refused:
        await transfer.plan_from(services, None, "on-vpn", "/etc/os-release", tmp_path)
    assert refused.value.code == errors.TUNNEL_DOWN
    await tunnels.connect(services, wait=0)
    try:
        plan = await transfer.plan_to(services, None, "on-vpn", [src], "/tmp/")
    finally:
        await tunnels.disconnect(services)
    assert plan.total_bytes == 3 and plan.argv[-1] == "fio@10.42.42.77:/tmp/"


async def test_copy_takes_the_ssh_commands_settings_and_route(services, tmp_path: Path):
    services.settings.update(lambda s: dataclasses.replace(s, ssh_user="admin"))
    ssh.configure_tunnel(services, FACTORY, {"user": "root"})
    await tunnels.connect(services, wait=0)
    try:
        cmd = await ssh.command(services, None, "on-vpn", route="direct")
        plan = await transfer.plan_from(
            services, None, "on-vpn", "/var/log/messages", tmp_path, route="direct"
        )
    finally:
        await tunnels.disconnect(services)
    end = plan.argv.index("--")
    # scp's options are ssh's, in ssh's order, after scp's own -s (no BatchMode: prompts
    # go to the job's askpass).
    assert plan.argv[:2] == ["scp", "-s"] and "BatchMode=yes" not in plan.argv
    assert plan.argv[2:end] == cmd.argv[1:-2]
    assert plan.argv[end + 1 :] == ["root@10.42.42.77:/var/log/messages", str(tmp_path)]
    assert "-J" not in plan.argv  # direct


async def test_copy_refused_for_devices_off_the_vpn_or_unknown(services, tmp_path: Path):
    # The public route needs no tunnel: what is refused is the device.
    with pytest.raises(FiotrayError, match="off-vpn"):
        await transfer.plan_from(services, None, "off-vpn", "/x", tmp_path, route="public")
    with pytest.raises(FiotrayError, match="no-such-device"):
        await transfer.plan_from(services, None, "no-such-device", "/x", tmp_path, route="public")
    with pytest.raises(FiotrayError, match="starts with '-'"):
        await transfer.plan_from(services, None, "-oProxyCommand=x", "/x", tmp_path)
