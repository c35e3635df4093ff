"""fiotray-server's peer sync on a real WireGuard server (the VPN world's, wireguard-go in
network namespaces): an engineer admitted peer by peer reaches a device through the
server, and a device leaving the VPN takes only its own peer along; every other peer
keeps its session (no `wg-quick down`/`up`, no new handshake)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fiotray.core import wgconf
from fiotray.core.models import WireguardIp
from fiotray.server.engineers import EngineerStore
from fiotray.server.peers import wanted_peers
from fiotray.server.sync import Plan, current_peers, plan
from tests.vpn_world import WG_ENV, VpnWorld

pytestmark = pytest.mark.real


def _token_file(tmp_path: Path, token: str) -> Path:
    """The server's API token in a root-only file (--apitoken-file)."""
    path = tmp_path / "token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


def _keypair() -> tuple[str, str]:
    private = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout
    public = subprocess.run(
        ["wg", "pubkey"], input=private, capture_output=True, text=True, check=True
    ).stdout
    return private.strip(), public.strip()


def _server_peers(world: VpnWorld) -> dict:
    dump = world.exec(world.server_ns, ["wg", "show", world.server_ifname, "dump"], check=True)
    return current_peers(dump.stdout)


def _apply(world: VpnWorld, steps: Plan) -> None:
    for argv in steps.commands("wg", world.server_ifname):
        world.exec(world.server_ns, argv, check=True)


def _handshakes(world: VpnWorld) -> dict[str, int]:
    return {
        d.wg_public_key: world.latest_handshake(
            world.server_ns, world.server_ifname, d.wg_public_key
        )
        for d in world.devices
    }


def _hostname_over_jump(world: VpnWorld, address: str) -> str:
    argv = world.ssh_argv(f"{world.device_user}@{address}", "hostname")
    result = world.exec(world.laptop_ns, argv, user=world.app_user, timeout=20)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _laptop_up(world: VpnWorld, tmp_path: Path, private: str, address: str) -> Path:
    """A plain wg-quick tunnel from the laptop namespace to the server (no fiotray code)."""
    config = tmp_path / f"{world.laptop_ifname}.conf"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(
            f"[Interface]\nPrivateKey = {private}\nAddress = {address}/32\n\n"
            f"[Peer]\nPublicKey = {world.server_public_key}\n"
            f"Endpoint = {world.server_endpoint}\nAllowedIPs = {world.vpn_subnet}\n"
            "PersistentKeepalive = 25\n"
        )
    up = world.exec(world.laptop_ns, ["wg-quick", "up", str(config)], env=WG_ENV)
    assert up.returncode == 0, up.stderr
    return config


def test_an_engineer_comes_and_a_device_goes_and_nobody_else_is_touched(
    vpn_world_factory, tmp_path: Path
) -> None:
    with vpn_world_factory() as world:
        for d in world.devices:
            world.wait_for_handshake(world.server_ns, world.server_ifname, d.wg_public_key)
        devices = [WireguardIp(d.name, d.vpn_address, True, d.wg_public_key) for d in world.devices]
        before = _handshakes(world)
        assert set(_server_peers(world)) == set(before)

        # The admin admits an engineer: one `wg set` for that peer alone.
        private, public = _keypair()
        store = EngineerStore(tmp_path / "state" / "engineers.json")
        alice = store.add(
            "alice",
            public,
            server_address=world.server_vpn_address,
            devices=[(d.vpn_address, d.wg_public_key) for d in world.devices],
        )
        wanted, refused = wanted_peers(devices, store.list(), world.server_vpn_address)
        assert refused == []
        steps = plan(wanted, _server_peers(world))
        assert [p.name for p in steps.add] == ["alice"] and not (steps.change or steps.remove)
        _apply(world, steps)
        assert plan(wanted, _server_peers(world)).empty

        # The engineer's laptop, with that address, reaches a device through the server.
        config = _laptop_up(world, tmp_path, private, alice.address)
        try:
            world.wait_for_handshake(world.laptop_ns, world.laptop_ifname, timeout=10)
            first, second = world.devices
            assert _hostname_over_jump(world, first.vpn_address) == first.name

            # The second device leaves the VPN: only its peer goes.
            devices[1] = dataclasses.replace(devices[1], enabled=False)
            wanted, _ = wanted_peers(devices, store.list(), world.server_vpn_address)
            steps = plan(wanted, _server_peers(world))
            assert steps.remove == [second.wg_public_key] and not (steps.add or steps.change)
            _apply(world, steps)
            assert set(_server_peers(world)) == {first.wg_public_key, public}

            # The first device's session went on: no new handshake since the start (a
            # bounce would have made one), and it answers at once.
            assert _handshakes(world)[first.wg_public_key] == before[first.wg_public_key]
            assert _hostname_over_jump(world, first.vpn_address) == first.name
        finally:
            # The world's teardown removes the laptop namespace and what still runs there.
            world.exec(world.laptop_ns, ["wg-quick", "down", str(config)], env=WG_ENV)


