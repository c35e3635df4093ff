"""`fiotray mcp` as an engineer's assistant drives it in the VPN world: the SDK's stdio
client talks to the server running as the unprivileged user in the laptop namespace,
which brings the tunnel up and down through the real helper (pkexec, polkit), and runs
commands on the devices' real sshd through the VPN server.

Needs root (namespaces, polkit's rule): run under the shared lock,
`flock /tmp/fiotray-world.lock ...`.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from fiotray.core.ssh import host_key_alias
from tests.engineer import FACTORY, Engineer, add_foundries_tunnel
from tests.mcp_client import Client, mcp_session

pytestmark = pytest.mark.real

ROOT = Path(__file__).resolve().parents[2]
WHOAMI = "hostname; echo $SSH_CONNECTION"
SLOW = "sleep 3"


def wait_until_gone(ns: str, command: str, timeout: float = 10) -> None:
    """Until no process in `ns` runs `command` (one it started and left to end by itself)."""
    argv = command.split()

    def running() -> list[str]:
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
        found = []
        for pid in pids.stdout.split():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1] == [
                    a.encode() for a in argv
                ]:
                    found.append(pid)
        return found

    deadline = time.monotonic() + timeout
    while running():
        assert time.monotonic() < deadline, f"{command!r} still runs in {ns} after {timeout} s"
        time.sleep(0.1)


def served(person: Engineer, *options: str) -> AbstractAsyncContextManager[Client]:
    """`fiotray mcp` as the engineer, in the laptop namespace, with their keyring."""
    world = person.world
    argv = [
        *("ip", "netns", "exec", world.laptop_ns, "runuser", "-u", person.user.name, "--"),
        *person.argv("mcp", *options),
    ]
    return mcp_session(
        argv,
        env={**person.user.env(), **person.env()},
        cwd=ROOT,  # `python -m fiotray`: this checkout's
        stderr=person.home / "mcp.err",
        secrets=[person.token],
    )


def private_key(interface: str) -> str:
    """The tunnel's private key, as the helper rendered it for wg-quick (root reads it)."""
    text = Path(f"/run/fiotray/{interface}.conf").read_text()
    found = re.search(r"^PrivateKey\s*=\s*(\S+)", text, re.MULTILINE)
    assert found, "no PrivateKey in the helper's config"
    return found[1]


async def connect(client: Client, person: Engineer) -> dict:
    up = await client.call("connect_foundries_vpn", wait_seconds=15)
    client.secrets.append(private_key(person.world.laptop_ifname))
    return up


async def test_connect_status_disconnect_through_the_helper(engineer):
    world = engineer.world
    tunnel = add_foundries_tunnel(engineer)
    async with served(engineer) as client:
        (down,) = (await client.call("foundries_vpn_status"))["tunnels"]
        assert (down["name"], down["state"], down["kind"]) == (FACTORY, "disconnected", "foundries")
        # Not admitted yet: up, and the server stays silent.
        waiting = await client.call("connect_foundries_vpn", wait_seconds=1)
        client.secrets.append(private_key(world.laptop_ifname))
        assert waiting["tunnel"]["state"] in ("connecting", "waiting")
        assert waiting["tunnel"]["why_not_connected"]
        assert "polkit" in waiting["message"]
        await client.call("disconnect_foundries_vpn")

        world.add_peer(tunnel["public_key"], world.laptop_vpn_address)
        up = await connect(client, engineer)
        assert up["tunnel"]["state"] == "connected", up
        assert up["tunnel"]["interface"] == world.laptop_ifname
        assert world.latest_handshake(world.laptop_ns, world.laptop_ifname) > 0
        (now,) = (await client.call("foundries_vpn_status"))["tunnels"]
        assert now["connected"] and now["handshake_age_seconds"] is not None
        assert now["endpoint"] == world.server_endpoint and now["tx_bytes"] > 0
        cmd = await client.call("foundries_ssh_command", device=world.devices[0].name)
        assert cmd["tunnel_up"] is True and cmd["route"] == "jump"
        # Enable, followed until the device answers: applied at once (the fake factory),
        # then an SSH probe through the VPN server gets the device's own sshd's banner.
        engineer.api.factory.auto_apply_after = 0.0
        device = world.devices[0]
        on = await client.call("enable_foundries_vpn_device", device=device.name, wait_seconds=60)
        assert (on["stage"], on["reachable"], on["reason"]) == ("reachable", True, None), on
        assert on["address"] == device.vpn_address
        assert f"is reachable at {device.vpn_address} over the jump route" in on["message"]

        gone = await client.call("disconnect_foundries_vpn", tunnel=FACTORY)
        assert gone["tunnel"]["state"] == "disconnected"
        assert world.laptop_ifname not in engineer.interfaces()
        client.rescan()


