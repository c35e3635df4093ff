"""core/devices.py against the fake FoundriesFactory API over real HTTP.

Device VPN enable/disable, and the device list (DeviceRows, paging, refresh reuse).

The expected file texts are fioctl's: `WireguardClientConfig.Marshall()` in
fioctl's subcommands/devices/config_wireguard.go writes
"address=<ip>\\npubkey=<key>" and appends "\\nenabled=0" when disabled, with the
reason "Set Wireguard configuration - enable|disable", `unencrypted: true` and
the factory-config-vpn handler.
"""

import gc
import json
import random

import pytest

from fiotray.core import devices
from fiotray.core.api import FactoryClient
from fiotray.core.auth import ApiTokenCredentials
from fiotray.core.devices import DeviceRow, DeviceRows
from fiotray.core.errors import ApiError, FiotrayError, NotFoundError, VpnError
from fiotray.core.models import Device, ListedDevice
from fiotray.demo.fakeapi import ConfigFile, FakeFactory
from tests.unit.test_models import RAW

TOKEN = "test-api-token-0123456789"
KEY = "kZ2Jx0nZ3wWmJ0C6m0sN3w4b2Ff0h3aT1x9Yp8QeWmE="
HANDLER = "/usr/share/fioconfig/handlers/factory-config-vpn"


def fioctl_marshall(address: str, pubkey: str, enabled: bool) -> str:
    # Transcribed from fioctl's Go, kept apart from fiotray's code on purpose.
    buff = "address=" + address + "\npubkey=" + pubkey
    if not enabled:
        buff += "\nenabled=0"
    return buff


@pytest.fixture
def factory() -> FakeFactory:
    f = FakeFactory("acme")
    f.add_api_token(TOKEN)
    f.set_wireguard_server(server_address="10.42.42.1")
    return f


@pytest.fixture
async def api(server):
    async with FactoryClient(server.api_url, "acme", ApiTokenCredentials(TOKEN)) as client:
        yield client


def patches(server) -> list[dict]:
    return [json.loads(r.body) for r in server.requests if r.method == "PATCH"]


def expected_patch(value: str, action: str) -> dict:
    return {
        "reason": f"Set Wireguard configuration - {action}",
        "files": [
            {
                "name": "wireguard-client",
                "value": value,
                "unencrypted": True,
                "on-changed": [HANDLER],
            }
        ],
    }


async def test_enable_keeps_existing_address(factory, server, api):
    factory.add_device("dev1", wg_pubkey=KEY, vpn_address="10.42.42.7", vpn_enabled=False)
    state = await devices.set_vpn(api, "dev1", True)
    assert patches(server) == [expected_patch(fioctl_marshall("10.42.42.7", KEY, True), "enable")]
    assert factory.current_file("dev1", "wireguard-client") == f"address=10.42.42.7\npubkey={KEY}"
    assert (state.enabled, state.address, state.pending) == (True, "10.42.42.7", True)


async def test_enable_allocates_first_gap(factory, server, api):
    for i, ip in enumerate(["10.42.42.2", "10.42.42.3", "10.42.42.5"]):
        factory.add_device(f"other{i}", vpn_address=ip)
    factory.add_device("new", wg_pubkey=KEY)
    state = await devices.set_vpn(api, "new", True)
    assert state.address == "10.42.42.4"
    assert patches(server) == [expected_patch(fioctl_marshall("10.42.42.4", KEY, True), "enable")]


async def test_enable_skips_dot_zero(factory, server, api):
    factory.set_wireguard_server(server_address="10.42.42.254")
    factory.add_device("other", vpn_address="10.42.42.255")
    factory.add_device("new", wg_pubkey=KEY)
    state = await devices.set_vpn(api, "new", True)
    assert state.address == "10.42.43.1"
    assert patches(server)[0]["files"][0]["value"] == fioctl_marshall("10.42.43.1", KEY, True)


async def test_enable_counts_disabled_devices_addresses_as_used(factory, server, api):
    factory.add_device("off", vpn_address="10.42.42.2", vpn_enabled=False)
    factory.add_device("new", wg_pubkey=KEY)
    assert (await devices.set_vpn(api, "new", True)).address == "10.42.42.3"


async def test_enable_without_key_is_refused_and_writes_nothing(factory, server, api):
    factory.add_device("nokey", wg_pubkey=None)
    with pytest.raises(VpnError, match="Device has no public key for VPN"):
        await devices.set_vpn(api, "nokey", True)
    assert patches(server) == []


async def test_disable_keeps_address_and_pubkey(factory, server, api):
    factory.add_device("dev1", wg_pubkey=KEY, vpn_address="10.42.42.9")
    state = await devices.set_vpn(api, "dev1", False)
    assert patches(server) == [expected_patch(fioctl_marshall("10.42.42.9", KEY, False), "disable")]
    assert factory.current_file("dev1", "wireguard-client") == (
        f"address=10.42.42.9\npubkey={KEY}\nenabled=0"
    )
    assert (state.enabled, state.address, state.pubkey) == (False, "10.42.42.9", KEY)


