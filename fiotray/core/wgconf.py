"""WireGuard configs on the user's side: keys, Foundries client configs, imported .conf files.

Parsing and validation are fiotray.wg.config, the code the privileged helper runs (one
parser in the project, the strict one); this module adds what only the unprivileged side
does: making keys, building a Foundries client config from the factory's
`wireguard-server` file, and splitting an imported config into its private key
(for the keyring) and the rest (a non-secret template).
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass

from fiotray.core.errors import FiotrayError, VpnError
from fiotray.core.wgfiles import ALLOCATION_WINDOW, WireguardServer
from fiotray.wg import config as wgconfig

# What the device handler sets for its server peer, and what keeps a laptop behind NAT reachable.
KEEPALIVE = 25
MAX_CONF_BYTES = wgconfig.MAX_INPUT


class ConfigRefused(FiotrayError):
    """A WireGuard config fiotray will not use (hooks, unknown keys, bad values)."""


# cryptography (~8 MiB resident with OpenSSL) is imported by the two functions that use
# it: parsing and rendering configs, which the tray and the demo do, need none of it.


def generate_private_key() -> str:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    key = X25519PrivateKey.generate()
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(raw).decode()


def public_key(private_key: str) -> str:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = base64.b64decode(private_key, validate=True)
    key = X25519PrivateKey.from_private_bytes(raw)
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def vpn_subnet(server_address: str) -> ipaddress.IPv4Network:
    """The smallest network holding the server and every address fioctl can hand out.

    fioctl allocates device addresses from server+1 up to server+9999, so the
    laptop must route that whole span into the tunnel.
    """
    first = ipaddress.IPv4Address(server_address)
    last = ipaddress.IPv4Address(min(int(first) + ALLOCATION_WINDOW - 1, 2**32 - 1))
    prefix = 32
    while True:
        net = ipaddress.IPv4Network(f"{first}/{prefix}", strict=False)
        if last in net:
            return net
        prefix -= 1


def device_window(server_address: str) -> tuple[int, int]:
    """First and last address (as integers) fioctl's allocator can hand to a device."""
    first = int(ipaddress.IPv4Address(server_address)) + 1
    return first, min(first + ALLOCATION_WINDOW - 2, 2**32 - 1)


def is_engineer_address(address: str, server_address: str) -> bool:
    """In the VPN network, a usable host address, and out of fioctl's reach: an engineer's
    laptop there can never be handed to a device (WireGuard would route it to whoever
    claimed it last)."""
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        return False
    subnet = vpn_subnet(server_address)
    first, last = device_window(server_address)
    host = int(ip)
    return (
        ip in subnet
        and ip not in (subnet.network_address, subnet.broadcast_address)
        and host & 0xFF not in (0, 255)
        and not first - 1 <= host <= last
    )


def engineer_addresses(server_address: str) -> list[str]:
    """Addresses for engineers' laptops, from the top of the VPN network down: above
    every address fioctl can allocate, so a device never gets one (at most 256 listed)."""
    subnet = vpn_subnet(server_address)
    _first, last = device_window(server_address)
    out = []
    host = int(subnet.broadcast_address) - 1
    while host > last and len(out) < 256:
        if host & 0xFF not in (0, 255):
            out.append(str(ipaddress.IPv4Address(host)))
        host -= 1
    return out


def check_laptop_address(address: str, server: WireguardServer, used: set[str]) -> str:
    """A laptop VPN address must be inside the VPN subnet and not anybody else's."""
    try:
        ip = ipaddress.IPv4Address(address.strip())
    except ValueError:
        raise VpnError(f"{address[:40]!r} is not an IPv4 address.") from None
    subnet = vpn_subnet(server.server_address)
    if ip not in subnet:
        raise VpnError(f"{ip} is outside the factory's VPN network {subnet}.")
    if str(ip) == server.server_address:
        raise VpnError(f"{ip} is the VPN server's own address.")
    if str(ip) in used:
        raise VpnError(f"{ip} already belongs to a device of the factory; pick another.")
    if ip in (subnet.network_address, subnet.broadcast_address) or int(ip) & 0xFF == 0:
        raise VpnError(f"{ip} cannot be used as a host address.")
    return str(ip)


# Only ever used to validate a template (never a key anyone uses): well-formed is enough.
_CHECK_KEY = base64.b64encode(bytes(range(1, 33))).decode()


def foundries_template(server: WireguardServer, address: str) -> str:
    """Client config without its PrivateKey line (that comes from the keyring at connect)."""
    if not server.endpoint or not server.pubkey:
        raise VpnError("The factory's wireguard-server file has no endpoint or public key.")
    text = "\n".join(
        [
            "[Interface]",
            f"Address = {address}/32",
            "",
            "[Peer]",
            f"PublicKey = {server.pubkey}",
            f"Endpoint = {server.endpoint}",
            f"AllowedIPs = {vpn_subnet(server.server_address)}",
            f"PersistentKeepalive = {KEEPALIVE}",
            "",
        ]
    )
    # Validate now, with a dummy key: a bad server file fails on adding the tunnel, not on connect.
    with_key(text, _CHECK_KEY)
    return text


def with_key(template: str, private_key: str) -> str:
    """The full config for the helper: the template plus the PrivateKey, validated."""
    lines = template.splitlines()
    try:
        at = next(i for i, line in enumerate(lines) if line.strip().lower() == "[interface]")
    except StopIteration:
        raise ConfigRefused("The tunnel's config has no [Interface] section.") from None
    lines.insert(at + 1, f"PrivateKey = {private_key}")
    text = "\n".join(lines) + "\n"
    parse(text)
    return text


def parse(text: str) -> wgconfig.WgConfig:
    try:
        return wgconfig.parse_config(text)
    except wgconfig.ConfigError as exc:
        raise ConfigRefused(f"WireGuard config refused: {exc}") from None


@dataclass(frozen=True)
class ImportedConfig:
    private_key: str
    template: str  # canonical text without PrivateKey
    public_key: str
    endpoint: str


def split_import(text: str) -> ImportedConfig:
    """Validate a .conf as the helper would and take its private key out."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_CONF_BYTES:
        raise ConfigRefused(f"The file is larger than {MAX_CONF_BYTES // 1024} KiB.")
    config = parse(text)
    canonical = wgconfig.render_config(config)
    template = "\n".join(
        line for line in canonical.splitlines() if not line.startswith("PrivateKey")
    )
    endpoint = next((p.endpoint for p in config.peers if p.endpoint), "") or ""
    return ImportedConfig(
        private_key=config.interface.private_key,
        template=template + "\n",
        public_key=public_key(config.interface.private_key),
        endpoint=endpoint,
    )
