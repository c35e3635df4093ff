"""The `fiotray` command as a process: exit codes, one-line errors, JSON, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fiotray import __version__
from fiotray.demo.fakeapi import ConfigFile, FakeApiServer, FakeFactory
from tests.user_config import cli_env

FACTORY = "cli-factory"
TOKEN = "cli-api-token-7f3a9"
CLIENT_ID = "cli-client"
CLIENT_SECRET = "cli-client-secret-9Qw2"
KEY = "kZ2Jx0nZ3wWmJ0C6m0sN3w4b2Ff0h3aT1x9Yp8QeWmE="


class Cli:
    def __init__(self, env: dict[str, str], home: Path) -> None:
        self.env = env
        self.home = home

    def __call__(
        self, *args: str, stdin: str | None = None, env: dict | None = None, code: int = 0
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", "fiotray", *args],
            input=stdin,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == code, (
            f"fiotray {' '.join(args)}: exit {proc.returncode}, wanted {code}: {proc.stderr}"
        )
        if code not in (0, 2):  # argparse's usage errors have their own two-line form
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("fiotray: "), proc.stderr
        return proc

    def login(self, factory: str, api_url: str, token: str, **kw) -> subprocess.CompletedProcess:
        return self(
            "login",
            "--factory",
            factory,
            "--api-url",
            api_url,
            "--api-token-stdin",
            stdin=token,
            **kw,
        )


@pytest.fixture
def factory() -> FakeFactory:
    f = FakeFactory(FACTORY)
    f.add_api_token(TOKEN)
    f.add_oauth_client(CLIENT_ID, CLIENT_SECRET)
    f.set_wireguard_server()
    f.add_device("alpha", vpn_address="10.42.42.2")
    f.add_device("beta", wg_pubkey=KEY)
    f.add_device("nokey", wg_pubkey=None)
    return f


@pytest.fixture
def cli(tmp_path, secret_service) -> Cli:
    env = cli_env(tmp_path, secret_service.bus_address)
    return Cli(env, tmp_path)


@pytest.fixture
def signed_in(cli, server) -> Cli:
    cli.login(FACTORY, server.api_url, TOKEN)
    yield cli
    cli("logout")


def patches(server) -> list[dict]:
    return [json.loads(r.body) for r in server.requests if r.method == "PATCH"]


def test_version(cli):
    assert cli("--version").stdout.strip() == f"fiotray {__version__}"


def test_client_secret_never_from_argv(cli):
    proc = cli("login", "--factory", FACTORY, "--client-id", CLIENT_ID, code=2)
    assert "--client-secret-stdin" in proc.stderr


def test_wrong_api_token_saves_nothing(cli, server):
    cli.login(FACTORY, server.api_url, "wrong-token", code=3)
    assert not (cli.home / "config" / "fiotray" / "profiles.json").exists()


def test_no_secure_keyring_saves_nothing(cli, server):
    proc = cli.login(
        FACTORY,
        server.api_url,
        TOKEN,
        env={"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"},
        code=1,
    )
    assert "Secret Service" in proc.stderr
    assert not (cli.home / "config" / "fiotray" / "profiles.json").exists()


def test_devices_piped_keeps_whole_names(signed_in, factory):
    long_name = "gateway-" + "x" * 50 + "-unit-0042"  # the suffix tells units apart
    factory.add_device(long_name)
    out = signed_in("devices").stdout  # captured: not a terminal
    assert long_name in out


def test_devices_json_fields(signed_in, factory):
    rows = json.loads(signed_in("devices", "--json").stdout)
    assert [r["name"] for r in rows] == ["alpha", "beta", "nokey"]
    keys = {
        "name",
        "uuid",
        "online",
        "last_seen",
        "target",
        "group",
        "tag",
        "vpn_enabled",
        "vpn_address",
        "vpn_pending",
    }
    assert all(keys <= set(r) for r in rows)
    alpha = rows[0]
    assert (alpha["vpn_enabled"], alpha["vpn_address"], alpha["vpn_pending"]) == (
        True,
        "10.42.42.2",
        False,
    )
    assert alpha["uuid"] == factory.devices["alpha"].uuid
    found = json.loads(signed_in("devices", "--json", "--search", "ALP").stdout)
    assert [r["name"] for r in found] == ["alpha"]


def test_enable_then_pending_then_applied(signed_in, factory, server):
    out = signed_in("enable", "beta").stdout
    assert "10.42.42.3" in out and "pending" in out
    (body,) = patches(server)
    assert body["files"][0]["value"] == f"address=10.42.42.3\npubkey={KEY}"
    beta = next(r for r in json.loads(signed_in("devices", "--json").stdout) if r["name"] == "beta")
    assert (beta["vpn_enabled"], beta["vpn_pending"]) == (True, True)
    show = json.loads(signed_in("device-vpn", "beta", "--json").stdout)
    assert show == {
        "name": "beta",
        "enabled": True,
        "address": "10.42.42.3",
        "pubkey": KEY,
        "pending": True,
    }
    factory.apply_pending("beta")
    beta = next(r for r in json.loads(signed_in("devices", "--json").stdout) if r["name"] == "beta")
    assert beta["vpn_pending"] is False
    signed_in("disable", "beta")
    assert factory.current_file("beta", "wireguard-client").endswith("\nenabled=0")


def test_enable_without_key(signed_in, server):
    proc = signed_in("enable", "nokey", code=1)
    assert "Device has no public key for VPN" in proc.stderr
    assert patches(server) == []


@pytest.mark.parametrize(
    "name",
    ["-oProxyCommand=touch x", "a;touch x", "$(touch x)", "with space", "new\nline", "a/b", ""],
)
def test_hostile_device_names(signed_in, server, name):
    signed_in("enable", "--", name, code=1)
    assert patches(server) == []
    assert not (signed_in.home / "x").exists()


def test_api_error_is_one_line(signed_in, server):
    server.inject(
        "GET",
        r"^/ota/factories/.*/wireguard-ips/$",
        status=403,
        body={"msg": "You lack devices:read on this factory"},
    )
    proc = signed_in("devices", code=1)
    assert "403 Forbidden: You lack devices:read on this factory" in proc.stderr


def test_malformed_reply_is_one_line(signed_in, server):
    server.inject("GET", r"^/ota/devices/$", status=200, body='{"devices": [{"name": "x"')
    proc = signed_in("devices", code=1)
    assert "malformed" in proc.stderr


def test_terminal_escapes_from_server_are_neutralised(signed_in, factory):
    factory.add_device("evil\x1b]0;pwned\x07name")
    out = signed_in("devices").stdout
    assert "\x1b" not in out and "\x07" not in out
    assert "evil\\x1b]0;pwned\\x07name" in out


def write_fioctl(home: Path, server, **overrides) -> Path:
    path = home / ".config" / "fioctl.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    cc = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "access_token": "stale",
        "refresh_token": "stale-r",
        "token_type": "bearer",
        "expires_in": 3600,
        "created": "2024-03-01T10:00:00.123456789Z",
        "url": server.oauth_url,
    }
    cc.update(overrides)
    lines = [
        f"factory: {FACTORY}",
        "server:",
        f"  url: {server.api_url}",
        "  insecure_skip_verify: false",
        "clientcredentials:",
    ]
    lines += [f"  {k}: {v}" for k, v in cc.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_import_from_fioctl(cli, server, factory):
    fioctl_yaml = write_fioctl(cli.home, server)
    before = fioctl_yaml.read_bytes()
    cli("login", "--from-fioctl")
    assert fioctl_yaml.read_bytes() == before  # fioctl's own file is left alone
    assert len(json.loads(cli("devices", "--json").stdout)) == 3
    for path in (cli.home / "config").rglob("*"):
        if path.is_file():
            assert CLIENT_SECRET.encode() not in path.read_bytes(), path
    cli("logout")


def test_import_from_fioctl_missing_or_malformed(cli, server):
    proc = cli("login", "--from-fioctl", str(cli.home / "nope.yaml"), code=1)
    assert "nope.yaml" in proc.stderr
    bad = cli.home / "bad.yaml"
    bad.write_text(f"clientcredentials: [client_secret: {CLIENT_SECRET}\n")
    proc = cli("login", "--from-fioctl", str(bad), code=1)
    assert CLIENT_SECRET not in proc.stderr
    assert not (cli.home / "config" / "fiotray" / "profiles.json").exists()


def test_several_factories_need_a_choice(cli, server, factory):
    factory2 = FakeFactory("other-factory")
    factory2.add_api_token("other-token")
    with FakeApiServer(factory2) as server2:
        cli.login(FACTORY, server.api_url, TOKEN)
        cli.login("other-factory", server2.api_url, "other-token")
        listing = json.loads(cli("factories", "--json").stdout)
        assert [(p["factory"], p["default"]) for p in listing] == [
            (FACTORY, True),
            ("other-factory", False),
        ]
        assert len(json.loads(cli("devices", "--json").stdout)) == 3  # the default
        assert json.loads(cli("devices", "--json", "--factory", "other-factory").stdout) == []
        cli("logout", "--factory", FACTORY)
        cli("logout", "--factory", "other-factory")


def test_unknown_keys_in_client_file_keep_everything(signed_in, factory, server):
    factory.add_device(
        "odd",
        wg_pubkey=None,
        extra_files=[ConfigFile("wireguard-client", f"address=10.42.42.9\npubkey={KEY}\nfoo=bar")],
    )
    proc = signed_in("disable", "odd", code=1)
    assert "foo" in proc.stderr
    assert patches(server) == []


def test_revoked_api_token_asks_to_sign_in_again(signed_in, factory):
    factory.revoke(TOKEN)
    proc = signed_in("devices", code=3)
    assert "sign in again" in proc.stderr
    assert TOKEN not in proc.stderr


def test_ssh_config_for_every_vpn_device(signed_in, server, tmp_path):
    out_file = tmp_path / "chosen" / "fio.conf"
    proc = signed_in("ssh-config", "--output", str(out_file))
    text = out_file.read_text()
    assert "Host fiotray.cli-factory.alpha" in text
    assert "HostName 10.42.42.2" in text
    assert "beta" not in text and "nokey" not in text  # not on the VPN
    assert f'Include "{out_file}"' in proc.stdout or f"Include {out_file}" in proc.stdout
    # Real OpenSSH reads what we wrote: the jump host and the device's address come out.
    resolved = subprocess.run(
        ["ssh", "-G", "-F", str(out_file), "fiotray.cli-factory.alpha"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "hostname 10.42.42.2" in resolved
    assert "proxyjump fiotray-jump.cli-factory" in resolved  # the server, its own alias
    hop = subprocess.run(
        ["ssh", "-G", "-F", str(out_file), "fiotray-jump.cli-factory"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "hostname 10.42.42.1" in hop and "user fio" in hop


def test_ssh_print_and_hostile_route(signed_in):
    printed = signed_in("ssh", "alpha", "--print").stdout
    assert "-J fio@10.42.42.1" in printed and "fio@10.42.42.2" in printed
    signed_in("ssh", "beta", "--print", code=1)  # VPN not enabled on it


def test_ssh_uses_the_users_settings(signed_in):
    """The login and route chosen in the tray's settings apply to `fiotray ssh` too."""
    settings = signed_in.home / "config" / "fiotray" / "settings.json"
    settings.write_text(json.dumps({"ssh_user": "admin", "ssh_route": "direct"}))
    printed = signed_in("ssh", "alpha", "--print").stdout.split()
    assert "admin@10.42.42.2" in printed, printed
    assert "-J" not in printed, printed  # direct: no jump through the server
    # An explicit route still wins over the settings.
    jumped = signed_in("ssh", "alpha", "--print", "--route", "jump").stdout
    assert "-J fio@10.42.42.1" in jumped and "admin@10.42.42.2" in jumped


