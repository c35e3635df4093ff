"""fiotray.ops.devices over the demo services: the list, enable/disable, which actions apply."""

from __future__ import annotations

import pytest

from fiotray.core.devices import DeviceRow
from fiotray.core.errors import FiotrayError
from fiotray.core.models import ListedDevice
from fiotray.core.tunnelstate import State
from fiotray.ops import devices

FACTORY = "demo-factory"


def _row(*, enabled: bool, address: str = "", pending: bool = False) -> DeviceRow:
    device = ListedDevice("d", "uuid", "owner", None, None, "target", "", "main", False)
    return DeviceRow(device, enabled, address, pending)


async def test_list_search_and_set_vpn(services):
    rows = await devices.list_devices(services)
    assert {"on-vpn", "off-vpn"} <= {r.device.name for r in rows}
    assert [r.device.name for r in await devices.list_devices(services, search="off-vp")] == [
        "off-vpn"
    ]
    state = await devices.set_vpn(services, FACTORY, "off-vpn", True)
    assert state.enabled and state.pending and state.address
    assert services.pending().names(FACTORY) == ["off-vpn"]
    services.demo.server.factory.apply_pending("off-vpn")
    applied = await devices.applied(services, FACTORY, "off-vpn")
    assert applied.enabled and not applied.pending
    assert services.pending().names(FACTORY) == []


async def test_hostile_device_name_never_reaches_the_api(services):
    before = len(services.demo.server.requests)
    with pytest.raises(FiotrayError):
        await devices.set_vpn(services, FACTORY, "-oProxyCommand=x", True)
    assert len(services.demo.server.requests) == before


def test_the_web_app_comes_from_the_sign_in_or_is_not_offered(tmp_path):
    from fiotray.core.factories import Factory, FactoryStore
    from fiotray.core.secrets import MemorySecretStore
    from fiotray.core.services import Services
    from fiotray.core.settings import SettingsStore
    from fiotray.core.tunnels import TunnelController, TunnelStore

    factories, tunnels, secrets = FactoryStore(tmp_path), TunnelStore(tmp_path), MemorySecretStore()
    services = Services(
        factories, tunnels, SettingsStore(tmp_path), secrets, TunnelController(tunnels, secrets)
    )
    factories.save(Factory(factory="f", auth="token"))  # app.foundries.io, the default
    factories.save(
        Factory(factory="own", auth="token", oauth_url="https://app.example.com:8443/oauth")
    )
    factories.save(Factory(factory="odd", auth="token", oauth_url="https://sso.example.com/oauth"))
    assert devices.web_url(services, "f", "a b/c") == (
        "https://app.foundries.io/factories/f/devices/a%20b%2Fc/"
    )
    assert devices.web_url(services, "own", "d") == (
        "https://app.example.com:8443/factories/own/devices/d/"
    )
    assert devices.web_url(services, "odd", "d") is None  # cannot be known
    assert devices.web_url(services, "nope", "d") is None


async def test_the_demo_has_no_web_app(services):
    assert devices.web_url(services, FACTORY, "on-vpn") is None


@pytest.mark.parametrize(
    ("row", "tunnel", "state", "route", "no_key", "expect"),
    [
        # SSH needs the device on the VPN, and (but for the public route) the tunnel up.
        (
            dict(enabled=True, address="10.0.0.2"),
            True,
            State.CONNECTED,
            "jump",
            False,
            dict(ssh=None, enable_vpn="already enabled", disable_vpn=None),
        ),
        (
            dict(enabled=True, address="10.0.0.2"),
            True,
            State.DISCONNECTED,
            "jump",
            False,
            dict(ssh="connect the tunnel first"),
        ),
        (
            dict(enabled=True, address="10.0.0.2"),
            True,
            None,
            "direct",
            False,
            dict(ssh="connect the tunnel first"),
        ),
        (
            dict(enabled=True, address="10.0.0.2"),
            False,
            None,
            "jump",
            False,
            dict(ssh="no VPN tunnel for this factory"),
        ),
        (dict(enabled=True, address="10.0.0.2"), False, None, "public", False, dict(ssh=None)),
        (
            dict(enabled=False, address="10.0.0.2"),
            True,
            State.CONNECTED,
            "jump",
            False,
            dict(
                ssh="VPN is off for this device",
                copy_ssh="VPN is off for this device",
                copy_address=None,
                enable_vpn=None,
                disable_vpn="already disabled",
            ),
        ),
        (
            dict(enabled=False),
            True,
            State.CONNECTED,
            "jump",
            False,
            dict(copy_address="no VPN address", disable_vpn="VPN never enabled"),
        ),
        (
            dict(enabled=True, address="10.0.0.2", pending=True),
            True,
            State.CONNECTED,
            "jump",
            False,
            dict(enable_vpn="already enabled, not applied yet"),
        ),
        (
            dict(enabled=False, address="10.0.0.2", pending=True),
            True,
            None,
            "jump",
            False,
            dict(disable_vpn="already disabled, not applied yet"),
        ),
        (
            dict(enabled=False),
            True,
            None,
            "jump",
            True,
            dict(enable_vpn="no WireGuard key yet", disable_vpn="no WireGuard key yet"),
        ),
    ],
)
def test_which_actions_apply_and_why_not(row, tunnel, state, route, no_key, expect):
    can = devices.actions(
        _row(**row), has_tunnel=tunnel, tunnel_state=state, route=route, no_key=no_key
    )
    for action, reason in expect.items():
        got = getattr(can, action)
        assert got.reason == reason, action
        assert got.ok is (reason is None)


