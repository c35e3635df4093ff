"""The pure parts of bench/server.py: the figures it prints rest on them."""

from __future__ import annotations

import base64
from ipaddress import IPv4Address

import pytest

from bench.server import Gap, device_addresses, longest_gap, parse_uapi


def test_device_addresses_follow_fioctl_skipping_the_ones_ending_in_zero() -> None:
    addresses = device_addresses("10.42.42.1", 260)
    assert addresses[:2] == ["10.42.42.2", "10.42.42.3"]
    assert "10.42.42.255" in addresses  # only .0 is skipped, as fioctl does
    assert "10.42.43.0" not in addresses
    assert addresses[254] == "10.42.43.1"
    assert len(set(addresses)) == 260


def test_device_addresses_of_10000_devices_reach_past_the_server_plus_9999() -> None:
    addresses = device_addresses("10.42.42.1", 10_000)
    # 39 addresses ending in .0 are skipped on the way (10.42.43.0 to 10.42.81.0) ...
    assert addresses[-1] == "10.42.81.56"
    # ... so fioctl's window (server + 9999 = 10.42.81.16) holds 9,960 of them.
    window_end = IPv4Address("10.42.81.16")
    assert sum(IPv4Address(a) > window_end for a in addresses) == 40


def test_the_longest_gap_counts_one_under_way_at_the_start_whole() -> None:
    replies = [0.0, 0.2, 0.4, 5.4, 5.6]
    assert longest_gap(replies, 1.0, 6.0) == Gap(pytest.approx(5.0), False)


def test_a_steady_pinger_has_gaps_of_its_interval() -> None:
    replies = [i * 0.2 for i in range(50)]
    gap = longest_gap(replies, 1.0, 9.85)
    assert gap.seconds == pytest.approx(0.2) and not gap.open


def test_no_reply_since_is_an_open_gap_up_to_the_end_of_the_window() -> None:
    replies = [0.0, 0.2, 0.4]
    assert longest_gap(replies, 1.0, 20.0) == Gap(pytest.approx(19.6), True)
    # With no reply at all, the gap runs from the window's start.
    assert longest_gap([], 1.0, 4.0) == Gap(pytest.approx(3.0), True)


def test_parse_uapi_reads_keys_addresses_and_handshakes() -> None:
    key = bytes(range(32))
    text = (
        "private_key=" + "11" * 32 + "\nlisten_port=5555\n"
        f"public_key={key.hex()}\nendpoint=192.0.2.11:5555\n"
        "last_handshake_time_sec=1700000000\nlast_handshake_time_nsec=5\n"
        "allowed_ip=10.42.42.5/32\n"
        f"public_key={'ab' * 32}\nlast_handshake_time_sec=0\n"
        "errno=0\n\n"
    )
    peers = parse_uapi(text)
    assert peers is not None
    first = peers[base64.b64encode(key).decode()]
    assert first.allowed_ips == ("10.42.42.5/32",) and first.handshake == 1700000000
    second = peers[base64.b64encode(bytes.fromhex("ab" * 32)).decode()]
    assert second.allowed_ips == () and second.handshake == 0


def test_parse_uapi_refuses_an_unfinished_answer() -> None:
    assert parse_uapi("private_key=00\nlisten_port=1\n") is None