def test_demo_never_touches_the_users_files(cli):
    """--demo adds its tunnel to the demo's own store, not to the user's tunnels.json."""
    import base64
    import tempfile

    key = base64.b64encode(bytes(range(32))).decode()
    peer = base64.b64encode(bytes(range(1, 33))).decode()
    with tempfile.TemporaryDirectory() as scratch:  # outside the home that is compared
        conf = Path(scratch) / "office.conf"
        conf.write_text(
            f"[Interface]\nPrivateKey = {key}\nAddress = 10.9.0.2/32\n\n"
            f"[Peer]\nPublicKey = {peer}\nAllowedIPs = 10.9.0.0/24\n"
            "Endpoint = 127.0.0.1:51820\n"
        )
        before = sorted(p.relative_to(cli.home) for p in cli.home.rglob("*"))
        added = cli("--demo", "tunnels", "import", str(conf), "--name", "mine")
    assert "Imported tunnel mine" in added.stdout, added.stdout
    listed = cli("--demo", "tunnels", "list").stdout
    assert "demo-factory" in listed and "mine" not in listed  # a new demo each run
    assert "demo-factory" in cli("--demo", "status").stdout
    assert sorted(p.relative_to(cli.home) for p in cli.home.rglob("*")) == before


def test_tunnels_and_the_old_profiles_name(signed_in):
    empty = signed_in("tunnels", "list").stdout
    assert empty == signed_in("profiles", "list").stdout
    assert "fiotray tunnels add-foundries" in empty