def _server_cli(world: VpnWorld, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`fiotray-server` as a process in the server's namespace, as its admin runs it."""
    argv = [sys.executable, "-m", "fiotray.server.cli", "-n", world.server_ifname]
    return world.exec(world.server_ns, [*argv, "--state-dir", str(state), *args], timeout=30)


def test_the_admin_admits_and_revokes_a_laptop_with_peers_add_and_remove(
    vpn_world_factory, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    with vpn_world_factory() as world:
        device = world.devices[0]
        _private, public = _keypair()
        # A device's key or address is never an engineer's; nothing is saved.
        taken = _server_cli(world, state, "peers", "add", "mallory", device.wg_public_key)
        assert taken.returncode == 1 and "device" in taken.stderr, taken.stderr
        squat = _server_cli(
            world, state, "peers", "add", "eve", public, "--address", device.vpn_address
        )
        assert squat.returncode == 1 and "engineers' range" in squat.stderr, squat.stderr
        assert not (state / "engineers.json").exists()

        added = _server_cli(world, state, "peers", "add", "alice", public)
        assert added.returncode == 0, added.stderr
        listed = json.loads(_server_cli(world, state, "peers", "list", "--json").stdout)
        assert [(e["name"], e["public_key"]) for e in listed] == [("alice", public)]
        address = listed[0]["address"]
        assert _server_peers(world)[public].allowed_ips == (f"{address}/32",)
        # The server routes the whole VPN network into the interface, engineers included
        # (upstream's interface address is a /32; this world's happens to be a /16).
        subnet = str(wgconf.vpn_subnet(world.server_vpn_address))
        routes = world.exec(world.server_ns, ["ip", "route", "show", subnet], check=True)
        assert f"dev {world.server_ifname}" in routes.stdout, routes.stdout
        status = json.loads(_server_cli(world, state, "status", "--json").stdout)
        kinds = {p["public_key"]: (p["kind"], p["name"]) for p in status["peers"]}
        assert kinds[public] == ("engineer", "alice")
        assert kinds[device.wg_public_key] == ("device", None)

        removed = _server_cli(world, state, "peers", "remove", "alice")
        assert removed.returncode == 0, removed.stderr
        assert public not in _server_peers(world)
        assert device.wg_public_key in _server_peers(world)  # the devices stay


def _set_device_vpn(factory, device, enabled: bool) -> None:
    """What `fioctl devices config wireguard DEV enable|disable` leaves in the factory."""
    from fiotray.demo.fakeapi import VPN_HANDLER, WG_CLIENT_FILE, ConfigFile

    value = f"address={device.vpn_address}\npubkey={device.wg_public_key}"
    if not enabled:
        value += "\nenabled=0"
    with factory.lock:
        fake = factory.devices[device.name]
        factory.patch_config(
            fake.configs,
            "Set Wireguard configuration",
            [ConfigFile(WG_CLIENT_FILE, value, True, [VPN_HANDLER])],
        )


def _wait(condition, what: str, timeout: float = 15.0, details=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:.0f} s. {details()}", pytrace=False)
        time.sleep(0.05)


def test_the_daemon_follows_the_factory_without_bouncing_and_outlives_an_outage(
    vpn_world_factory, tmp_path: Path
) -> None:
    from fiotray.demo.fakeapi import FakeApiServer, FakeFactory
    from tests.vpn_world import in_netns

    token = "server-api-token-3f9a"
    state, hosts = tmp_path / "state", tmp_path / "hosts"
    hosts.write_text("127.0.0.1\tlocalhost\n")
    token_file = _token_file(tmp_path, token)
    with vpn_world_factory() as world:
        first, second = world.devices
        factory = FakeFactory("srvfactory")
        factory.add_api_token(token)
        factory.set_wireguard_server(server_address=world.server_vpn_address)
        for d in world.devices:
            factory.add_device(d.name, wg_pubkey=d.wg_public_key, vpn_address=d.vpn_address)
            world.wait_for_handshake(world.server_ns, world.server_ifname, d.wg_public_key)
        before = _handshakes(world)
        with in_netns(world.server_ns):  # the API answers at 127.0.0.1 in the server's netns
            api = FakeApiServer(factory, sock=socket.create_server(("127.0.0.1", 0))).start()
        argv = ["ip", "netns", "exec", world.server_ns, sys.executable, "-m", "fiotray.server.cli"]
        argv += ["-f", "srvfactory", "-n", world.server_ifname, "--state-dir", str(state)]
        argv += ["daemon", "--interval", "0.3", "--api-url", api.url]
        argv += ["--apitoken-file", str(token_file), "--hosts-file", str(hosts)]
        log = (tmp_path / "daemon.log").open("w")
        daemon = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        status = state / "status.json"

        def report() -> dict:
            return json.loads(status.read_text()) if status.exists() else {}

        def why() -> str:
            return (tmp_path / "daemon.log").read_text()[-2000:]

        try:
            _wait(
                lambda: (report().get("last_sync") or {}).get("peers") == 2, "no sync", details=why
            )
            # The peers were right already: nothing touched, nobody re-handshook.
            assert set(_server_peers(world)) == {first.wg_public_key, second.wg_public_key}
            assert f"{first.vpn_address}\t{first.name}" in hosts.read_text()
            assert hosts.read_text().startswith("127.0.0.1\tlocalhost\n")

            # A device leaves the VPN: its peer alone goes, the other's session goes on.
            _set_device_vpn(factory, second, enabled=False)
            _wait(
                lambda: second.wg_public_key not in _server_peers(world),
                "device-2 kept",
                details=why,
            )
            assert _handshakes(world)[first.wg_public_key] == before[first.wg_public_key]
            assert f"\t{second.name}" not in hosts.read_text()

            # A 30 s outage: 15 s of 5xx and dropped connections, then 15 s of refused
            # connections (the API is gone). The daemon stays, the peers too, and a
            # change made meanwhile is applied once the API answers again.
            api.inject("GET", "wireguard-ips", drop=True, times=2)
            api.inject("GET", "wireguard-ips", status=503, times=10**6)
            _wait(lambda: report().get("last_error"), "no API error recorded", details=why)
            _set_device_vpn(factory, second, enabled=True)
            outage = time.monotonic()
            while time.monotonic() - outage < 15:
                assert daemon.poll() is None, why()
                time.sleep(1)  # the outage's length is the point: nothing to wait for
            api.clear_faults()
            port = api.port
            api.stop()
            while time.monotonic() - outage < 30:
                assert daemon.poll() is None, why()
                time.sleep(1)
            assert "connection refused" in report()["last_error"], report()
            assert first.wg_public_key in _server_peers(world)
            assert second.wg_public_key not in _server_peers(world)
            with in_netns(world.server_ns):  # the API is back, at the same address
                api = FakeApiServer(factory, sock=socket.create_server(("127.0.0.1", port))).start()
            _wait(
                lambda: second.wg_public_key in _server_peers(world), "device-2 not back", 30, why
            )
            # Recorded right after the sync that applied it.
            _wait(lambda: report().get("last_error") is None, "the error outlived the outage")
            assert _handshakes(world)[first.wg_public_key] == before[first.wg_public_key]
            # What the admin sees: the daemon's last sync next to the peers.
            shown = json.loads(_server_cli(world, state, "status", "--json").stdout)
            assert shown["daemon"]["last_error"] is None
            assert shown["daemon"]["last_sync"]["peers"] == 2
            assert {p["public_key"] for p in shown["peers"]} == set(before)
        finally:
            daemon.terminate()
            try:
                code = daemon.wait(timeout=10)
            finally:
                if daemon.poll() is None:
                    daemon.kill()
                log.close()
                api.stop()
        assert code == 0, why()
        assert api.handler_errors == []


def _fiotray_rules(world: VpnWorld) -> str:
    out = []
    for table in ("nat", "filter"):
        rules = world.exec(world.server_ns, ["iptables", "-w", "-t", table, "-S"], check=True)
        out += [line for line in rules.stdout.splitlines() if "fiotray-server" in line]
    return "\n".join(out)


def test_forward_lets_an_engineer_reach_a_device_directly_and_is_removed_on_exit(
    vpn_world_factory, tmp_path: Path
) -> None:
    from fiotray.demo.fakeapi import FakeApiServer, FakeFactory
    from fiotray.server import oauth
    from tests.vpn_world import in_netns

    state = tmp_path / "state"
    creds = tmp_path / "oauth.json"  # upstream's --oauthcreds file, made by `login`
    with vpn_world_factory(device_names=["device-1"]) as world:
        (device,) = world.devices
        forward_before = world.exec(
            world.server_ns, ["cat", "/proc/sys/net/ipv4/ip_forward"], check=True
        ).stdout.strip()
        private, public = _keypair()
        added = _server_cli(world, state, "peers", "add", "alice", public)
        assert added.returncode == 0, added.stderr
        address = json.loads(_server_cli(world, state, "peers", "list", "--json").stdout)[0][
            "address"
        ]
        factory = FakeFactory("fwdfactory")
        factory.add_public_client(oauth.CLIENT_ID)
        factory.add_device(
            device.name, wg_pubkey=device.wg_public_key, vpn_address=device.vpn_address
        )
        with in_netns(world.server_ns):
            api = FakeApiServer(factory, sock=socket.create_server(("127.0.0.1", 0))).start()
        argv = ["ip", "netns", "exec", world.server_ns, sys.executable, "-m", "fiotray.server.cli"]
        argv += ["-f", "fwdfactory", "-n", world.server_ifname, "--state-dir", str(state)]
        argv += ["-a", str(creds), "--oauth-url", api.oauth_url]
        # The admin signs the server in once, as with upstream: a link, a pasted code.
        code = factory.authorization_code(oauth.CLIENT_ID)
        login = subprocess.run([*argv, "login"], input=code + "\n", capture_output=True, text=True)
        assert login.returncode == 0, login.stderr
        assert "authorize?client_id=fioid_" in login.stdout
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600
        argv += ["daemon", "--interval", "0.5", "--api-url", api.url, "--forward"]
        argv += ["--hosts-file", str(tmp_path / "hosts")]
        log_path = tmp_path / "daemon.log"
        with log_path.open("w") as log:
            daemon = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait(
                lambda: "MASQUERADE" in _fiotray_rules(world),
                "no forwarding rules",
                details=lambda: log_path.read_text(),
            )
            status = state / "status.json"
            _wait(
                lambda: status.exists() and json.loads(status.read_text())["last_sync"],
                "no sync with the OAuth creds file",
                details=lambda: log_path.read_text(),
            )
            assert json.loads(status.read_text())["last_error"] is None
            assert any(
                r.headers.get("authorization", "").startswith("Bearer ") for r in api.requests
            )
            config = _laptop_up(world, tmp_path, private, address)
            try:
                world.wait_for_handshake(world.laptop_ns, world.laptop_ifname, timeout=10)
                # Straight to the device's VPN address, no jump host.
                argv = world.ssh_argv(
                    f"{world.device_user}@{device.vpn_address}",
                    "echo $SSH_CONNECTION; hostname",
                    jump=False,
                )
                direct = world.exec(world.laptop_ns, argv, user=world.app_user, timeout=20)
                assert direct.returncode == 0, direct.stderr
                connection, name = direct.stdout.splitlines()
                assert name == device.name
                # The device saw the server's address: the only peer it accepts.
                assert connection.split()[0] == world.server_vpn_address
            finally:
                world.exec(world.laptop_ns, ["wg-quick", "down", str(config)], env=WG_ENV)
        finally:
            daemon.terminate()
            code = daemon.wait(timeout=10)
            api.stop()
        assert code == 0, log_path.read_text()
        assert _fiotray_rules(world) == "", "the forwarding rules outlived the daemon"
        forward_after = world.exec(
            world.server_ns, ["cat", "/proc/sys/net/ipv4/ip_forward"], check=True
        ).stdout.strip()
        assert forward_after == forward_before


class _Pinger:
    """`ping -i 0.2` from a namespace; the times of its replies, to find the longest gap."""

    def __init__(self, ns: str, target: str, log: Path) -> None:
        self.log = log
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, "ping", "-n", "-D", "-i", "0.2", target],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def replies(self) -> list[float]:
        times = []
        for line in self.log.read_text().splitlines():
            if line.startswith("[") and "bytes from" in line:
                times.append(float(line[1 : line.index("]")]))
        return times

    def stop(self) -> list[float]:
        self.proc.terminate()
        self.proc.wait(timeout=5)
        return self.replies()


def _longest_gap(times: list[float]) -> float:
    return max((b - a for a, b in itertools.pairwise(times)), default=float("inf"))


def test_churn_and_a_restart_cut_nobody_off(vpn_world_factory, tmp_path: Path) -> None:
    """Device VPN changes and a daemon restart while a laptop pings the server and the
    server pings a device every 0.2 s: no gap over 1 s on either, the laptop stays."""
    from fiotray.demo.fakeapi import FakeApiServer, FakeFactory
    from tests.vpn_world import in_netns

    token = "server-api-token-c4e2"
    state = tmp_path / "state"
    token_file = _token_file(tmp_path, token)
    with vpn_world_factory() as world:
        first, second = world.devices
        factory = FakeFactory("churnfactory")
        factory.add_api_token(token)
        for d in world.devices:
            factory.add_device(d.name, wg_pubkey=d.wg_public_key, vpn_address=d.vpn_address)
            world.wait_for_handshake(world.server_ns, world.server_ifname, d.wg_public_key)
        private, public = _keypair()
        assert _server_cli(world, state, "peers", "add", "alice", public).returncode == 0
        address = json.loads(_server_cli(world, state, "peers", "list", "--json").stdout)[0][
            "address"
        ]
        with in_netns(world.server_ns):
            api = FakeApiServer(factory, sock=socket.create_server(("127.0.0.1", 0))).start()
        argv = ["ip", "netns", "exec", world.server_ns, sys.executable, "-m", "fiotray.server.cli"]
        argv += ["-f", "churnfactory", "-n", world.server_ifname, "--state-dir", str(state)]
        argv += ["daemon", "--interval", "0.3", "--api-url", api.url]
        argv += ["--apitoken-file", str(token_file), "--hosts-file", str(tmp_path / "hosts")]
        log_path = tmp_path / "daemon.log"
        status = state / "status.json"

        def start() -> subprocess.Popen[bytes]:
            with log_path.open("a") as log:
                return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

        def synced_after(t: float) -> bool:
            last = json.loads(status.read_text())["last_sync"] if status.exists() else None
            return bool(last) and last["at"] > t

        def why() -> str:
            return log_path.read_text()[-2000:]

        config = _laptop_up(world, tmp_path, private, address)
        daemon = start()
        pingers: list[_Pinger] = []
        try:
            world.wait_for_handshake(world.laptop_ns, world.laptop_ifname, timeout=10)
            _wait(lambda: synced_after(0), "no first sync", details=why)
            pingers = [
                _Pinger(world.laptop_ns, world.server_vpn_address, tmp_path / "laptop.ping"),
                _Pinger(world.server_ns, first.vpn_address, tmp_path / "server.ping"),
            ]
            _wait(lambda: all(len(p.replies()) >= 3 for p in pingers), "no ping replies")
            for enabled in (False, True, False, True):  # four device VPN changes
                _set_device_vpn(factory, second, enabled=enabled)
                _wait(
                    lambda e=enabled: (second.wg_public_key in _server_peers(world)) == e,
                    f"device-2 {'not back' if enabled else 'kept'}",
                    details=why,
                )
            daemon.terminate()
            assert daemon.wait(timeout=10) == 0, why()
            restarted = time.time()
            daemon = start()
            _wait(lambda: synced_after(restarted), "no sync after the restart", details=why)
            # Five more replies each after the restart's first sync.
            after = [len(p.replies()) + 5 for p in pingers]
            _wait(
                lambda: all(len(p.replies()) >= n for p, n in zip(pingers, after, strict=True)),
                "no ping replies after the restart",
            )
        finally:
            replies = [p.stop() for p in pingers]
            daemon.terminate()
            daemon.wait(timeout=10)
            api.stop()
            world.exec(world.laptop_ns, ["wg-quick", "down", str(config)], env=WG_ENV)
        laptop, server = replies
        assert len(laptop) >= 10 and len(server) >= 10, (len(laptop), len(server))
        assert _longest_gap(laptop) <= 1.0, f"laptop -> server cut off {_longest_gap(laptop):.2f} s"
        assert _longest_gap(server) <= 1.0, f"server -> device cut off {_longest_gap(server):.2f} s"
        assert public in _server_peers(world), "the laptop's peer did not survive"


def _factory_file(factory, name: str) -> str | None:
    with factory.lock:
        entries = factory.factory_configs
        files = {f.name: f.value for f in entries[0].files} if entries else {}
    return files.get(name)


def _publish_request(factory, name: str, public: str, address: str, enabled: bool = True) -> None:
    """What `fiotray tunnels add-foundries --request-access` leaves in the factory."""
    from fiotray.core.wgfiles import EngineerAccess
    from fiotray.demo.fakeapi import ConfigFile

    access = EngineerAccess(name, public, address, enabled)
    with factory.lock:
        factory.patch_config(
            factory.factory_configs,
            "fiotray: asks for VPN access",
            [ConfigFile(access.file_name, access.marshal(), True, [])],
        )


class _Daemon:
    """`fiotray-server ... daemon` in the server's namespace, its log and status.json."""

    def __init__(self, world: VpnWorld, tmp_path: Path, argv: list[str], state: Path) -> None:
        self.argv = ["ip", "netns", "exec", world.server_ns, sys.executable, "-m"]
        self.argv += ["fiotray.server.cli", *argv]
        self.log_path = tmp_path / "daemon.log"
        self.status = state / "status.json"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> _Daemon:
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        return self

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()

    def report(self) -> dict:
        return json.loads(self.status.read_text()) if self.status.exists() else {}

    def why(self) -> str:
        return self.log_path.read_text()[-2000:]

    def synced_after(self, t: float) -> dict | None:
        last = self.report().get("last_sync")
        return last if last and last["at"] > t else None

    def next_sync(self, what: str) -> dict:
        t = time.time()
        _wait(lambda: self.synced_after(t), what, details=self.why)
        return self.report()["last_sync"]


def test_enable_registers_the_server_and_the_daemon_brings_the_interface_up(
    vpn_world_factory, tmp_path: Path
) -> None:
    """A server after a reboot: no interface. `enable` (as upstream's) writes the
    factory's file; the daemon makes the interface from it and the key file, the devices
    come back; a daemon restart later leaves the interface as it is."""
    from fiotray.demo.fakeapi import FakeApiServer, FakeFactory
    from tests.vpn_world import in_netns

    token = "server-api-token-e7b1"
    state = tmp_path / "state"
    token_file = _token_file(tmp_path, token)
    with vpn_world_factory(device_names=["device-1"]) as world:
        (device,) = world.devices
        key_file = world.root / "srv" / "wg.key"  # the server's key, as `enable` left it
        factory = FakeFactory("upfactory")
        factory.add_api_token(token)
        factory.add_device(
            device.name, wg_pubkey=device.wg_public_key, vpn_address=device.vpn_address
        )
        with in_netns(world.server_ns):
            api = FakeApiServer(factory, sock=socket.create_server(("127.0.0.1", 0))).start()
        world.exec(world.server_ns, ["ip", "link", "del", world.server_ifname], check=True)
        common = ["-f", "upfactory", "-n", world.server_ifname, "-k", str(key_file)]
        common += ["--state-dir", str(state)]
        api_args = ["--api-url", api.url, "--apitoken-file", str(token_file)]
        host, port = world.server_endpoint.rsplit(":", 1)
        try:
            enable = _server_cli_raw(
                world, [*common, "enable", "-e", host, "-p", port, "--no-check-ip", *api_args]
            )
            assert enable.returncode == 0, enable.stderr
            assert _factory_file(factory, "wireguard-server") == (
                f"endpoint={world.server_endpoint}\nserver_address=10.42.42.1\n"
                f"pubkey={world.server_public_key}"
            )
            # A bad endpoint is refused before anything is written.
            bad = _server_cli_raw(world, [*common, "enable", "-e", "a b", *api_args])
            assert bad.returncode == 1 and "Endpoint" in bad.stderr, bad.stderr

            daemon = _Daemon(
                world, tmp_path, [*common, "daemon", "--interval", "0.3", *api_args], state
            )
            daemon.start()
            try:
                daemon.next_sync("no sync after bringing the interface up")
                dump = world.exec(
                    world.server_ns, ["wg", "show", world.server_ifname, "dump"], check=True
                ).stdout
                assert dump.split("\t")[1] == world.server_public_key
                assert set(current_peers(dump)) == {device.wg_public_key}
                # The device reaches the server again over the new interface.
                # Its old session is dead: WireGuard makes a new one within ~15 s, as
                # after any server reboot.
                ping = world.exec(
                    device.ns,
                    ["ping", "-n", "-c", "1", "-w", "30", world.server_vpn_address],
                    timeout=40,
                )
                assert ping.returncode == 0, ping.stdout + ping.stderr
                handshake = world.latest_handshake(
                    world.server_ns, world.server_ifname, device.wg_public_key
                )
                assert handshake
                assert (state / f"{world.server_ifname}.conf").read_text().count("PrivateKey") == 0
                # /etc/hosts in the namespace is a file mounted over the real one (as in a
                # container): it cannot be renamed over, so it was written in place.
                etc_hosts = Path("/etc/netns", world.server_ns, "hosts").read_text()
                assert (
                    f"## Factory(upfactory) VPN Lookups\n{device.vpn_address}\t{device.name}\n"
                    in etc_hosts
                ), etc_hosts
                assert daemon.report()["last_sync"]["failed"] == []
                assert daemon.stop() == 0, daemon.why()
                # Stopped, the interface stays up (as upstream's); a new daemon takes it over.
                assert world.latest_handshake(world.server_ns, world.server_ifname) == handshake
                daemon.start()
                daemon.next_sync("no sync after the restart")
                assert (
                    world.latest_handshake(
                        world.server_ns, world.server_ifname, device.wg_public_key
                    )
                    == handshake
                ), "the restart made a new handshake: the interface was bounced"
            finally:
                if daemon.proc and daemon.proc.poll() is None:
                    daemon.stop()
        finally:
            api.stop()
            # The interface the daemon made (and its wireguard-go) goes with it.
            world.exec(world.server_ns, ["ip", "link", "del", world.server_ifname])


def _server_cli_raw(world: VpnWorld, args: list[str]) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "fiotray.server.cli", *args]
    return world.exec(world.server_ns, argv, timeout=30)


