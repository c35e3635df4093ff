"""fiotray's tunnels and SSH through the real parts, as an engineer at a laptop uses them.

The unprivileged user `fiotray-t` runs the `fiotray` CLI inside the laptop
namespace of the VPN world (tests/vpn_world.py) with their own Secret Service;
tunnels go up through real pkexec and polkit on the system bus, the installed
helper, wg-quick and wireguard-go; SSH goes to real sshd on the test devices.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

import pytest

from fiotray.core import wgconf
from tests.engineer import FACTORY, add_foundries_tunnel

pytestmark = pytest.mark.real


def test_connect_ssh_routes_disconnect(engineer):
    world = engineer.world
    tunnel = add_foundries_tunnel(engineer)
    # The private key never touches a file the user can read.
    for path in engineer.home.rglob("*"):
        if path.is_file() and path.suffix == ".json":
            assert "PrivateKey" not in path.read_text()

    # The server does not know this laptop yet: up, but no handshake, and fiotray says why
    # (past the first 5 s, in which a server that knows the key answers).
    proc = engineer.fiotray("connect", "--wait", "6", code=4)
    assert ": waiting — waiting for the server to admit this laptop" in proc.stdout, proc.stdout
    assert f"peers add {tunnel['engineer']} {tunnel['public_key']}" in proc.stdout
    assert engineer.status()[FACTORY]["state"] == "waiting"
    engineer.fiotray("disconnect")

    world.add_peer(tunnel["public_key"], world.laptop_vpn_address)  # the admin's step
    proc = engineer.fiotray("connect")
    assert ": connected" in proc.stdout, proc.stdout
    status = engineer.status()[FACTORY]
    assert status["state"] == "connected"
    assert status["endpoint"] == world.server_endpoint
    assert status["latest_handshake_age"] is not None and status["latest_handshake_age"] < 60
    # Answered once: from now on silence means "unreachable", not "not admitted".
    (listed,) = json.loads(engineer.fiotray("tunnels", "list", "--json").stdout)
    assert listed["admitted"] is True
    assert world.laptop_ifname in engineer.interfaces()

    device = world.devices[0]
    # Default route: through the VPN server as a jump host.
    out = engineer.fiotray("ssh", device.name, "--", "hostname").stdout
    assert out.strip() == device.name
    printed = engineer.fiotray("ssh", device.name, "--print").stdout
    assert f"-J fio@{world.server_vpn_address}" in printed
    assert f"HostKeyAlias=fiotray.{FACTORY}.{device.name}" in printed

    # Direct: devices accept tunnel traffic only from the server, so without NAT it fails...
    proc = engineer.fiotray("ssh", device.name, "--route", "direct", "--", "hostname", code=255)
    assert "timed out" in proc.stderr or "Connection" in proc.stderr
    # ... and with the server NATing it works.
    world.set_nat(True)
    out = engineer.fiotray("ssh", device.name, "--route", "direct", "--", "hostname").stdout
    assert out.strip() == device.name

    engineer.fiotray("ssh", "not-on-vpn", "--", "true", code=1)

    proc = engineer.fiotray("disconnect")
    assert "disconnected" in proc.stdout
    assert world.laptop_ifname not in engineer.interfaces()
    assert engineer.status()[FACTORY]["state"] == "disconnected"
    proc = engineer.fiotray("ssh", device.name, "--", "true", code=1)
    assert "fiotray connect" in proc.stderr


def test_state_survives_the_app_and_a_second_tunnel_coexists(engineer):
    world = engineer.world
    tunnel = add_foundries_tunnel(engineer)
    world.add_peer(tunnel["public_key"], world.laptop_vpn_address)

    # A plain WireGuard config next to it: its own key, its own interface.
    key = wgconf.generate_private_key()
    conf = engineer.home / "office.conf"
    conf.write_text(
        f"[Interface]\nPrivateKey = {key}\nAddress = 10.42.42.201/32\n\n"
        f"[Peer]\nPublicKey = {world.server_public_key}\nEndpoint = {world.server_endpoint}\n"
        f"AllowedIPs = {world.server_vpn_address}/32\nPersistentKeepalive = 25\n"
    )
    shutil.chown(conf, engineer.user.uid, engineer.user.gid)
    office_if = f"{world.prefix}-o"
    engineer.fiotray("tunnels", "import", str(conf), "--name", "office", "--interface", office_if)
    for path in (engineer.home / "config").rglob("*"):
        if path.is_file():
            assert key not in path.read_text(), path

    engineer.fiotray("connect", FACTORY)
    # An app killed while it waits for the office tunnel's first handshake (the server does
    # not know that key yet): the tunnel it asked for stays up and a new app sees it.
    app = engineer.spawn("connect", "office", "--wait", "60")
    try:
        deadline = time.monotonic() + 30
        while office_if not in engineer.interfaces():
            assert app.poll() is None, "fiotray connect office ended before its tunnel came up"
            assert time.monotonic() < deadline, "the office tunnel did not come up in 30 s"
            time.sleep(0.1)
    finally:
        os.killpg(app.pid, signal.SIGKILL)
        app.wait()
    assert engineer.status()["office"]["state"] in ("connecting", "stale")
    world.add_peer(wgconf.public_key(key), "10.42.42.201")
    world.wait_for_handshake(world.laptop_ns, office_if)
    states = engineer.status()
    assert {n: s["state"] for n, s in states.items()} == {
        FACTORY: "connected",
        "office": "connected",
    }
    assert {world.laptop_ifname, office_if} <= engineer.interfaces()

    engineer.fiotray("disconnect", "office")
    assert engineer.status()[FACTORY]["state"] == "connected"
    engineer.fiotray("disconnect", FACTORY)
    assert {s["state"] for s in engineer.status().values()} == {"disconnected"}


def test_refusals_leave_a_consistent_state(engineer, polkit):
    world = engineer.world
    add_foundries_tunnel(engineer)

    polkit.set_mode("deny")
    try:
        proc = engineer.fiotray("connect", code=1)
        assert "Not authorized" in proc.stderr
        assert world.laptop_ifname not in engineer.interfaces()
    finally:
        polkit.set_mode("allow")
    assert engineer.status()[FACTORY]["state"] == "disconnected"

    # An interface of that name that fiotray did not make is reported, not touched.
    world.exec(
        world.laptop_ns, ["ip", "link", "add", world.laptop_ifname, "type", "bridge"], check=True
    )
    try:
        proc = engineer.fiotray("connect", code=1)
        assert "already up outside fiotray" in proc.stderr
    finally:
        world.exec(world.laptop_ns, ["ip", "link", "del", world.laptop_ifname], check=True)

    # An endpoint that never answers: up, no handshake, said plainly; then down cleanly.
    key = wgconf.generate_private_key()
    conf = engineer.home / "void.conf"
    conf.write_text(
        f"[Interface]\nPrivateKey = {key}\nAddress = 10.77.0.2/32\n\n"
        f"[Peer]\nPublicKey = {world.server_public_key}\nEndpoint = 192.0.2.99:5555\n"
        "AllowedIPs = 10.77.0.1/32\nPersistentKeepalive = 25\n"
    )
    shutil.chown(conf, engineer.user.uid, engineer.user.gid)
    engineer.fiotray(
        "tunnels", "import", str(conf), "--name", "void", "--interface", f"{world.prefix}-o"
    )
    proc = engineer.fiotray("connect", "void", "--wait", "1", code=4)
    assert "No handshake" in proc.stdout
    engineer.fiotray("disconnect", "void")
    assert engineer.status()["void"]["state"] == "disconnected"

    # A config with hook scripts never becomes a tunnel.
    hooked = engineer.home / "hooked.conf"
    hooked.write_text(conf.read_text().replace("[Peer]", "PostUp = touch /tmp/pwned\n[Peer]"))
    shutil.chown(hooked, engineer.user.uid, engineer.user.gid)
    proc = engineer.fiotray("tunnels", "import", str(hooked), "--name", "hooked", code=1)
    assert "PostUp" in proc.stderr
    assert "hooked" not in engineer.status()
