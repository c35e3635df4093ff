"""fiotray's tunnels and SSH through the real parts, as an engineer at a laptop uses them.

The unprivileged user `fiotray-t` runs the `fiotray` CLI inside the laptop
namespace of the VPN world (tests/vpn_world.py) with their own Secret Service;
tunnels go up through real pkexec and polkit on the system bus, the installed
helper, wg-quick and wireguard-go; SSH goes to real sshd on the test devices.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fiotray.core import wgconf
from fiotray.demo.fakeapi import FakeApiServer, FakeFactory
from tests.system_user import SystemUser
from tests.vpn_world import VpnWorld, in_netns

FACTORY = "worldfactory"
KEYRING_PASSWORD = "engineer-keyring-pw"
# Each command gets its own D-Bus session with the user's gnome-keyring, unlocked
# with the login password as a desktop session would; the keyring files persist.
WITH_KEYRING = (
    'printf %s "$KEYRING_PW" | gnome-keyring-daemon --unlock --components=secrets '
    '>/dev/null 2>&1 || { echo "gnome-keyring-daemon failed" >&2; exit 90; }; '
    'unset KEYRING_PW; exec "$@"'
)


@dataclass
class Engineer:
    world: VpnWorld
    user: SystemUser
    home: Path
    api: FakeApiServer

    def env(self) -> dict[str, str]:
        return {
            "XDG_CONFIG_HOME": str(self.home / "config"),
            "XDG_STATE_HOME": str(self.home / "state"),
            "XDG_CACHE_HOME": str(self.home / "cache"),
            "XDG_DATA_HOME": str(self.home / "data"),
            "XDG_RUNTIME_DIR": str(self.home / "run"),
            "KEYRING_PW": KEYRING_PASSWORD,
        }

    @staticmethod
    def argv(*args: str) -> list[str]:
        """fiotray with the user's own unlocked keyring on a fresh session bus."""
        return [
            "dbus-run-session",
            "--",
            "sh",
            "-c",
            WITH_KEYRING,
            "sh",
            sys.executable,
            "-m",
            "fiotray",
            *args,
        ]

    def fiotray(
        self, *args: str, stdin: str | None = None, code: int | None = 0, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        argv = self.argv(*args)
        proc = self.world.exec(
            self.world.laptop_ns, argv, user=self.user, input=stdin, env=self.env(), timeout=timeout
        )
        if code is not None:
            assert proc.returncode == code, (
                f"fiotray {' '.join(args)} exited {proc.returncode}, wanted {code}:\n"
                f"{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        """fiotray in the background (to be killed mid-way)."""
        env = {**self.user.env(), **self.env()}
        return subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.world.laptop_ns,
                "runuser",
                "-u",
                self.user.name,
                "--",
                *self.argv(*args),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def status(self) -> dict[str, dict]:
        return {s["profile"]: s for s in json.loads(self.fiotray("status", "--json").stdout)}

    def interfaces(self) -> set[str]:
        out = self.world.exec(self.world.laptop_ns, ["ip", "-o", "link", "show"], check=True)
        return {line.split(":")[1].strip().split("@")[0] for line in out.stdout.splitlines()}


def _owned_dir(path: Path, user: SystemUser) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.chown(path, user.uid, user.gid)
    return path


@pytest.fixture
def engineer(clean_vpn_world, app_user, polkit) -> Iterator[Engineer]:
    world = clean_vpn_world
    polkit.set_mode("allow")
    # Not under pytest's tmp_path: its parents are root-only, and the engineer is not root.
    home = _owned_dir(Path(tempfile.mkdtemp(prefix="fiotray-engineer-")), app_user)
    for sub in ("config", "state", "cache", "data", "run"):
        _owned_dir(home / sub, app_user)
    # OpenSSH finds ~/.ssh through the passwd entry, not $HOME.
    ssh_dir = _owned_dir(app_user.home / ".ssh", app_user)
    shutil.copy(world.ssh_key, ssh_dir / "id_ed25519")
    (ssh_dir / "known_hosts").write_text(
        f"{world.server_vpn_address} {world.server_host_public_key}\n"
    )
    for f in ssh_dir.iterdir():
        shutil.chown(f, app_user.uid, app_user.gid)
        f.chmod(0o600)

    factory = FakeFactory(FACTORY)
    token = secrets.token_urlsafe(16)
    factory.add_api_token(token)
    factory.set_wireguard_server(
        endpoint=world.server_endpoint,
        server_address=world.server_vpn_address,
        pubkey=world.server_public_key,
    )
    for device in world.devices:
        factory.add_device(
            device.name, wg_pubkey=device.wg_public_key, vpn_address=device.vpn_address
        )
    factory.add_device("not-on-vpn")
    api = FakeApiServer(factory)
    with in_netns(world.laptop_ns):  # reachable at 127.0.0.1 from inside the laptop namespace
        api.start()
    person = Engineer(world, app_user, home, api)
    try:
        person.fiotray(
            "login",
            "--factory",
            FACTORY,
            "--api-url",
            api.api_url,
            "--api-token-stdin",
            stdin=token,
        )
        yield person
    finally:
        # Whatever a failed test left up comes down, as root, by the helper itself.
        for name in (world.laptop_ifname, f"{world.prefix}-o"):
            polkit.run_as_root(["down", name])
        api.stop()
        shutil.rmtree(ssh_dir, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


def add_foundries_tunnel(person: Engineer) -> dict:
    world = person.world
    out = person.fiotray(
        "profiles",
        "add-foundries",
        "--factory",
        FACTORY,
        "--address",
        world.laptop_vpn_address,
        "--interface",
        world.laptop_ifname,
    ).stdout
    (profile,) = json.loads(person.fiotray("profiles", "list", "--json").stdout)
    assert f"allowed-ips {world.laptop_vpn_address}/32" in out
    assert profile["public_key"] in out  # the admin line to send to the server's admin
    return profile


def test_connect_ssh_routes_disconnect(engineer):
    world = engineer.world
    profile = add_foundries_tunnel(engineer)
    # The private key never touches a file the user can read.
    for path in engineer.home.rglob("*"):
        if path.is_file() and path.suffix == ".json":
            assert "PrivateKey" not in path.read_text()

    # The server does not know this laptop yet: up, but no handshake, and fiotray says why.
    proc = engineer.fiotray("connect", "--wait", "2", code=4)
    assert "No handshake with the server" in proc.stdout
    engineer.fiotray("disconnect")

    world.add_peer(profile["public_key"], world.laptop_vpn_address)  # the admin's step
    proc = engineer.fiotray("connect")
    assert ": connected" in proc.stdout, proc.stdout
    status = engineer.status()[FACTORY]
    assert status["state"] == "connected"
    assert status["endpoint"] == world.server_endpoint
    assert status["latest_handshake_age"] is not None and status["latest_handshake_age"] < 60
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
    profile = add_foundries_tunnel(engineer)
    world.add_peer(profile["public_key"], world.laptop_vpn_address)

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
    engineer.fiotray("profiles", "import", str(conf), "--name", "office", "--interface", office_if)
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
        "profiles", "import", str(conf), "--name", "void", "--interface", f"{world.prefix}-o"
    )
    proc = engineer.fiotray("connect", "void", "--wait", "1", code=4)
    assert "No handshake" in proc.stdout
    engineer.fiotray("disconnect", "void")
    assert engineer.status()["void"]["state"] == "disconnected"

    # A config with hook scripts never becomes a profile.
    hooked = engineer.home / "hooked.conf"
    hooked.write_text(conf.read_text().replace("[Peer]", "PostUp = touch /tmp/pwned\n[Peer]"))
    shutil.chown(hooked, engineer.user.uid, engineer.user.gid)
    proc = engineer.fiotray("profiles", "import", str(hooked), "--name", "hooked", code=1)
    assert "PostUp" in proc.stderr
    assert "hooked" not in engineer.status()