async def test_other_config_files_are_kept(factory, server, api):
    secret = ConfigFile(name="aktualizr-creds", value="ENCRYPTED-BLOB", unencrypted=False)
    plain = ConfigFile(name="app.env", value="A=1", unencrypted=True, on_changed=["/x"])
    factory.add_device("dev1", wg_pubkey=KEY, extra_files=[secret, plain])
    await devices.set_vpn(api, "dev1", True)
    (body,) = patches(server)
    assert [f["name"] for f in body["files"]] == ["wireguard-client"]
    assert factory.current_file("dev1", "aktualizr-creds") == "ENCRYPTED-BLOB"
    assert factory.current_file("dev1", "app.env") == "A=1"
    newest = factory.devices["dev1"].configs[0]
    assert {f.name: f.unencrypted for f in newest.files}["aktualizr-creds"] is False


async def test_no_vpn_server_refused(factory, server, api):
    factory.remove_wireguard_server()
    factory.add_device("dev1", wg_pubkey=KEY)
    with pytest.raises(VpnError, match="WireGuard server has not been configured"):
        await devices.set_vpn(api, "dev1", True)
    assert patches(server) == []


async def test_disabled_vpn_server_refused(factory, server, api):
    factory.set_wireguard_server(enabled=False)
    factory.add_device("dev1", wg_pubkey=KEY)
    with pytest.raises(VpnError, match="is disabled"):
        await devices.set_vpn(api, "dev1", True)
    assert patches(server) == []


async def test_disable_works_without_server(factory, server, api):
    factory.remove_wireguard_server()
    factory.add_device("dev1", wg_pubkey=KEY, vpn_address="10.42.42.2")
    assert (await devices.set_vpn(api, "dev1", False)).enabled is False


async def test_unknown_keys_refused_and_nothing_lost(factory, server, api):
    factory.add_device(
        "dev1",
        wg_pubkey=None,
        extra_files=[ConfigFile("wireguard-client", f"address=10.42.42.3\npubkey={KEY}\nmtu=1280")],
    )
    with pytest.raises(VpnError, match=r"keys fiotray does not know \(mtu\)"):
        await devices.set_vpn(api, "dev1", False)
    assert patches(server) == []
    assert "mtu=1280" in factory.current_file("dev1", "wireguard-client")


@pytest.mark.parametrize("name", ["", "a/b", "-oProxyCommand=x", "a b", "a\nb", "..", "x\x1b[2J"])
async def test_hostile_names_refused_before_any_request(server, api, name):
    with pytest.raises(FiotrayError):
        await devices.set_vpn(api, name, True)
    assert server.requests == []


async def test_missing_device_is_clear(server, api):
    with pytest.raises(NotFoundError, match="No device named 'ghost' in factory acme"):
        await devices.set_vpn(api, "ghost", True)
    assert patches(server) == []


async def test_pending_until_applied(factory, server, api):
    factory.add_device("dev1", wg_pubkey=KEY)
    await devices.set_vpn(api, "dev1", True)
    assert (await devices.device_vpn(api, "dev1")).pending is True
    factory.apply_pending("dev1")
    state = await devices.device_vpn(api, "dev1")
    assert (state.pending, state.enabled, state.address) == (False, True, "10.42.42.2")


async def test_clash_after_write_moves_this_device(factory, server, api, monkeypatch):
    factory.add_device("rival", wg_pubkey=KEY)
    factory.add_device("mine", wg_pubkey=KEY)
    real_patch = api.patch_device_config
    raced = []

    async def patch_then_rival_takes_same_address(name, reason, files):
        await real_patch(name, reason, files)
        if not raced:  # another engineer's fioctl picked the same "first free" address
            raced.append(True)
            factory.add_device("rival2", vpn_address="10.42.42.2")

    monkeypatch.setattr(api, "patch_device_config", patch_then_rival_takes_same_address)
    state = await devices.set_vpn(api, "mine", True, rng=random.Random(1))
    assert raced
    assert state.address != "10.42.42.2"
    ips = factory.wireguard_ips()
    assert sorted(i["ip"] for i in ips) == sorted({i["ip"] for i in ips})  # no duplicates now
    assert len(patches(server)) == 2


async def test_list_rows_vpn_columns_from_one_wireguard_ips_call(factory, server, api, tmp_path):
    factory.add_device("a", vpn_address="10.42.42.2")
    factory.add_device("b", vpn_address="10.42.42.3", vpn_enabled=False)
    factory.add_device("c", wg_pubkey=KEY)
    store = devices.PendingStore(tmp_path / "pending.json")
    await devices.set_vpn(api, "c", True, pending=store)
    server.clear_requests()
    rows = {r.device.name: r for r in await devices.list_rows(api, pending=store)}
    assert (rows["a"].vpn_enabled, rows["a"].vpn_address, rows["a"].vpn_pending) == (
        True,
        "10.42.42.2",
        False,
    )
    assert (rows["b"].vpn_enabled, rows["b"].vpn_address) == (False, "10.42.42.3")
    assert (rows["c"].vpn_enabled, rows["c"].vpn_pending) == (True, True)
    paths = [r.path for r in server.requests]
    assert paths.count("/ota/factories/acme/wireguard-ips/") == 1
    # Only the device with a change in flight is looked at individually.
    assert [p for p in paths if p.endswith("/config/")] == ["/ota/devices/c/config/"]
    factory.apply_pending()
    rows = {r.device.name: r for r in await devices.list_rows(api, pending=store)}
    assert rows["c"].vpn_pending is False
    assert store.names("acme") == []