def test_self_service_admits_a_request_and_the_admin_can_revoke_it(
    vpn_world_factory, tmp_path: Path
) -> None:
    """A request in the factory's config is admitted at the next sync with no admin step;
    a colliding request is refused and reported; the admin's revoke removes the peer and
    it stays out although the request is still there."""
    from fiotray.demo.fakeapi import FakeApiServer, FakeFactory
    from tests.vpn_world import in_netns

    token = "server-api-token-5d0c"
    state = tmp_path / "state"
    token_file = _token_file(tmp_path, token)
    with vpn_world_factory(device_names=["device-1"]) as world:
        (device,) = world.devices
        factory = FakeFactory("selffactory")
        factory.add_api_token(token)
        factory.add_device(
            device.name, wg_pubkey=device.wg_public_key, vpn_address=device.vpn_address
        )
        private, public = _keypair()
        _other, squatter = _keypair()
        address = "10.42.127.1"
        _publish_request(factory, "bob-laptop", public, address)
        with in_netns(world.server_ns):
            api = FakeApiServer(factory, sock=socket.create_server(("127.0.0.1", 0))).start()
        args = ["-f", "selffactory", "-n", world.server_ifname, "--state-dir", str(state)]
        args += ["daemon", "--interval", "0.3", "--self-service", "--api-url", api.url]
        args += ["--apitoken-file", str(token_file), "--hosts-file", str(tmp_path / "hosts")]
        daemon = _Daemon(world, tmp_path, args, state).start()
        config = None
        try:
            _wait(
                lambda: public in _server_peers(world),
                "the request was not admitted",
                15,
                daemon.why,
            )
            assert _server_peers(world)[public].allowed_ips == (f"{address}/32",)
            config = _laptop_up(world, tmp_path, private, address)
            world.wait_for_handshake(world.laptop_ns, world.laptop_ifname, timeout=10)
            assert _hostname_over_jump(world, device.vpn_address) == device.name
            assert f"{address}\tbob-laptop" in (tmp_path / "hosts").read_text()

            # Another laptop asks for bob's address: refused and reported, bob keeps it.
            _publish_request(factory, "zed", squatter, address)
            last = daemon.next_sync("no sync after the squatter's request")
            assert {
                "name": "zed",
                "kind": "engineer",
                "reason": f"{address} belongs to engineer bob-laptop",
            } in last["refused"]
            assert squatter not in _server_peers(world)
            listed = json.loads(_server_cli(world, state, "peers", "list", "--json").stdout)
            assert [(e["name"], e["source"]) for e in listed] == [("bob-laptop", "self")]
            shown = json.loads(_server_cli(world, state, "status", "--json").stdout)
            kinds = {p["public_key"]: (p["kind"], p["name"], p["source"]) for p in shown["peers"]}
            assert kinds[public] == ("engineer", "bob-laptop", "self")
            assert kinds[device.wg_public_key] == ("device", None, None)

            # The admin revokes bob: gone at once, and still gone after more syncs.
            removed = _server_cli(world, state, "peers", "remove", "bob-laptop")
            assert removed.returncode == 0, removed.stderr
            assert public not in _server_peers(world)
            last = daemon.next_sync("no sync after the revoke")
            last = daemon.next_sync("no second sync after the revoke")
            assert public not in _server_peers(world)
            assert {
                "name": "bob-laptop",
                "kind": "engineer",
                "reason": "the admin revoked it",
            } in last["refused"]
            listed = json.loads(_server_cli(world, state, "peers", "list", "--json").stdout)
            # The squatter now has the free address; bob is listed as revoked.
            assert [(e["name"], e["source"]) for e in listed] == [
                ("zed", "self"),
                ("bob-laptop", "revoked"),
            ]
            assert device.wg_public_key in _server_peers(world)
        finally:
            if config is not None:
                world.exec(world.laptop_ns, ["wg-quick", "down", str(config)], env=WG_ENV)
            code = daemon.stop()
            api.stop()
        assert code == 0, daemon.why()