def test_connect_when_fiotray_starts_is_scriptable(signed_in):
    added = signed_in("tunnels", "add-foundries", "--address", "10.42.42.200", "--name", "vpn")
    assert "Added tunnel vpn" in added.stdout
    store = signed_in.home / "config" / "fiotray" / "tunnels.json"
    assert signed_in("tunnels", "autoconnect", "vpn").stdout.strip() == "off"
    said = signed_in("tunnels", "autoconnect", "vpn", "on").stdout
    assert said.strip() == "vpn connects when fiotray starts."
    assert json.loads(store.read_text())["tunnels"]["vpn"]["autoconnect"] is True
    assert signed_in("tunnels", "autoconnect", "vpn").stdout.strip() == "on"
    signed_in("tunnels", "autoconnect", "vpn", "off")
    assert "autoconnect" not in json.loads(store.read_text())["tunnels"]["vpn"]  # off: not written
    refused = signed_in("tunnels", "autoconnect", "nope", "on", code=1)
    assert "No tunnel named 'nope'" in refused.stderr
    # A second tunnel to the same factory is refused with what to do instead.
    again = signed_in("tunnels", "add-foundries", "--address", "10.42.42.201", code=1)
    assert "already has a tunnel, vpn" in again.stderr
    assert "fiotray tunnels remove vpn" in again.stderr


