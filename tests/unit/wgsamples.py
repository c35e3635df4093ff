"""Sample WireGuard configs and keys shared by the tests of fiotray.wg and the helper."""

from __future__ import annotations

import base64


def key(n: int) -> str:
    """A well-formed key (32 bytes of base64); the parser does not need a real curve point."""
    return base64.b64encode(bytes([n]) * 31 + bytes([n ^ 0x5A])).decode()


PRIV = key(1)
PUB1 = key(2)
PUB2 = key(3)
PSK = key(4)

VALID = f"""\
[Interface]
PrivateKey = {PRIV}
Address = 10.42.42.7/32
[Peer]
PublicKey = {PUB1}
Endpoint = vpn.example.test:5555
AllowedIPs = 10.42.0.0/16
PersistentKeepalive = 25
"""

CANONICAL_VALID = f"""\
[Interface]
PrivateKey = {PRIV}
Address = 10.42.42.7/32

[Peer]
PublicKey = {PUB1}
Endpoint = vpn.example.test:5555
AllowedIPs = 10.42.0.0/16
PersistentKeepalive = 25
"""


def cfg(interface_extra: str = "", peer_extra: str = "", *, before: str = "") -> str:
    return (
        f"{before}[Interface]\nPrivateKey = {PRIV}\nAddress = 10.0.0.2/24\n{interface_extra}"
        f"[Peer]\nPublicKey = {PUB1}\nAllowedIPs = 10.0.0.0/24\n{peer_extra}"
    )