# -- bulk, selectors, favourites -------------------------------------------------------


def _lab(services, count: int = 8) -> list[str]:
    """`count` devices in group lab with a key and no VPN yet, and one without a key."""
    fake = services.demo.server.factory
    names = [f"lab-{i:02d}" for i in range(count)]
    for name in names:
        fake.add_device(name, vpn_enabled=False, group="lab", tag="devel")
    fake.add_device("lab-nokey", wg_pubkey=None, vpn_enabled=False, group="lab", tag="devel")
    return names


def _address(fake, name: str) -> str:
    text = fake.current_file(name, "wireguard-client") or ""
    found = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith("address=")]
    return found[0] if found else ""


async def test_bulk_enable_gives_each_device_its_own_address(services):
    fake = services.demo.server.factory
    names = _lab(services)
    taken = {ip.ip for ip in await (await services.client()).wireguard_ips()}
    services.demo.server.requests.clear()
    results = await devices.set_vpn_many(services, FACTORY, [*names, "lab-nokey"], True)
    assert [r.device for r in results] == [*names, "lab-nokey"]
    assert all(r.ok for r in results[:-1])
    assert not results[-1].ok and results[-1].code == "no-public-key"
    addresses = [_address(fake, n) for n in names]
    assert len(set(addresses)) == len(names), addresses  # distinct within the batch
    assert not set(addresses) & taken  # and from every address held before
    assert [r.state.address for r in results[:-1]] == addresses
    # One read of the list for the whole batch's allocation (plus each device's clash check).
    ips_reads = [r for r in services.demo.server.requests if r.path.endswith("/wireguard-ips/")]
    assert len(ips_reads) == 1 + len(names)
    assert set(services.pending().names(FACTORY)) >= set(names)
    summary = devices.bulk_summary(results, True, skipped=2)
    assert summary.startswith("Enabled VPN on 8 of 9 devices; lab-nokey: Device has no public")
    assert summary.endswith("; 2 skipped")


async def test_bulk_concurrency_is_bounded(services, monkeypatch):
    from fiotray.core import devices as core_devices

    names = _lab(services, 10)
    real = core_devices.set_vpn
    running = peak = 0

    async def counted(*args, **kwargs):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            return await real(*args, **kwargs)
        finally:
            running -= 1

    monkeypatch.setattr(core_devices, "set_vpn", counted)
    results = await devices.set_vpn_many(services, FACTORY, names, True, concurrency=3)
    assert all(r.ok for r in results)
    assert peak == 3  # several at once, never more than the bound


async def test_bulk_clash_way_out_avoids_the_batch(services, monkeypatch):
    """A clash found after writing moves the device, never onto an address the batch
    handed (or will hand) to another of its devices: each of those is written once."""
    import json

    from fiotray.core import devices as core_devices

    fake = services.demo.server.factory
    names = _lab(services, 2)
    real_set_vpn = core_devices.set_vpn

    class First:  # the clash's way out takes its first candidate: the next free address
        def choice(self, seq):
            return seq[0]

    async def racing(api, name, enable, **kw):
        batch_allocate = kw["allocate"]

        async def allocate(server_address):
            address = await batch_allocate(server_address)
            if name == "lab-00":  # someone else takes it the moment it is handed out
                fake.add_device("intruder", vpn_address=address)
            return address

        return await real_set_vpn(api, name, enable, rng=First(), **{**kw, "allocate": allocate})

    monkeypatch.setattr(core_devices, "set_vpn", racing)
    services.demo.server.requests.clear()
    results = await devices.set_vpn_many(services, FACTORY, names, True, concurrency=1)
    assert all(r.ok for r in results)
    addresses = {n: _address(fake, n) for n in [*names, "intruder"]}
    assert len(set(addresses.values())) == 3, addresses
    writes = [
        r.path for r in services.demo.server.requests if r.method == "PATCH" and json.loads(r.body)
    ]
    assert sum("lab-00" in p for p in writes) == 2  # written, then moved off the clash
    assert sum("lab-01" in p for p in writes) == 1  # never handed lab-00's way out


