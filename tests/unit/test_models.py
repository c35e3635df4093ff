"""Device records: the compact tuple the device list keeps of each device (models.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fiotray.core.errors import ApiError
from fiotray.core.models import Device, ListedDevice, listed_record, record_of

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
