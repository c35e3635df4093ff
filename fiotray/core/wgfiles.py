"""The `wireguard-client` and `wireguard-server` config files, read and written as fioctl does.

Reading is tolerant (lines without `=` are skipped, keys and values trimmed);
writing produces exactly fioctl's bytes, so a device configured by fiotray is
indistinguishable from one configured with `fioctl devices config wireguard`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from fiotray.core.errors import VpnError
from fiotray.core.format import safe_text

CLIENT_FILE = "wireguard-client"
SERVER_FILE = "wireguard-server"
VPN_HANDLER = "/usr/share/fioconfig/handlers/factory-config-vpn"
DEFAULT_PORT = 5555
DEFAULT_SERVER_ADDRESS = "10.42.42.1"
# fioctl looks this far past the server's address for a free one.
ALLOCATION_WINDOW = 10_000


def parse_lines(value: str) -> dict[str, str]:
    """`key=value` lines; keys and values made safe to show (they come from the server and
    reach the terminal: an address, a key, an unknown key named in an error). A real
    address or key has no control character, so this changes none."""
    out: dict[str, str] = {}
    for line in value.split("\n"):
        key, sep, val = line.partition("=")
        if sep:
            out[safe_text(key.strip())] = safe_text(val.strip())
    return out


@dataclass
class WireguardClient:
    address: str = ""
    pubkey: str = ""
    enabled: bool = True
    unknown: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str) -> WireguardClient:
        fields = parse_lines(value)
        return cls(
            address=fields.pop("address", ""),
            pubkey=fields.pop("pubkey", ""),
            enabled=fields.pop("enabled", "1") != "0",
            unknown=fields,
        )

    def marshal(self) -> str:
        """fioctl's WireguardClientConfig.Marshall(), byte for byte."""
        text = f"address={self.address}\npubkey={self.pubkey}"
        if not self.enabled:
            text += "\nenabled=0"
        return text


@dataclass
class WireguardServer:
    endpoint: str
    server_address: str
    pubkey: str
    enabled: bool = True

    @classmethod
    def parse(cls, value: str) -> WireguardServer:
        fields = parse_lines(value)
        return cls(
            endpoint=fields.get("endpoint", ""),
            server_address=fields.get("server_address", ""),
            pubkey=fields.get("pubkey", ""),
            enabled=fields.get("enabled", "1") != "0",
        )

    @property
    def host(self) -> str:
        host, _, _ = self.endpoint.rpartition(":")
        return host.strip("[]") or self.endpoint

    @property
    def port(self) -> int:
        _, _, port = self.endpoint.rpartition(":")
        return int(port) if port.isdigit() else DEFAULT_PORT


def ipv4(value: str, what: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(value.strip())
    except ValueError:
        raise VpnError(f"{what} {value[:60]!r} is not an IPv4 address.") from None


def allocate_address(server_address: str, used: set[str]) -> str:
    """fioctl's search: the first address after the server's, unused, last byte not 0."""
    server = int(ipv4(server_address, "The VPN server address"))
    taken: set[int] = set()
    for ip in used:
        try:
            taken.add(int(ipaddress.IPv4Address(ip.strip())))
        except ValueError:
            continue  # a malformed address elsewhere cannot collide with a valid one
    for candidate in range(server + 1, min(server + ALLOCATION_WINDOW, 2**32)):
        if candidate & 0xFF and candidate not in taken:
            return str(ipaddress.IPv4Address(candidate))
    raise VpnError("Unable to find a unique IP address for VPN.")


# A laptop asking a self-service fiotray-server for access publishes one factory config
# file of its own, `fiotray-engineer-<name>`: one file per laptop, so two engineers
# asking at once never overwrite each other (a PATCH keeps the files it does not name).
ENGINEER_PREFIX = "fiotray-engineer-"


@dataclass(frozen=True)
class EngineerAccess:
    """`pubkey=` and `address=` lines, and `enabled=0` once withdrawn (as devices' files)."""

    name: str  # the part of the file name after the prefix
    pubkey: str
    address: str
    enabled: bool = True

    @property
    def file_name(self) -> str:
        return ENGINEER_PREFIX + self.name

    def marshal(self) -> str:
        text = f"pubkey={self.pubkey}\naddress={self.address}"
        return text if self.enabled else text + "\nenabled=0"

    @classmethod
    def parse(cls, file_name: str, value: str) -> EngineerAccess | None:
        """None for a file that is not an engineer's."""
        if not file_name.startswith(ENGINEER_PREFIX):
            return None
        fields = parse_lines(value)
        return cls(
            name=file_name.removeprefix(ENGINEER_PREFIX),
            pubkey=fields.get("pubkey", ""),
            address=fields.get("address", ""),
            enabled=fields.get("enabled", "1") != "0",
        )


def engineer_requests(files: Iterable[tuple[str, str]]) -> list[EngineerAccess]:
    """Every engineer's file among a factory's config files, as (name, value) pairs."""
    found = (EngineerAccess.parse(name, value) for name, value in files)
    return [a for a in found if a is not None]
