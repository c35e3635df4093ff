"""fiotray.server.engineers: the engineers' store on the VPN server, and their range."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from fiotray.core import wgconf
from fiotray.core.errors import SetupError
from fiotray.server.engineers import EngineerError, EngineerStore

SERVER = "10.42.42.1"


def key(n: int) -> str:
    return base64.b64encode(bytes([n]) * 32).decode()


@pytest.fixture
def store(tmp_path):
    return EngineerStore(tmp_path / "state" / "engineers.json")


def test_the_engineers_range_is_out_of_fiotls_reach():
    first, last = wgconf.device_window(SERVER)
    # fioctl hands out server+1 .. server+9999 (see core.wgfiles.allocate_address).
    server = int(wgconf.ipaddress.IPv4Address(SERVER))
    assert (first, last) == (server + 1, server + 9999)
    addresses = wgconf.engineer_addresses(SERVER)
    assert addresses[0] == "10.42.127.254" and len(addresses) == 256
    subnet = wgconf.vpn_subnet(SERVER)
    for a in addresses:
        host = int(wgconf.ipaddress.IPv4Address(a))
        assert wgconf.ipaddress.IPv4Address(a) in subnet
        assert host > last and host & 0xFF not in (0, 255)
        assert wgconf.is_engineer_address(a, SERVER)
    assert not wgconf.is_engineer_address("10.42.42.2", SERVER)  # fioctl's first pick
    assert not wgconf.is_engineer_address(str(wgconf.ipaddress.IPv4Address(last)), SERVER)
    assert not wgconf.is_engineer_address(SERVER, SERVER)
    assert not wgconf.is_engineer_address("10.43.0.1", SERVER)  # outside the network
    assert not wgconf.is_engineer_address("not an ip", SERVER)


def test_add_picks_free_addresses_and_keeps_them_root_only(store):
    a = store.add("alice", key(1), server_address=SERVER)
    b = store.add("bob", key(2), server_address=SERVER, devices=[("10.42.127.253", key(9))])
    assert a.address == "10.42.127.254"
    assert b.address == "10.42.127.252"  # .253 is a device's
    assert [e.name for e in store.list()] == ["alice", "bob"]
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.path.parent).st_mode) == 0o700
    assert store.remove("alice").public_key == key(1)
    assert [e.name for e in store.list()] == ["bob"]


@pytest.mark.parametrize(
    ("name", "public_key", "address", "code"),
    [
        ("carol", key(1), "10.42.127.254", "collision"),  # alice's address
        ("carol", key(2), None, "collision"),  # alice's key
        ("carol", key(9), None, "collision"),  # a device's key
        ("carol", key(3), "10.42.42.7", "collision"),  # fioctl could hand it to a device
        ("carol", key(3), "10.42.127.250", "collision"),  # a device holds it
        ("alice", key(3), None, "exists"),
        ("-oProxyCommand", key(3), None, "engineer"),
        ("carol", "not-a-key", None, "engineer"),
    ],
)
def test_collisions_and_bad_input_are_refused_and_nothing_saved(
    store, name, public_key, address, code
):
    store.add("alice", key(2), server_address=SERVER, address="10.42.127.254")
    before = store.path.read_text()
    devices = [("10.42.127.250", key(9))]
    with pytest.raises(EngineerError) as refused:
        store.add(name, public_key, server_address=SERVER, address=address, devices=devices)
    assert refused.value.code == code
    assert store.path.read_text() == before


def test_a_hand_broken_file_is_reported_and_kept(store):
    store.path.parent.mkdir(parents=True)
    store.path.write_text(json.dumps({"engineers": {"x": {"public_key": "nope", "address": ""}}}))
    with pytest.raises(SetupError, match="fix or remove it"):
        store.list()
    with pytest.raises(SetupError):
        store.add("alice", key(1), server_address=SERVER)
    assert "nope" in store.path.read_text()


def test_fioctls_allocator_never_reaches_an_engineer_address():
    """The allocator fiotray shares with fioctl, driven to the end of its window."""
    import ipaddress

    from fiotray.core.wgfiles import allocate_address

    first, last = wgconf.device_window(SERVER)
    used = {str(ipaddress.IPv4Address(h)) for h in range(first, last)}  # all but the last
    picked = allocate_address(SERVER, used)
    assert picked == str(ipaddress.IPv4Address(last))
    assert not wgconf.is_engineer_address(picked, SERVER)


def test_revoking_a_self_service_laptop_refuses_its_key_until_the_admin_adds_it(store):
    from fiotray.server.engineers import Engineer

    asking = Engineer("bob-laptop", key(7), "10.42.127.1", "self")
    gone = store.remove("bob-laptop", requested=[asking])
    assert gone == asking
    assert store.revoked() == {key(7): "bob-laptop"} and store.list() == []
    with pytest.raises(EngineerError, match="No engineer named 'nobody'"):
        store.remove("nobody", requested=[asking])
    # The admin admitting the key by hand lifts the revocation.
    store.add("bob", key(7), server_address=SERVER)
    assert store.revoked() == {}
    assert [e.name for e in store.list()] == ["bob"]
    saved = json.loads(store.path.read_text())
    assert set(saved) == {"version", "engineers", "revoked"}


def test_a_store_from_before_revocations_still_reads(store):
    store.path.parent.mkdir(mode=0o700)
    store.path.write_text(
        json.dumps(
            {"version": 1, "engineers": {"al": {"public_key": key(1), "address": "10.42.127.254"}}}
        )
    )
    assert [e.name for e in store.list()] == ["al"] and store.revoked() == {}