def _lab(factory: FakeFactory) -> list[str]:
    names = [f"lab-{i}" for i in range(6)]
    for name in names:
        factory.add_device(name, vpn_enabled=False, group="lab", tag="devel")
    factory.add_device("lab-nokey", wg_pubkey=None, vpn_enabled=False, group="lab", tag="devel")
    factory.add_device("lab-main", vpn_enabled=False, group="lab", tag="main")
    return names


def test_bulk_enable_by_selectors_distinct_addresses(signed_in, factory, server):
    names = _lab(factory)
    factory.add_device("lab-on", vpn_address="10.42.42.9", group="lab", tag="devel")
    proc = signed_in("enable", "--group", "lab", "--tag", "devel", code=1)
    # The one failure: one line on stderr, naming the device.
    assert proc.stderr.startswith("fiotray: lab-nokey: Device has no public key for VPN")
    assert "skipped lab-on: already enabled" in proc.stdout
    assert "Enabled VPN on 6 of 7 devices; 1 failed; 1 skipped" in proc.stdout
    written = {b["files"][0]["value"] for b in patches(server)}
    addresses = [
        line.removeprefix("address=")
        for value in written
        for line in value.splitlines()
        if line.startswith("address=")
    ]
    assert len(addresses) == len(names) == len(set(addresses))
    assert not {"10.42.42.2", "10.42.42.9"} & set(addresses)  # held before the batch
    rows = {r["name"]: r for r in json.loads(signed_in("devices", "--json").stdout)}
    assert all(rows[n]["vpn_enabled"] and rows[n]["vpn_pending"] for n in names)
    assert rows["lab-main"]["vpn_enabled"] is False  # --tag devel: not selected


