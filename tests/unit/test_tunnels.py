"""Tunnels and the controller's state machine, with a fake helper (no root)."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from fiotray.core import errors, tunnels, wgconf
from fiotray.core.errors import SetupError, VpnError
from fiotray.core.secrets import MemorySecretStore, tunnel_key
from fiotray.core.settings import SettingsStore
from fiotray.core.tunnels import (
    HelperClient,
    InterfaceStatus,
    PeerStatus,
    State,
    TunnelController,
    TunnelStore,
)
from fiotray.core.wgfiles import WireguardServer
from fiotray.helper import fiotray_helper
from fiotray.wg import errors as helper_exit

SERVER_KEY = wgconf.public_key(wgconf.generate_private_key())
SERVER = WireguardServer("vpn.example.test:5555", "10.42.42.1", SERVER_KEY)


class FakeHelper(HelperClient):
    """Plays the helper: `up` makes the interface appear in a fake /sys/class/net."""

    def __init__(self, sys_net, clock) -> None:
        super().__init__()
        self.sys_net = sys_net
        self.clock = clock
        self.calls: list[tuple[str, str]] = []
        self.configs: dict[str, str] = {}
        self.handshake: dict[str, float] = {}
        self.created: dict[str, float] = {}
        self.fail_up: str | None = None
        self.gate: asyncio.Event | None = None
        self.others: set[str] = set()  # interfaces another user brought up through the helper

    async def up(self, interface: str, config: str) -> None:
        self.calls.append(("up", interface))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_up:
            raise VpnError(self.fail_up)
        if (self.sys_net / interface).exists():
            raise VpnError(f"interface {interface} already exists")
        (self.sys_net / interface).mkdir()
        self.configs[interface] = config
        self.created[interface] = self.clock()

    async def down(self, interface: str) -> None:
        self.calls.append(("down", interface))
        (self.sys_net / interface).rmdir()

    async def status(self) -> dict[str, InterfaceStatus]:
        self.calls.append(("status", ""))
        # What the helper tells of another user's tunnel: its name and that it is up.
        theirs = {
            name: InterfaceStatus(name, (self.sys_net / name).exists(), 0.0, (), mine=False)
            for name in self.others
        }
        return theirs | {
            name: InterfaceStatus(
                name,
                (self.sys_net / name).exists(),
                self.created[name],
                (PeerStatus(SERVER_KEY, "192.0.2.1:5555", self.handshake.get(name, 0.0), 10, 20),),
            )
            for name in self.configs
            if (self.sys_net / name).exists()
        }


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(tmp_path):
    clock = Clock()
    sys_net = tmp_path / "sys-class-net"
    sys_net.mkdir()
    store = TunnelStore(tmp_path / "config")
    secrets = MemorySecretStore()
    helper = FakeHelper(sys_net, clock)
    controller = TunnelController(store, secrets, helper, clock=clock, sys_net=sys_net)
    return store, secrets, helper, controller, clock


async def add_factory_tunnel(store, secrets, name="acme", address="10.42.42.200"):
    return await tunnels.create_foundries_tunnel(
        store, secrets, name=name, factory=name, server=SERVER, address=address, used=set()
    )


async def test_foundries_tunnel_keeps_private_key_only_in_keyring(world, tmp_path):
    store, secrets, *_ = world
    tunnel = await add_factory_tunnel(store, secrets)
    private = secrets.get(tunnel_key("acme"))
    assert wgconf.public_key(private) == tunnel.public_key
    saved = store.path.read_text()
    assert private not in saved
    assert oct(store.path.stat().st_mode & 0o777) == "0o600"
    assert tunnel.interface == "fioacme"
    assert "AllowedIPs = 10.42.0.0/17" in tunnel.template
    assert "PersistentKeepalive = 25" in tunnel.template
    assert tunnels.admin_line(tunnel) == (
        f"wg set fioacme peer {tunnel.public_key} allowed-ips 10.42.42.200/32"
    )


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("10.42.42.1", "server's own"),
        ("10.42.42.7", "belongs to a device"),
        ("192.168.1.5", "outside"),
        ("10.42.43.0", "host address"),
        ("bogus", "not an IPv4"),
    ],
)
async def test_bad_laptop_address(world, address, message):
    store, secrets, *_ = world
    with pytest.raises(VpnError, match=message):
        await tunnels.create_foundries_tunnel(
            store,
            secrets,
            name="acme",
            factory="acme",
            server=SERVER,
            address=address,
            used={"10.42.42.7"},
        )
    assert not store.path.exists()
    assert secrets.get(tunnel_key("acme")) is None


def test_vpn_subnet_covers_fioctl_allocation_window():
    net = wgconf.vpn_subnet("10.42.42.1")
    assert str(net) == "10.42.0.0/17"
    import ipaddress

    assert ipaddress.ip_address("10.42.81.16") in net  # server + 9999


async def test_connect_disconnect_state_from_system(world):
    store, secrets, helper, controller, clock = world
    await add_factory_tunnel(store, secrets)
    (status,) = await controller.status()
    assert status.state is State.DISCONNECTED
    assert ("status", "") not in helper.calls  # nothing up: no helper call at all

    status = await controller.connect("acme")
    assert status.state is State.CONNECTING
    # The server never answered this key: not admitted yet, rather than "connecting".
    clock.now += tunnels.ADMIT_GRACE + 1
    (status,) = await controller.status()
    assert status.state is State.WAITING
    assert "PrivateKey = " + secrets.get(tunnel_key("acme")) in helper.configs["fioacme"]

    helper.handshake["fioacme"] = clock.now
    (status,) = await controller.status()
    assert status.state is State.CONNECTED
    assert status.handshake_age(clock.now) == 0
    assert store.get("acme").admitted  # remembered for good

    clock.now += tunnels.STALE_AFTER + 1
    (status,) = await controller.status()
    assert status.state is State.STALE
    assert status.detail.startswith("server unreachable")

    status = await controller.disconnect("acme")
    assert status.state is State.DISCONNECTED
    assert [c[0] for c in helper.calls].count("down") == 1

    # Admitted once: silence after a connect is "connecting", then "unreachable".
    helper.handshake.pop("fioacme", None)
    status = await controller.connect("acme")
    assert status.state is State.CONNECTING
    clock.now += tunnels.FIRST_HANDSHAKE_GRACE + 1
    (status,) = await controller.status()
    assert status.state is State.STALE
    assert status.detail == "server unreachable: no answer from vpn.example.test:5555 yet"


async def test_no_handshake_ever_says_admin_must_add_laptop(world):
    store, secrets, _helper, controller, clock = world
    tunnel = await add_factory_tunnel(store, secrets)
    await controller.connect("acme")
    clock.now += tunnels.FIRST_HANDSHAKE_GRACE + 1
    (status,) = await controller.status()
    assert status.state is State.WAITING
    assert status.detail.startswith("waiting for the server to admit this laptop")
    assert tunnels.admin_line(tunnel) in status.detail
    assert f"peers add {tunnels.engineer_name()} {tunnel.public_key}" in status.detail


async def test_concurrent_connects_are_serialized_and_bring_up_once(world):
    store, secrets, helper, controller, _ = world
    await add_factory_tunnel(store, secrets)
    helper.gate = asyncio.Event()
    first = asyncio.create_task(controller.connect("acme"))
    second = asyncio.create_task(controller.connect("acme"))
    await asyncio.sleep(0)
    helper.gate.set()
    results = await asyncio.gather(first, second)
    assert [c for c in helper.calls if c[0] == "up"] == [("up", "fioacme")]
    assert all(r.state is State.CONNECTING for r in results)


async def test_connect_then_disconnect_race_ends_down(world):
    store, secrets, _helper, controller, _ = world
    await add_factory_tunnel(store, secrets)
    results = await asyncio.gather(controller.connect("acme"), controller.disconnect("acme"))
    assert results[1].state is State.DISCONNECTED
    assert not controller.interface_exists("fioacme")


async def test_failed_connect_is_error_state_until_next_success(world):
    store, secrets, helper, controller, _ = world
    await add_factory_tunnel(store, secrets)
    helper.fail_up = "Not authorized to manage fiotray tunnels (polkit refused)."
    seen: list[State] = []
    controller.subscribe(lambda s: seen.append(s.state))
    with pytest.raises(VpnError, match="polkit refused"):
        await controller.connect("acme")
    (status,) = await controller.status()
    assert status.state is State.ERROR and "polkit" in status.detail
    assert seen == [State.CONNECTING, State.ERROR]
    helper.fail_up = None
    assert (await controller.connect("acme")).state is State.CONNECTING


async def test_tunnel_left_up_by_earlier_run_is_found_and_taken_down(world, tmp_path):
    store, secrets, helper, controller, clock = world
    await add_factory_tunnel(store, secrets)
    await controller.connect("acme")
    helper.handshake["fioacme"] = clock.now
    # A new app instance: fresh controller, same system.
    again = TunnelController(store, secrets, helper, clock=clock, sys_net=helper.sys_net)
    (status,) = await again.status()
    assert status.state is State.CONNECTED
    assert (await again.disconnect()).state is State.DISCONNECTED


async def test_interface_up_outside_fiotray_is_reported_not_touched(world):
    store, secrets, helper, controller, _ = world
    await add_factory_tunnel(store, secrets)
    (helper.sys_net / "fioacme").mkdir()
    (status,) = await controller.status()
    assert status.foreign and status.state is State.CONNECTED
    assert "not brought up by fiotray" in status.detail
    assert status.to_json()["foreign"] is True
    with pytest.raises(VpnError, match="already up outside fiotray") as info:
        await controller.connect("acme")
    assert info.value.code == errors.TUNNEL_FOREIGN
    assert [c for c in helper.calls if c[0] == "up"] == []


async def test_another_users_tunnel_is_theirs_not_foreign_nor_ours(world):
    store, secrets, helper, controller, _ = world
    await add_factory_tunnel(store, secrets)
    (helper.sys_net / "fioacme").mkdir()
    helper.others.add("fioacme")
    (status,) = await controller.status()
    assert status.foreign and status.detail == "up, brought up by another user of this computer"
    with pytest.raises(VpnError, match="another user of this computer brought it up") as info:
        await controller.connect("acme")
    assert info.value.code == errors.TUNNEL_FOREIGN
    assert [c for c in helper.calls if c[0] == "up"] == []


async def test_own_tunnel_is_not_foreign(world):
    store, secrets, _helper, controller, _ = world
    await add_factory_tunnel(store, secrets)
    await controller.connect("acme")
    (status,) = await controller.status()
    assert not status.foreign and status.to_json()["foreign"] is False
    assert (await controller.connect("acme")).state is State.CONNECTING  # not an error


async def test_two_tunnels_coexist(world, tmp_path):
    store, secrets, _helper, controller, _ = world
    await add_factory_tunnel(store, secrets)
    conf = tmp_path / "office.conf"
    key = wgconf.generate_private_key()
    conf.write_text(
        f"[Interface]\nPrivateKey = {key}\nAddress = 10.9.0.2/24\n\n"
        f"[Peer]\nPublicKey = {SERVER_KEY}\nEndpoint = 198.51.100.1:51820\n"
        "AllowedIPs = 10.9.0.0/24\n"
    )
    text = conf.read_text()
    plain = await tunnels.import_plain_tunnel(store, secrets, name="office", text=text)
    assert key not in store.path.read_text()
    await controller.connect("acme")
    await controller.connect("office")
    states = {s.tunnel: s.state for s in await controller.status()}
    assert states == {"acme": State.CONNECTING, "office": State.CONNECTING}
    assert plain.interface == "office"


@pytest.mark.parametrize("hook", ["PostUp", "PreUp", "PreDown", "PostDown"])
async def test_import_refuses_hooks_with_explanation(world, hook):
    store, secrets, *_ = world
    key = wgconf.generate_private_key()
    text = (
        f"[Interface]\nPrivateKey = {key}\nAddress = 10.9.0.2/24\n{hook} = touch /tmp/x\n"
        f"[Peer]\nPublicKey = {SERVER_KEY}\nAllowedIPs = 10.9.0.0/24\n"
    )
    with pytest.raises(wgconf.ConfigRefused, match=hook) as info:
        await tunnels.import_plain_tunnel(store, secrets, name="bad", text=text)
    assert key not in str(info.value)
    assert not store.path.exists()
    assert secrets.get(tunnel_key("bad")) is None


def test_interface_names_clash_refused(tmp_path):
    store = TunnelStore(tmp_path)
    a = tunnels.Tunnel("a", "plain", "wg0", "[Interface]\n", "k")
    store.save(a)
    with pytest.raises(SetupError, match="already uses interface wg0"):
        store.save(tunnels.Tunnel("b", "plain", "wg0", "[Interface]\n", "k"))


@pytest.mark.parametrize("interface", ["wg0\n", "0wg", "wg-0123456789abc", "wg 0", "wg0/x"])
def test_interface_names_the_helper_would_refuse_are_refused_here(tmp_path, interface):
    """Checked by the helper's own rule, so a tunnel that cannot come up is never saved
    (a trailing newline slipped through the core's old pattern: `$` matches before it)."""
    store = TunnelStore(tmp_path)
    with pytest.raises(SetupError, match="Interface name"):
        store.save(tunnels.Tunnel("a", "plain", interface, "[Interface]\n", "k"))
    assert not store.path.exists()


def test_malformed_tunnels_file_is_kept(tmp_path):
    store = TunnelStore(tmp_path)
    store.path.write_text("{not json")
    with pytest.raises(SetupError, match="fix or remove it"):
        store.list()
    assert store.path.read_text() == "{not json"


@pytest.mark.parametrize(
    ("exit_code", "stderr", "words", "code"),
    [
        (126, "", "dismissed", errors.HELPER_DISMISSED),
        (
            127,
            "Error executing command as another user: No authentication agent found.",
            "agent",
            errors.HELPER_NOT_AUTHORIZED,
        ),
        (
            127,
            "Error executing command as another user: Not authorized",
            "Not authorized",
            errors.HELPER_NOT_AUTHORIZED,
        ),
        (2, "fiotray-helper: line 4: PostUp is not allowed", "PostUp", errors.HELPER_BAD_CONFIG),
        (2, f"fiotray-helper: {fiotray_helper.USAGE}", "usage", errors.HELPER_BAD_CONFIG),
        (3, "fiotray-helper: interface x already exists\n", "already", errors.HELPER_CONFLICT),
        (4, "fiotray-helper: wg-quick not found in /usr/bin", "not found", errors.HELPER_MISSING),
        (5, "fiotray-helper: wg-quick up x failed (exit 1: ...)", "failed", errors.HELPER_FAILED),
        (1, "fiotray-helper: internal error (OSError)", "internal", errors.HELPER_FAILED),
        (9, "", "The helper failed (exit 9).", errors.HELPER_FAILED),
    ],
)
def test_helper_exit_codes_become_sentences_and_codes(exit_code, stderr, words, code):
    error = tunnels._helper_error(exit_code, stderr)
    assert isinstance(error, VpnError)
    assert words in str(error)
    assert not str(error).startswith("fiotray-helper:")
    assert error.code == code


def test_helper_and_client_share_the_exit_codes():
    # One definition: the helper raises with these, the client maps these.
    assert fiotray_helper.EXIT_CONFLICT is helper_exit.EXIT_CONFLICT
    assert tunnels._helper_error(helper_exit.EXIT_CONFLICT, "x").code == errors.HELPER_CONFLICT
    assert tunnels._helper_error(helper_exit.EXIT_USAGE, "x").code == errors.HELPER_BAD_CONFIG
    assert tunnels._helper_error(helper_exit.EXIT_MISSING_TOOL, "x").code == errors.HELPER_MISSING
    assert tunnels._helper_error(helper_exit.EXIT_WG_QUICK, "x").code == errors.HELPER_FAILED


def test_status_json_shape():
    s = tunnels.TunnelStatus("acme", "fioacme", State.CONNECTED, "192.0.2.1:5555", 100.0, 1, 2)
    out = json.loads(json.dumps(s.to_json(now=130.0)))
    assert out["latest_handshake_age"] == 30.0
    # "profile" is the old name of "tunnel": scripts reading `status --json` still find it.
    assert out["tunnel"] == out["profile"] == "acme"


async def test_missing_pkexec_is_named(tmp_path, monkeypatch):
    helper = tmp_path / "fiotray-helper"
    helper.write_text("#!/bin/sh\nexit 0\n")
    monkeypatch.setattr(tunnels.os, "geteuid", lambda: 1000)
    client = HelperClient(helper, pkexec="no-such-pkexec-here")
    with pytest.raises(VpnError, match="install the pkexec package") as info:
        await client.status()
    assert info.value.code == errors.HELPER_MISSING


async def test_missing_helper_says_how_to_install(tmp_path):
    client = HelperClient(tmp_path / "not-installed")
    with pytest.raises(VpnError, match="python -m fiotray.helper.install") as info:
        await client.up("wg0", "[Interface]\n")
    assert info.value.code == errors.HELPER_MISSING


async def test_helper_refusal_line_reaches_the_user(tmp_path):
    helper = tmp_path / "fiotray-helper"
    helper.write_text(
        "#!/bin/sh\necho 'fiotray-helper: line 3: PostUp is not allowed' >&2\nexit 2\n"
    )
    helper.chmod(0o755)
    with pytest.raises(VpnError, match=r"^line 3: PostUp is not allowed$") as info:
        await HelperClient(helper).run("up", "wg0", stdin="x")
    assert info.value.code == errors.HELPER_BAD_CONFIG


async def test_a_second_tunnel_with_the_same_name_never_replaces_the_first(world):
    store, secrets, *_ = world
    first = await add_factory_tunnel(store, secrets)
    key = secrets.get(tunnel_key("acme"))
    with pytest.raises(SetupError, match="already exists"):
        await add_factory_tunnel(store, secrets, address="10.42.42.201")
    assert secrets.get(tunnel_key("acme")) == key
    assert store.get("acme") == first


# -- the default tunnel: tunnels.json only --------------------------------------------


def _version_1(tmp_path, default, legacy):
    """tunnels.json and settings.json as fiotray wrote them before the default moved."""
    entry = {"kind": "plain", "template": "[Interface]\n", "public_key": "K"}
    tunnels_ = {n: {**entry, "interface": f"wg{n}"} for n in ("a", "b")}
    (tmp_path / "tunnels.json").write_text(
        json.dumps({"version": 1, "default": default, "tunnels": tunnels_})
    )
    (tmp_path / "settings.json").write_text(json.dumps({"default_tunnel": legacy}))


def test_the_gui_default_from_old_settings_moves_to_tunnels_json_once(tmp_path):
    _version_1(tmp_path, default="a", legacy="b")
    store = TunnelStore(tmp_path)
    assert store.default_name() == "b"
    assert json.loads(store.path.read_text())["version"] == TunnelStore.VERSION
    store.set_default(None)  # the user's later choice is not undone by the old file
    assert TunnelStore(tmp_path).default_name() is None


def test_an_old_default_naming_no_tunnel_is_ignored(tmp_path):
    _version_1(tmp_path, default="a", legacy="gone")
    assert TunnelStore(tmp_path).default_name() == "a"


def test_set_default_refuses_an_unknown_tunnel(tmp_path):
    store = TunnelStore(tmp_path)
    store.save(tunnels.Tunnel("a", "plain", "wga", "[Interface]\n", "K"))
    store.save(tunnels.Tunnel("b", "plain", "wgb", "[Interface]\n", "K"))
    with pytest.raises(SetupError, match="No tunnel named 'c'"):
        store.set_default("c")
    store.set_default("b")
    assert store.get().name == "b"


def test_settings_keep_an_old_default_tunnel_key_for_the_move(tmp_path):
    (tmp_path / "settings.json").write_text(json.dumps({"default_tunnel": "b", "ssh_user": "x"}))
    store = SettingsStore(tmp_path)
    assert store.load().extra == {"default_tunnel": "b"}
    store.update(lambda s: s.remember("f", "d"))
    assert json.loads(store.path.read_text())["default_tunnel"] == "b"


def test_a_left_click_setting_from_a_file_is_one_of_the_known(tmp_path):
    from fiotray.core.settings import SettingsStore

    path = tmp_path / "settings.json"
    for value, expected in (
        ("window", "window"),
        ("toggle", "toggle"),
        ("rm -rf", "menu"),
        (3, "menu"),
    ):
        path.write_text(json.dumps({"left_click": value}))
        assert SettingsStore(tmp_path).load().left_click == expected


def test_the_reach_wait_from_a_file_is_a_positive_number_of_seconds(tmp_path):
    from fiotray.core.settings import SettingsStore

    path = tmp_path / "settings.json"
    for value, expected in (
        (600, 600.0),
        (5.5, 5.5),
        (10**9, 86400.0),  # a day at most
        (0, 900.0),
        (-3, 900.0),
        (True, 900.0),
        ("600", 900.0),
    ):
        path.write_text(json.dumps({"reach_wait": value}))
        assert SettingsStore(tmp_path).load().reach_wait == expected, value


def test_a_tunnels_file_from_a_newer_or_older_fiotray_still_reads(tmp_path):
    from fiotray.core.tunnels import Tunnel, TunnelStore

    store = TunnelStore(tmp_path)
    store.save(Tunnel("office", "plain", "wg-office", "", "pub"))
    raw = json.loads(store.path.read_text())
    # Off is not written: a fiotray from before "connect when fiotray starts" refused
    # an entry with a key it did not know.
    assert "autoconnect" not in raw["tunnels"]["office"]
    store.set_autoconnect("office", True)
    assert json.loads(store.path.read_text())["tunnels"]["office"]["autoconnect"] is True
    store.set_autoconnect("office", False)
    assert "autoconnect" not in json.loads(store.path.read_text())["tunnels"]["office"]
    # A key from a newer fiotray: read past, and kept when this one saves the tunnel.
    raw = json.loads(store.path.read_text())
    raw["tunnels"]["office"]["from_the_future"] = {"x": 1}
    store.path.write_text(json.dumps(raw))
    (tunnel,) = store.list()
    assert tunnel.name == "office" and tunnel.interface == "wg-office"
    store.save(dataclasses.replace(tunnel, endpoint="vpn.example.com:51820"))
    kept = json.loads(store.path.read_text())["tunnels"]["office"]
    assert kept["from_the_future"] == {"x": 1} and kept["endpoint"] == "vpn.example.com:51820"
