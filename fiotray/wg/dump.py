"""`wg show IFNAME dump` as data, without the secrets it prints."""

from __future__ import annotations

from fiotray.wg.config import ConfigError, check_endpoint, check_network, is_digits, is_key_shape


def _dump_key(value: str) -> str | None:
    return value if is_key_shape(value) else None


def _dump_int(value: str) -> int:
    if not is_digits(value, 20):
        raise ValueError("not a number")
    return int(value)


def parse_wg_dump(text: str) -> dict[str, object]:
    """`wg show IFNAME dump` without its secrets: the private and preshared keys are dropped.

    Raises ValueError (whose message never contains input) on anything unexpected.
    """
    lines = [line for line in text.split("\n") if line]
    if not lines:
        raise ValueError("empty dump")
    head = lines[0].split("\t")
    if len(head) != 4:
        raise ValueError("unexpected interface line")
    port = 0 if head[2] == "off" else _dump_int(head[2])
    peers: list[dict[str, object]] = []
    for line in lines[1:]:
        f = line.split("\t")
        if len(f) != 8:
            raise ValueError("unexpected peer line")
        endpoint: str | None = None
        if f[2] != "(none)":
            try:
                endpoint = check_endpoint(f[2], 0)
            except ConfigError:
                endpoint = None
        try:
            allowed = [] if f[3] == "(none)" else [check_network(a, 0) for a in f[3].split(",")]
        except ConfigError:
            raise ValueError("unexpected allowed-ips") from None
        peers.append(
            {
                "public_key": _dump_key(f[0]),
                "endpoint": endpoint,
                "allowed_ips": allowed,
                "latest_handshake": _dump_int(f[4]),
                "rx_bytes": _dump_int(f[5]),
                "tx_bytes": _dump_int(f[6]),
                "persistent_keepalive": 0 if f[7] == "off" else _dump_int(f[7]),
            }
        )
    return {"public_key": _dump_key(head[1]), "listen_port": port, "peers": peers}