async def test_plan_skips_with_reasons_and_selectors_combine(services):
    _lab(services, 3)
    fake = services.demo.server.factory
    fake.add_device("lab-on", vpn_address="10.42.42.200", group="lab", tag="devel")
    fake.add_device("qa-1", vpn_enabled=False, group="qa", tag="devel")
    rows = await devices.list_devices(services)
    where = devices.Selector(group="lab", tag="devel")
    plan = devices.plan_vpn(rows, True, where=where)
    assert plan.change == ("lab-00", "lab-01", "lab-02", "lab-nokey")
    assert plan.skipped == (("lab-on", "already enabled"),)
    # Names and selectors: of the named devices, those selected.
    plan = devices.plan_vpn(rows, True, names=["qa-1", "lab-00", "ghost"], where=where)
    assert plan.change == ("lab-00",)
    assert plan.skipped == (("qa-1", "does not match tag=devel group=lab"),)
    assert plan.missing == ("ghost",)
    plan = devices.plan_vpn(rows, False, where=devices.Selector(group="l?b"))
    assert plan.change == ("lab-on",)
    assert {r for _, r in plan.skipped} == {"VPN never enabled"}
    assert devices.plan_vpn(rows, True, names=["lab-00"], no_key=["lab-00"]).skipped == (
        ("lab-00", "no WireGuard key yet"),
    )


async def test_list_filters_combine(services):
    fake = services.demo.server.factory
    fake.add_device("qa-on", vpn_address="10.42.42.201", group="squad", target="t-1")
    fake.add_device("qa-off", vpn_enabled=False, group="squad", online=False, target="t-1")
    fake.add_device("lab-on", vpn_address="10.42.42.202", group="lab")

    async def names(**kw):
        return sorted(r.device.name for r in await devices.list_devices(services, **kw))

    assert await names(where=devices.Selector(group="squad")) == ["qa-off", "qa-on"]
    assert await names(where=devices.Selector(group="squad", vpn="enabled")) == ["qa-on"]
    assert await names(where=devices.Selector(group="squad", online=False)) == ["qa-off"]
    assert await names(where=devices.Selector(target="t-*", vpn="disabled")) == ["qa-off"]
    # Search terms combine: every word somewhere in the row.
    assert await names(search="squad 10.42.42.201") == ["qa-on"]
    with pytest.raises(FiotrayError, match="--vpn takes"):
        devices.Selector(vpn="on")


def test_favourites_add_remove_list(tmp_path):
    from fiotray.core.settings import SettingsStore

    class S:  # only the settings store is used
        settings = SettingsStore(tmp_path)

    services = S()
    assert devices.set_favourite(services, "f", "a", True)
    assert devices.set_favourite(services, "g", "b", True)
    assert not devices.set_favourite(services, "f", "a", True)  # already: no change
    assert devices.favourites(services) == [("f", "a"), ("g", "b")]
    assert devices.favourites(services, "g") == [("g", "b")]
    assert devices.set_favourite(services, "f", "a", False)
    assert not devices.set_favourite(services, "f", "a", False)
    assert SettingsStore(tmp_path).load().favourites == (("g", "b"),)
    with pytest.raises(FiotrayError):
        devices.set_favourite(services, "f", "-oProxyCommand=x", True)


async def test_add_favourite_checks_the_device_exists(services):
    with pytest.raises(FiotrayError, match="ghost"):
        await devices.add_favourite(services, None, "ghost")
    assert await devices.add_favourite(services, None, "on-vpn") == (FACTORY, True)
    assert devices.favourites(services) == [(FACTORY, "on-vpn")]


async def test_bulk_enable_without_a_vpn_server_fails_once(services):
    from fiotray.core.errors import VpnError

    names = _lab(services, 3)
    services.demo.server.factory.set_wireguard_server(enabled=False)
    services.demo.server.requests.clear()
    with pytest.raises(VpnError, match="disabled"):
        await devices.set_vpn_many(services, FACTORY, names, True)
    assert [r for r in services.demo.server.requests if r.method == "PATCH"] == []
    # Disabling needs no server: it goes ahead.
    assert await devices.set_vpn_many(services, FACTORY, [], False) == []
