"""pytest plugin: an engineer at a laptop in the VPN world, signed in to a fake factory.

Fixture
-------
``engineer`` (function scope; needs ``clean_vpn_world``, ``app_user``, ``polkit``)
    The unprivileged user ``fiotray-t`` with a private home (XDG dirs), their own
    gnome-keyring (unlocked per command on a fresh D-Bus session, as a desktop
    login does), the world's SSH key in ``~/.ssh``, and a `FakeApiServer` listening
    inside the laptop namespace with the world's devices (their real WireGuard keys
    and addresses) plus ``not-on-vpn``. ``fiotray login`` has run. Yields an
    `Engineer`: ``fiotray(*args)`` runs the CLI there, ``spawn(*args)`` starts it in
    the background, ``status()``, ``interfaces()``.

Also: ``add_foundries_tunnel(engineer)``, the CLI's ``tunnels add-foundries`` for
the world's server, returning the tunnel.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

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
    token: str = ""  # the API token `fiotray login` was given (tests scan output for it)

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

    def spawn(
        self, *args: str, env: dict[str, str] | None = None, log: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """fiotray in the background (to be killed mid-way, or the tray app).

        `env` adds to the user's environment (DISPLAY, say); `log` gets its output.
        """
        full_env = {**self.user.env(), **self.env(), **(env or {})}
        out = log.open("ab") if log is not None else subprocess.DEVNULL
        try:
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
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            if log is not None:
                out.close()  # type: ignore[union-attr]

    def status(self) -> dict[str, dict]:
        return {s["tunnel"]: s for s in json.loads(self.fiotray("status", "--json").stdout)}

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
    person = Engineer(world, app_user, home, api, token)
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
            polkit.run_as_root(["down", name], netns=world.laptop_ns)
        api.stop()
        shutil.rmtree(ssh_dir, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


def add_foundries_tunnel(person: Engineer) -> dict:
    world = person.world
    out = person.fiotray(
        "tunnels",
        "add-foundries",
        "--factory",
        FACTORY,
        "--address",
        world.laptop_vpn_address,
        "--interface",
        world.laptop_ifname,
    ).stdout
    (tunnel,) = json.loads(person.fiotray("tunnels", "list", "--json").stdout)
    assert f"allowed-ips {world.laptop_vpn_address}/32" in out
    assert tunnel["public_key"] in out  # the admin line to send to the server's admin
    return tunnel