def _engineers_daemon(engineer, tmp_path: Path, *options: str) -> tuple[_Daemon, Any]:
    """`fiotray-server daemon --self-service OPTIONS` on the world's server, started, over
    the engineer's fake factory (served a second time, in the server's namespace, with
    the daemon's own API token). Returns the daemon and that API server; stop both."""
    from fiotray.demo.fakeapi import FakeApiServer
    from tests.engineer import FACTORY
    from tests.vpn_world import in_netns

    world = engineer.world
    token = "server-api-token-91aa"
    engineer.api.factory.add_api_token(token)
    state = tmp_path / "state"
    with in_netns(world.server_ns):  # the same factory, as the server reaches the API
        sock = socket.create_server(("127.0.0.1", 0))
        api = FakeApiServer(engineer.api.factory, sock=sock).start()
    args = ["-f", FACTORY, "-n", world.server_ifname, "--state-dir", str(state)]
    args += ["daemon", "--self-service", *options, "--api-url", api.url]
    args += ["--apitoken-file", str(_token_file(tmp_path, token))]
    args += ["--hosts-file", str(tmp_path / "hosts")]
    return _Daemon(world, tmp_path, args, state).start(), api


def test_a_new_laptop_requests_access_and_reaches_a_device_with_no_admin_step(
    engineer, tmp_path: Path
) -> None:
    """The whole self-service flow through the real parts: the engineer's `fiotray`
    (keyring, pkexec, helper, wg-quick) asks for access, the daemon (`--self-service
    --forward`) admits the laptop at its next sync, SSH reaches a device over the jump and
    the direct route; removing the tunnel withdraws the request and the peer goes."""
    from tests.engineer import FACTORY

    world = engineer.world
    device = world.devices[0]
    factory = engineer.api.factory

    out = engineer.fiotray(
        "tunnels",
        "add-foundries",
        "--factory",
        FACTORY,
        "--interface",
        world.laptop_ifname,
        "--request-access",
    ).stdout
    (tunnel,) = json.loads(engineer.fiotray("tunnels", "list", "--json").stdout)
    assert f"Access requested as {tunnel['engineer']}" in out, out
    request = _factory_file(factory, f"fiotray-engineer-{tunnel['engineer']}")
    assert request == f"pubkey={tunnel['public_key']}\naddress={tunnel['address']}"
    assert wgconf.is_engineer_address(tunnel["address"], world.server_vpn_address)

    daemon, api = _engineers_daemon(engineer, tmp_path, "--interval", "0.3", "--forward")
    try:
        _wait(
            lambda: tunnel["public_key"] in _server_peers(world),
            "the laptop was not admitted",
            15,
            daemon.why,
        )
        proc = engineer.fiotray("connect")
        assert ": connected" in proc.stdout, proc.stdout
        assert engineer.fiotray("ssh", device.name, "--", "hostname").stdout.strip() == device.name
        direct = engineer.fiotray("ssh", device.name, "--route", "direct", "--", "hostname")
        assert direct.stdout.strip() == device.name

        engineer.fiotray("disconnect")
        out = engineer.fiotray("tunnels", "remove", tunnel["name"]).stdout
        assert "access request is withdrawn" in out, out
        assert _factory_file(factory, f"fiotray-engineer-{tunnel['engineer']}").endswith(
            "\nenabled=0"
        )
        _wait(
            lambda: tunnel["public_key"] not in _server_peers(world),
            "the withdrawn laptop kept its peer",
            15,
            daemon.why,
        )
        assert device.wg_public_key in _server_peers(world)
    finally:
        code = daemon.stop()
        api.stop()
    assert code == 0, daemon.why()
