"""The peers the server's interface should have: every VPN-enabled device, and every
engineer, with collisions refused and reported instead of silently re-routed.

WireGuard gives an allowed IP to the last peer that claims it, so two peers claiming
one address would take traffic from each other: the first claim (devices before
engineers, then by name) keeps it and every other claim is reported.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Literal

from fiotray.core import wgconf
from fiotray.core.errors import FiotrayError
from fiotray.core.models import WireguardIp
from fiotray.core.wgfiles import EngineerAccess
from fiotray.server.engineers import Engineer, check_name, check_public_key

Kind = Literal["device", "engineer"]


@dataclass(frozen=True)
class WantedPeer:
    public_key: str
    address: str  # the one IPv4 address the peer may use (AllowedIPs <address>/32)
    name: str
    kind: Kind

    @property
    def allowed_ip(self) -> str:
        return f"{self.address}/32"


@dataclass(frozen=True)
class Refused:
    name: str
    kind: Kind
    reason: str


def wanted_peers(
    devices: Iterable[WireguardIp],
    engineers: Iterable[Engineer],
    server_address: str,
    *,
    admitted: Collection[str] = (),
) -> tuple[dict[str, WantedPeer], list[Refused]]:
    """Public key -> peer for every enabled device with an address and a key, and every
    engineer; and what was refused, with the reason. `admitted`: the public keys on the
    interface now; a device or self-service laptop there keeps its address against a
    newcomer of its kind."""
    import ipaddress

    wanted: dict[str, WantedPeer] = {}
    by_address: dict[str, WantedPeer] = {}
    refused: list[Refused] = []
    candidates = [
        WantedPeer(d.pubkey, d.ip, d.name, "device")
        # A peer on the interface keeps its address against a newcomer claiming it.
        for d in sorted(devices, key=lambda d: (d.pubkey not in admitted, d.name))
        if d.enabled and d.ip and d.pubkey
    ] + [
        WantedPeer(e.public_key, e.address, e.name, "engineer")
        # The admin's engineers claim first: a self-service request never takes their
        # place; among requests, one admitted before keeps its address.
        for e in sorted(
            engineers, key=lambda e: (e.source != "admin", e.public_key not in admitted, e.name)
        )
    ]
    for peer in candidates:
        reason = address = None
        try:
            check_public_key(peer.public_key)
        except FiotrayError:
            reason = "its public key is malformed"
        try:
            address = str(ipaddress.IPv4Address(peer.address))
        except ValueError:
            reason = reason or "its address is malformed"
        if reason is None and address == server_address:
            reason = f"it claims the server's own address {address}"
        elif reason is None and address in by_address:
            other = by_address[address]
            reason = f"{address} belongs to {other.kind} {other.name}"
        elif reason is None and peer.public_key in wanted:
            other = wanted[peer.public_key]
            reason = f"its public key is {other.kind} {other.name}'s"
        if reason is not None or address is None:
            refused.append(Refused(peer.name, peer.kind, reason or "its address is malformed"))
            continue
        wanted[peer.public_key] = by_address[address] = peer
    return wanted, refused


def requested_engineers(
    requests: Iterable[EngineerAccess],
    server_address: str,
    *,
    admin: Iterable[Engineer] = (),
    revoked: dict[str, str] | None = None,
) -> tuple[list[Engineer], list[Refused]]:
    """The laptops asking through the factory's config (self-service), checked: withdrawn
    requests are dropped, revoked keys, bad names and addresses out of the engineers'
    range are refused with the reason. Collisions are `wanted_peers`' to find."""
    revoked = revoked or {}
    admin_names = {e.name for e in admin}
    out: list[Engineer] = []
    refused: list[Refused] = []
    for r in sorted(requests, key=lambda r: r.name):
        if not r.enabled:
            continue
        name = r.name[:64]
        reason = None
        try:
            check_name(r.name)
        except FiotrayError:
            reason, name = "its name is malformed", repr(r.name[:40])
        if reason is None and r.name in admin_names:
            reason = "an engineer the admin added has that name"
        elif reason is None and r.pubkey in revoked:
            reason = "the admin revoked it"
        elif reason is None and not wgconf.is_engineer_address(r.address, server_address):
            reason = f"its address {r.address[:40]!r} is not in the engineers' range"
        if reason is not None:
            refused.append(Refused(name, "engineer", reason))
            continue
        out.append(Engineer(r.name, r.pubkey, r.address, "self"))
    return out, refused