def test_bulk_dry_run_writes_nothing(signed_in, factory, server):
    _lab(factory)
    proc = signed_in("disable", "alpha", "lab-0", "--dry-run")
    assert proc.stdout.splitlines() == [
        "would disable VPN on alpha",
        "would skip lab-0: VPN never enabled",
        "Dry run: 1 device to disable, 1 skipped; nothing was written.",
    ]
    plan = json.loads(signed_in("enable", "--group", "lab", "--dry-run", "--json").stdout)
    assert plan["change"] == [f"lab-{i}" for i in range(6)] + ["lab-main", "lab-nokey"]
    assert plan["skipped"] == [] and plan["missing"] == []
    proc = signed_in("enable", "alpha", "ghost", "--dry-run", code=1)
    assert "would skip alpha: already enabled" in proc.stdout
    assert proc.stderr.strip() == "fiotray: ghost: no such device"
    assert [r for r in server.requests if r.method != "GET"] == []


def test_enable_wait_follows_each_device_and_says_why_one_is_not_reachable(
    signed_in, factory, server
):
    # No tunnel on this machine: a device that applies is followed to "applied", then
    # reported not reachable with why; one that never applies says it is offline.
    factory.auto_apply_after = 0.0
    factory.add_device("lab-0", vpn_enabled=False)
    factory.add_device("far-away", vpn_enabled=False, online=False)
    proc = signed_in("enable", "lab-0", "--wait", "3", code=4)
    assert "lab-0: applied; waiting for an answer over the VPN…" in proc.stdout, proc.stdout
    assert proc.stderr.startswith("fiotray: lab-0 is not reachable after 3 s: factory ")
    assert "has no tunnel on this computer for the jump route" in proc.stderr
    proc = signed_in("enable", "far-away", "--wait", "2", code=4)
    assert proc.stderr.startswith("fiotray: far-away is not reachable after 2 s: the device is ")
    assert "offline (last seen 30d ago)" in proc.stderr

    report = json.loads(signed_in("disable", "lab-0", "--wait", "10", "--json").stdout)
    assert report["enabled"] is False and report["wait"]["done"] is True
    assert report["wait"]["stage"] == "applied" and report["wait"]["seconds"]["apply"] >= 0


def test_enable_wait_usage_errors_write_nothing(signed_in, factory, server):
    for args, said in (
        (("--wait", "0"), "--wait takes a number of seconds above 0"),
        (("--wait", "5", "--dry-run"), "--dry-run writes nothing to wait for"),
    ):
        proc = signed_in("enable", "beta", *args, code=2)
        assert said in proc.stderr, proc.stderr
    assert [r for r in server.requests if r.method != "GET"] == []


def test_devices_filters(signed_in, factory):
    _lab(factory)
    factory.add_device("lab-on", vpn_address="10.42.42.9", group="lab", tag="devel")
    factory.add_device("gone", vpn_enabled=False, group="lab", online=False)

    def names(*args: str) -> list[str]:
        return [r["name"] for r in json.loads(signed_in("devices", "--json", *args).stdout)]

    assert names("--group", "lab", "--vpn", "enabled") == ["lab-on"]
    assert names("--group", "lab", "--offline") == ["gone"]
    assert names("--tag", "main", "--group", "lab") == ["gone", "lab-main"]
    assert names("--search", "lab main") == ["gone", "lab-main"]  # each word somewhere
    assert names("--vpn", "disabled", "--tag", "devel", "--online") == [
        f"lab-{i}" for i in range(6)
    ] + ["lab-nokey"]
    signed_in("devices", "--vpn", "on", code=2)
    signed_in("devices", "--online", "--offline", code=2)


def test_favourite_add_list_remove(signed_in):
    assert "No favourite devices" in signed_in("favourite").stdout
    assert signed_in("favourite", "beta").stdout.strip() == "Added beta to the favourites."
    signed_in("favourite", "alpha")
    proc = signed_in("favourite", "ghost", code=1)
    assert "ghost" in proc.stderr
    assert json.loads(signed_in("favourite", "--json").stdout) == [
        {"factory": FACTORY, "name": "beta"},
        {"factory": FACTORY, "name": "alpha"},
    ]
    signed_in("favourite", "--remove", "beta")
    assert json.loads(signed_in("favourite", "--json").stdout) == [
        {"factory": FACTORY, "name": "alpha"}
    ]
    settings = json.loads((signed_in.home / "config" / "fiotray" / "settings.json").read_text())
    assert settings["favourites"] == [[FACTORY, "alpha"]]