async def test_a_refused_connect_is_the_clis_error(engineer, polkit):
    add_foundries_tunnel(engineer)
    polkit.set_mode("deny")
    try:
        async with served(engineer) as client:
            text, code = await client.error("connect_foundries_vpn")
        cli = engineer.fiotray("connect", code=1)
        assert cli.stderr == f"fiotray: {text}\n"
        assert code == "helper-not-authorized"
        assert engineer.world.laptop_ifname not in engineer.interfaces()
    finally:
        polkit.set_mode("allow")


async def test_commands_run_on_allowed_devices_over_the_jump_route(engineer):
    world = engineer.world
    tunnel = add_foundries_tunnel(engineer)
    world.add_peer(tunnel["public_key"], world.laptop_vpn_address)
    first, second = world.devices
    async with served(engineer, "--allow-commands", "--devices", first.name) as client:
        # The tunnel is down: refused with what to do, nothing run.
        text, code = await client.error("run_on_foundries_device", device=first.name, command="id")
        assert code == "tunnel-down" and f"fiotray connect {FACTORY}" in text
        await connect(client, engineer)

        # First, so the device's `sleep` (which ssh's end does not stop) is over before the
        # world's clean-up looks for strays.
        slow = await client.call(
            "run_on_foundries_device", device=first.name, command=SLOW, timeout_seconds=1
        )
        assert slow["timed_out"] and slow["exit_status"] is None and slow["seconds"] < 5
        assert "may still be running on the device" in slow["notes"][0]

        ran = await client.call("run_on_foundries_device", device=first.name, command=WHOAMI)
        assert ran["exit_status"] == 0, ran
        name, connection = ran["stdout"].splitlines()
        # The device's own sshd answered, reached through the VPN server.
        assert name == first.name
        assert connection.split()[0::2] == [world.server_vpn_address, first.vpn_address]
        assert ran["route"] == "jump" and not ran["timed_out"]

        failed = await client.call(
            "run_on_foundries_device", device=first.name, command="echo oops >&2; exit 7"
        )
        assert (failed["exit_status"], failed["stderr"]) == (7, "oops\n")
        capped = await client.call(
            "run_on_foundries_device",
            device=first.name,
            command="head -c 200000 /dev/zero | tr '\\0' a",
        )
        assert capped["stdout_truncated"] and capped["stdout"] == "a" * 64 * 1024

        text, code = await client.error("run_on_foundries_device", device=second.name, command="id")
        assert f"only on devices matching {first.name}" in text

        # Host keys are checked: a device whose key changed is refused by ssh itself.
        known_hosts = engineer.user.home / ".ssh" / "known_hosts"
        alias = host_key_alias(FACTORY, first.name)
        saved = known_hosts.read_text()
        # Accepted on first use, under the device's own alias (hashed, as Debian's ssh
        # writes known_hosts): ssh-keygen -F says on which line.
        found = subprocess.run(
            ["ssh-keygen", "-F", alias, "-f", str(known_hosts)], capture_output=True, text=True
        )
        lines = [int(n) for n in re.findall(r"found: line (\d+)", found.stdout)]
        assert found.returncode == 0 and lines, found.stdout
        forged = [
            f"{alias} {second.host_public_key}" if i in lines else line
            for i, line in enumerate(saved.splitlines(), 1)
        ]
        known_hosts.write_text("\n".join(forged) + "\n")
        try:
            refused = await client.call("run_on_foundries_device", device=first.name, command="id")
        finally:
            known_hosts.write_text(saved)
        assert refused["exit_status"] == 255 and refused["stdout"] == ""
        assert "HOST IDENTIFICATION HAS CHANGED" in refused["stderr"]
        assert "ssh's own failure" in refused["notes"][0]
        await client.call("disconnect_foundries_vpn")
        client.rescan()
    wait_until_gone(first.ns, SLOW)
