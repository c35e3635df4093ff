"""The VPN world behaves as a FoundriesFactory VPN does, checked with plain tools only.

A laptop tunnel is brought up with wg-quick (no fiotray code), admitted on the server
as its admin would, and then: the handshake happens, `ssh -J` through the server
reaches each device, a direct ssh to a device needs the server's NAT, and a world of
our own leaves nothing behind, also when its build fails half-way.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.vpn_world import WG_ENV, VpnWorld, in_netns, leftovers, reap_stale_worlds

pytestmark = pytest.mark.real

# What a device reports: its own name (sshd runs in a UTS namespace named after the
# device) and $SSH_CONNECTION = "<client ip> <port> <device ip> 22".
WHOAMI = "hostname; echo $SSH_CONNECTION"


@dataclass(frozen=True)
class LaptopTunnel:
    config: Path
    public_key: str
    address: str


def _wg_keypair() -> tuple[str, str]:
    private = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout
    public = subprocess.run(
        ["wg", "pubkey"], input=private, capture_output=True, text=True, check=True
    ).stdout
    return private.strip(), public.strip()


def _pids_in(ns: str) -> list[str]:
    return subprocess.run(
        ["ip", "netns", "pids", ns], capture_output=True, text=True
    ).stdout.split()


@pytest.fixture
def laptop_tunnel(clean_vpn_world: VpnWorld, tmp_path: Path) -> Iterator[LaptopTunnel]:
    """A plain wg-quick tunnel from the laptop namespace, admitted as a server peer."""
    world = clean_vpn_world
    private, public = _wg_keypair()
    # wg-quick names the interface after the file; it must be unique machine-wide.
    config = tmp_path / f"{world.laptop_ifname}.conf"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(
            "[Interface]\n"
            f"PrivateKey = {private}\n"
            f"Address = {world.laptop_vpn_address}/32\n"
            "\n[Peer]\n"
            f"PublicKey = {world.server_public_key}\n"
            f"Endpoint = {world.server_endpoint}\n"
            f"AllowedIPs = {world.vpn_subnet}\n"
            # Without it (or traffic) there is no handshake at all after `up`.
            "PersistentKeepalive = 25\n"
        )
    world.add_peer(public, world.laptop_vpn_address)
    up = world.exec(world.laptop_ns, ["wg-quick", "up", str(config)], env=WG_ENV)
    try:
        assert up.returncode == 0, up.stderr
        yield LaptopTunnel(config, public, world.laptop_vpn_address)
    finally:
        world.exec(world.laptop_ns, ["wg-quick", "down", str(config)], env=WG_ENV)
        # wireguard-go exits once its interface is gone; it must not outlive the test.
        deadline = time.monotonic() + 5
        while _pids_in(world.laptop_ns) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _pids_in(world.laptop_ns) == [], "wireguard-go still runs in the laptop netns"
        world.remove_peer(public)
        assert public not in world.server_peers()


def _ssh(world: VpnWorld, *argv: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return world.exec(world.laptop_ns, argv, user=world.app_user, timeout=timeout)


def test_world_is_shaped_like_a_factory_vpn(vpn_world: VpnWorld) -> None:
    world = vpn_world
    assert world.server_endpoint == "192.0.2.1:5555"
    assert world.server_vpn_address == "10.42.42.1"
    assert world.vpn_subnet == "10.42.0.0/16"
    srv = world.server_ns
    listen = world.exec(srv, ["wg", "show", world.server_ifname, "listen-port"], check=True)
    assert listen.stdout.strip() == "5555"
    addr = world.exec(srv, ["ip", "-4", "-o", "addr", "show", world.server_ifname], check=True)
    assert "10.42.42.1/16" in addr.stdout
    peers = world.server_peers()
    for dev in world.devices:
        # The server knows each device by its address only.
        assert peers[dev.wg_public_key] == f"{dev.vpn_address}/32"
        assert world.latest_handshake(srv, world.server_ifname, dev.wg_public_key) > 0
        # The device knows only the server, and only its VPN address.
        allowed = world.exec(dev.ns, ["wg", "show", dev.ifname, "allowed-ips"], check=True)
        assert allowed.stdout.strip() == f"{world.server_public_key}\t10.42.42.1/32"
        keepalive = world.exec(dev.ns, ["wg", "show", dev.ifname, "persistent-keepalive"])
        assert keepalive.stdout.split() == [world.server_public_key, "25"]
        endpoint = world.exec(dev.ns, ["wg", "show", dev.ifname, "endpoints"])
        assert endpoint.stdout.split() == [world.server_public_key, world.server_endpoint]
        # The server's /etc/hosts, as factory-wireguard-server keeps it.
        hosts = world.exec(srv, ["getent", "hosts", dev.name], check=True)
        assert hosts.stdout.split()[0] == dev.vpn_address
    # Nothing of the VPN is reachable from the laptop before it has a tunnel.
    route = world.exec(world.laptop_ns, ["ip", "route", "get", world.devices[0].vpn_address])
    assert route.returncode != 0
    # The engineer's ssh files: theirs, private.
    key_dir = world.ssh_key.parent.stat()
    key = world.ssh_key.stat()
    kh = world.known_hosts.stat()
    app_uid = int(world.exec(srv, ["id", "-u", world.app_user], check=True).stdout)
    assert (key_dir.st_uid, stat.S_IMODE(key_dir.st_mode)) == (app_uid, 0o700)
    assert (key.st_uid, stat.S_IMODE(key.st_mode)) == (app_uid, 0o600)
    assert kh.st_uid == app_uid


def test_laptop_handshakes_and_jumps_to_every_device(
    clean_vpn_world: VpnWorld, laptop_tunnel: LaptopTunnel
) -> None:
    world = clean_vpn_world
    world.wait_for_handshake(world.laptop_ns, world.laptop_ifname, timeout=10)
    assert world.latest_handshake(world.server_ns, world.server_ifname, laptop_tunnel.public_key)
    for dev in world.devices:
        result = _ssh(world, *world.ssh_argv(f"fio@{dev.vpn_address}", WHOAMI))
        assert result.returncode == 0, result.stderr
        name, connection = result.stdout.splitlines()
        # Through the jump host: the device sees the server's address as the client.
        assert name == dev.name
        assert connection.split()[0::2] == [world.server_vpn_address, dev.vpn_address]
    # The jump host resolves device names from its /etc/hosts.
    dev = world.devices[-1]
    by_name = _ssh(world, *world.ssh_argv(f"fio@{dev.name}", "hostname"))
    assert (by_name.returncode, by_name.stdout.strip()) == (0, dev.name), by_name.stderr


def test_jump_hop_ignores_command_line_ssh_options(
    clean_vpn_world: VpnWorld, laptop_tunnel: LaptopTunnel
) -> None:
    """Pins an OpenSSH behaviour callers must design around.

    `ssh -J` starts the jump hop as a new ssh that is given -F but not -i or -o: with
    `-F none` it falls back to ~/.ssh and asks about the host key with no terminal.
    The same options in a ProxyCommand (or a -F file, as world.ssh_argv does) work.
    """
    world = clean_vpn_world
    dev = world.devices[0]
    options = [
        *("-F", "none", "-i", str(world.ssh_key), "-o", "BatchMode=yes"),
        *("-o", f"UserKnownHostsFile={world.known_hosts}"),
        *("-o", "StrictHostKeyChecking=accept-new"),
    ]
    jump = f"fio@{world.server_vpn_address}"
    with_j = _ssh(world, "ssh", *options, "-J", jump, f"fio@{dev.vpn_address}", "hostname")
    assert with_j.returncode == 255
    assert "Host key verification failed" in with_j.stderr
    proxy = f"ProxyCommand=ssh {' '.join(options)} -W %h:%p {jump}"
    with_proxy = _ssh(world, "ssh", *options, "-o", proxy, f"fio@{dev.vpn_address}", "hostname")
    assert (with_proxy.returncode, with_proxy.stdout.strip()) == (0, dev.name), with_proxy.stderr


def test_direct_ssh_to_a_device_needs_the_servers_nat(
    clean_vpn_world: VpnWorld, laptop_tunnel: LaptopTunnel
) -> None:
    world = clean_vpn_world
    dev = world.devices[0]
    direct = world.ssh_argv("-o", "ConnectTimeout=3", f"fio@{dev.vpn_address}", WHOAMI, jump=False)
    assert not world.nat_enabled

    started = time.monotonic()
    refused = _ssh(world, *direct)
    assert refused.returncode == 255
    assert "timed out" in refused.stderr, refused.stderr
    assert time.monotonic() - started < 10

    world.set_nat(True)
    try:
        allowed = _ssh(world, *direct)
        assert allowed.returncode == 0, allowed.stderr
        name, connection = allowed.stdout.splitlines()
        assert name == dev.name
        # Masqueraded: the device only accepts tunnel traffic from the server's address.
        assert connection.split()[0::2] == [world.server_vpn_address, dev.vpn_address]
    finally:
        world.set_nat(False)
    rules = world.exec(world.server_ns, ["iptables", "-t", "nat", "-S", "POSTROUTING"])
    assert "MASQUERADE" not in rules.stdout
    forward = world.exec(world.server_ns, ["cat", "/proc/sys/net/ipv4/ip_forward"])
    assert forward.stdout.strip() == "0"


def test_own_world_is_removed_completely(vpn_world_factory, vpn_world: VpnWorld) -> None:
    stray_warning = pytest.warns(UserWarning, match="stopping processes left in")
    with stray_warning, vpn_world_factory(device_names=["solo"]) as world:
        prefix, pids, root = world.prefix, list(world.pids), world.root
        assert prefix != vpn_world.prefix
        assert any(item.startswith("netns") for item in leftovers(prefix))
        # A tunnel a careless test forgot: wireguard-go would outlive its namespace.
        stray = world.exec(world.laptop_ns, ["wireguard-go", world.laptop_ifname], env=WG_ENV)
        assert stray.returncode == 0, stray.stderr
        assert _pids_in(world.laptop_ns)
    assert leftovers(prefix) == []
    assert not root.exists()
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids)
    # The session's world is untouched by its neighbour coming and going.
    assert all(Path(f"/proc/{pid}").exists() for pid in vpn_world.pids)
    assert vpn_world.server_peers()


@pytest.mark.parametrize("stop_at", ["server", "device-1"])
def test_failed_build_removes_what_it_made(vpn_world_factory, stop_at: str) -> None:
    stopped = pytest.raises(RuntimeError, match="on purpose")
    with stopped as failure, vpn_world_factory(device_names=["solo"], _fail_at=stop_at):
        pytest.fail("the build should have stopped")
    prefix = re.search(r"VPN world (\S+) build", str(failure.value))
    assert prefix is not None
    assert leftovers(prefix[1]) == []


def test_a_world_of_a_killed_session_is_reaped(vpn_world: VpnWorld) -> None:
    """run.sh ends a hung suite with SIGKILL: the next session removes what it left."""
    child_code = (
        "import time\n"
        "from tests.system_user import ensure_user\n"
        "from tests.vpn_world import build_vpn_world\n"
        f"app = ensure_user({vpn_world.app_user!r}, None)\n"
        f"fio = ensure_user({vpn_world.device_user!r}, None)\n"
        "with build_vpn_world(app, fio, device_names=['solo']) as world:\n"
        "    print(world.prefix, flush=True)\n"
        "    time.sleep(60)\n"
    )
    repo = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-c", child_code], cwd=repo, stdout=subprocess.PIPE, text=True
    )
    try:
        ready, _, _ = select.select([child.stdout], [], [], 20)
        assert ready, "the child did not build its world within 20 s"
        assert child.stdout is not None
        prefix = child.stdout.readline().strip()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(5)
        if child.stdout is not None:
            child.stdout.close()
    assert prefix.startswith("fvw")
    assert any(item.startswith("process") for item in leftovers(prefix))
    assert prefix in reap_stale_worlds()
    assert leftovers(prefix) == []
    # The live session world has a live owner: left alone.
    assert vpn_world.root.exists()
    assert all(Path(f"/proc/{pid}").exists() for pid in vpn_world.pids)


def test_a_socket_made_in_the_laptop_netns_is_reachable_there(vpn_world: VpnWorld) -> None:
    """How a root-side test server (e.g. the fake API) becomes reachable from the laptop."""
    home = os.readlink("/proc/thread-self/ns/net")
    with in_netns(vpn_world.laptop_ns):
        server = socket.create_server(("127.0.0.1", 0))
    assert os.readlink("/proc/thread-self/ns/net") == home
    with server:
        port = server.getsockname()[1]
        sent = vpn_world.exec(
            vpn_world.laptop_ns, ["bash", "-c", f"echo hello >/dev/tcp/127.0.0.1/{port}"]
        )
        assert sent.returncode == 0, sent.stderr
        server.settimeout(5)
        conn, _ = server.accept()
        with conn:
            assert conn.recv(100) == b"hello\n"