async def test_failed_enable_leaves_config_as_it_was(factory, server, api):
    factory.add_device("dev1", wg_pubkey=KEY)
    before = [e.to_json() for e in factory.devices["dev1"].configs]
    server.inject("PATCH", r"/config/$", status=500, body={"msg": "database unavailable"})
    with pytest.raises(ApiError, match="500 Internal Server Error: database unavailable"):
        await devices.set_vpn(api, "dev1", True)
    assert [e.to_json() for e in factory.devices["dev1"].configs] == before
    assert [r.method for r in server.requests].count("PATCH") == 1  # not retried blind


# -- the device list: DeviceRows, every page, reuse across a refresh ---------------------


@pytest.fixture
async def paged_api(server):
    # A small page size, so the list takes several pages (and the concurrent path).
    async with FactoryClient(
        server.api_url, "acme", ApiTokenCredentials(TOKEN), page_size=10
    ) as client:
        yield client


def test_device_rows_make_a_row_per_read_and_round_trip():
    rows = [
        DeviceRow(Device.from_json(RAW), True, "10.42.42.2", False),
        DeviceRow(Device.from_json(dict(RAW, name="dev-2", uuid="")), False, "", True),
    ]
    held = DeviceRows.of(rows)
    assert DeviceRows.of(held) is held
    assert len(held) == 2
    gc.collect()  # untracks the rows; the tuple of them, seen before they were, ...
    gc.collect()  # ... at the next collection
    # What the list keeps costs the garbage collector nothing once it has seen it.
    assert not gc.is_tracked(held.records)
    assert not any(gc.is_tracked(r) for r in held.records)
    first = held[0]
    assert isinstance(first.device, ListedDevice)
    assert (first.device.name, first.vpn_enabled, first.vpn_address) == (
        "dev-1",
        True,
        "10.42.42.2",
    )
    assert [r.device.name for r in held] == ["dev-1", "dev-2"]
    assert [r.vpn_pending for r in held[1:]] == [True]
    assert [r.to_json() for r in held] == [r.to_json() for r in rows]
    assert held[1].matches("DEV-2") and not held[1].matches("10.42")


async def test_list_rows_takes_every_page_once_with_vpn_columns(factory, paged_api):
    for i in range(35):
        factory.add_device(f"dev-{i:02d}", vpn_address=f"10.42.42.{10 + i}", vpn_enabled=i % 2 == 0)
    factory.add_device("no-vpn", wg_pubkey=None)
    rows = await devices.list_rows(paged_api)
    assert isinstance(rows, DeviceRows)
    by_name = {r.device.name: r for r in rows}
    assert len(rows) == len(by_name) == 36
    assert (by_name["dev-00"].vpn_enabled, by_name["dev-00"].vpn_address) == (True, "10.42.42.10")
    assert (by_name["dev-01"].vpn_enabled, by_name["dev-01"].vpn_address) == (False, "10.42.42.11")
    assert (by_name["no-vpn"].vpn_enabled, by_name["no-vpn"].vpn_address) == (False, "")
    assert gc.isenabled()  # the parser's pause of the collector ended


async def test_a_refresh_reuses_the_rows_that_did_not_change(factory, paged_api):
    for i in range(25):
        factory.add_device(f"dev-{i:02d}", vpn_address=f"10.42.42.{10 + i}")
    first = await devices.list_rows(paged_api)
    factory.devices["dev-03"].tag = "devel"
    again = await devices.list_rows(paged_api, previous=first)
    assert len(again) == 25
    changed = [
        i for i, (a, b) in enumerate(zip(first.records, again.records, strict=True)) if a is not b
    ]
    assert changed == [3]
    assert again[3].device.tag == "devel"
    assert again.records[4][0] is first.records[4][0]  # the strings, too


async def test_malformed_page_fails_the_whole_list(server, factory, paged_api):
    for i in range(15):
        factory.add_device(f"dev-{i:02d}")
    server.inject(
        "GET", r"/ota/devices/$", status=200, body={"devices": [{"uuid": "no-name"}], "total": 1}
    )
    with pytest.raises(ApiError, match="device without a name"):
        await devices.list_rows(paged_api)
    assert gc.isenabled()


async def test_malformed_wireguard_ips_reply(server, factory, paged_api):
    factory.add_device("dev-1")
    server.inject("GET", r"/wireguard-ips/$", status=200, body={"not": "a list"})
    with pytest.raises(ApiError, match="malformed wireguard-ips reply"):
        await devices.list_rows(paged_api)
