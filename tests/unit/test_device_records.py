"""The device list's compact form: records, DeviceRows, and reuse across a refresh."""

from __future__ import annotations

import gc
from datetime import UTC, datetime

import pytest

from fiotray.core import devices
from fiotray.core.api import FactoryClient
from fiotray.core.auth import ApiTokenCredentials
from fiotray.core.devices import DeviceRow, DeviceRows
from fiotray.core.errors import ApiError
from fiotray.core.models import Device, ListedDevice, listed_record, record_of
from fiotray.demo.fakeapi import FakeFactory

TOKEN = "test-api-token-0123456789"

RAW = {
    "name": "dev-1",
    "uuid": "0b4ea5c8-1111-2222-3333-444455556666",
    "owner": "u-1",
    "factory": "acme",
    "device-group": "lab",
    "last-seen": "2024-05-06T07:08:09.123456789Z",
    "target-name": "main-lmp-50",
    "status": "OK",
    "tag": "main",
    "is-prod": True,
    "public-key": "-----BEGIN PUBLIC KEY-----\n...",
    "network-info": {"hostname": "dev-1", "local_ipv4": "192.168.1.2", "mac": "x"},
}


@pytest.fixture
def factory() -> FakeFactory:
    f = FakeFactory("acme")
    f.add_api_token(TOKEN)
    f.set_wireguard_server(server_address="10.42.42.1")
    return f


@pytest.fixture
async def api(server):
    # A small page size, so the list takes several pages (and the concurrent path).
    creds = ApiTokenCredentials(TOKEN)
    async with FactoryClient(server.api_url, "acme", creds, page_size=10) as client:
        yield client


def test_record_keeps_what_the_list_shows_as_device_from_json_reads_it():
    device = Device.from_json(RAW)
    listed = ListedDevice(*listed_record(RAW))
    for field in ("name", "uuid", "owner", "group", "last_seen", "target", "status", "tag"):
        assert getattr(listed, field) == getattr(device, field), field
    assert listed.is_prod is True
    assert listed.last_seen == datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    assert listed_record(RAW) == record_of(device) == record_of(listed)
    now = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
    assert listed.online(now) is device.online(now) is True


def test_record_of_a_sparse_entry():
    record = listed_record({"name": "bare", "device-group": "", "last-seen": ""})
    assert record == ("bare", "", "", None, None, "", "", "", False)
    assert ListedDevice(*record).last_seen is None
    assert ListedDevice(*record).online() is False


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"uuid": "x"}, "device without a name"),
        ({"name": ""}, "device without a name"),
        ({"name": 7}, "device without a name"),
        (["dev-1"], "malformed device entry"),
    ],
)
def test_malformed_entry_is_a_clear_api_error(raw, message):
    with pytest.raises(ApiError, match=message):
        listed_record(raw)


def test_repeated_values_share_one_string():
    a = listed_record(dict(RAW, **{"target-name": "".join(["main-", "lmp-50"])}))
    b = listed_record(dict(RAW, **{"target-name": "".join(["main-", "lmp-50"])}))
    assert a[5] is b[5]


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


async def test_list_rows_takes_every_page_once_with_vpn_columns(factory, api):
    for i in range(35):
        factory.add_device(f"dev-{i:02d}", vpn_address=f"10.42.42.{10 + i}", vpn_enabled=i % 2 == 0)
    factory.add_device("no-vpn", wg_pubkey=None)
    rows = await devices.list_rows(api)
    assert isinstance(rows, DeviceRows)
    by_name = {r.device.name: r for r in rows}
    assert len(rows) == len(by_name) == 36
    assert (by_name["dev-00"].vpn_enabled, by_name["dev-00"].vpn_address) == (True, "10.42.42.10")
    assert (by_name["dev-01"].vpn_enabled, by_name["dev-01"].vpn_address) == (False, "10.42.42.11")
    assert (by_name["no-vpn"].vpn_enabled, by_name["no-vpn"].vpn_address) == (False, "")
    assert gc.isenabled()  # the parser's pause of the collector ended


async def test_a_refresh_reuses_the_rows_that_did_not_change(factory, api):
    for i in range(25):
        factory.add_device(f"dev-{i:02d}", vpn_address=f"10.42.42.{10 + i}")
    first = await devices.list_rows(api)
    factory.devices["dev-03"].tag = "devel"
    again = await devices.list_rows(api, previous=first)
    assert len(again) == 25
    changed = [
        i for i, (a, b) in enumerate(zip(first.records, again.records, strict=True)) if a is not b
    ]
    assert changed == [3]
    assert again[3].device.tag == "devel"
    assert again.records[4][0] is first.records[4][0]  # the strings, too


async def test_malformed_page_fails_the_whole_list(server, factory, api):
    for i in range(15):
        factory.add_device(f"dev-{i:02d}")
    server.inject(
        "GET", r"/ota/devices/$", status=200, body={"devices": [{"uuid": "no-name"}], "total": 1}
    )
    with pytest.raises(ApiError, match="device without a name"):
        await devices.list_rows(api)
    assert gc.isenabled()


async def test_malformed_wireguard_ips_reply(server, factory, api):
    factory.add_device("dev-1")
    server.inject("GET", r"/wireguard-ips/$", status=200, body={"not": "a list"})
    with pytest.raises(ApiError, match="malformed wireguard-ips reply"):
        await devices.list_rows(api)
