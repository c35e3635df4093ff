"""fiotray.wg.dump: `wg show IFNAME dump` without its secrets."""

from __future__ import annotations

import pytest

from fiotray.wg.dump import parse_wg_dump
from tests.unit.wgsamples import PRIV, PSK, PUB1, PUB2, key


def test_wg_dump_drops_private_and_preshared_keys() -> None:
    dump = (
        f"{PRIV}\t{PUB2}\t51820\toff\n"
        f"{PUB1}\t{PSK}\t192.0.2.1:5555\t10.42.0.0/16,fd00::/64\t1700000000\t10\t20\t25\n"
        f"{key(7)}\t(none)\t(none)\t(none)\t0\t0\t0\toff\n"
    )
    parsed = parse_wg_dump(dump)
    assert parsed == {
        "public_key": PUB2,
        "listen_port": 51820,
        "peers": [
            {
                "public_key": PUB1,
                "endpoint": "192.0.2.1:5555",
                "allowed_ips": ["10.42.0.0/16", "fd00::/64"],
                "latest_handshake": 1700000000,
                "rx_bytes": 10,
                "tx_bytes": 20,
                "persistent_keepalive": 25,
            },
            {
                "public_key": key(7),
                "endpoint": None,
                "allowed_ips": [],
                "latest_handshake": 0,
                "rx_bytes": 0,
                "tx_bytes": 0,
                "persistent_keepalive": 0,
            },
        ],
    }
    assert PRIV not in repr(parsed) and PSK not in repr(parsed)
    for bad in ("", f"{PRIV}\t{PUB2}\n", f"{PRIV}\t{PUB2}\t1\toff\n{PUB1}\tx\n"):
        with pytest.raises(ValueError) as info:
            parse_wg_dump(bad)
        assert PRIV not in str(info.value)
