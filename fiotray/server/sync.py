"""From the peers the interface has to the peers it should have, one peer at a time.

Upstream rewrites its wg-quick config and runs `wg-quick down` + `up` on every change,
which ends every peer's session (devices re-handshake ~15 s later) and drops any peer
it did not write. Here each change is one `wg set` for that peer alone: a peer whose
key and address are unchanged is never touched, so its session goes on.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from fiotray.server.peers import WantedPeer
from fiotray.wg.dump import parse_wg_dump


@dataclass(frozen=True)
class CurrentPeer:
    public_key: str
    allowed_ips: tuple[str, ...]


def current_peers(dump: str) -> dict[str, CurrentPeer]:
    """The interface's peers from `wg show IFNAME dump` (ValueError on a malformed dump)."""
    return peers_of(parse_wg_dump(dump))


def peers_of(parsed: dict[str, object]) -> dict[str, CurrentPeer]:
    """The peers of a parsed dump (fiotray.wg.dump.parse_wg_dump)."""
    out = {}
    for raw in parsed["peers"]:  # type: ignore[attr-defined]
        key = raw["public_key"]
        if key:
            out[key] = CurrentPeer(key, tuple(raw["allowed_ips"]))
    return out


@dataclass(frozen=True)
class Plan:
    add: list[WantedPeer] = field(default_factory=list)
    change: list[WantedPeer] = field(default_factory=list)  # same key, another address
    remove: list[str] = field(default_factory=list)  # public keys
    # Peers on the interface that the server neither wants nor manages (added by hand):
    # left alone, and shown, so an admin can tell.
    unmanaged: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.add or self.change or self.remove)

    def commands(self, wg: str, interface: str, *, batch: int = 1) -> list[list[str]]:
        """The `wg set` argv for the steps, up to `batch` peers per command (`wg set`
        takes several `peer` clauses; each clause touches its own peer alone).

        Removals first: an address a removed peer held may be the one an added peer gets
        (WireGuard moves an allowed IP to the last peer that claims it, so the order
        decides who ends up with it)."""
        clauses = [["peer", key, "remove"] for key in self.remove]
        clauses += [
            ["peer", p.public_key, "allowed-ips", p.allowed_ip] for p in (*self.change, *self.add)
        ]
        steps = []
        for start in range(0, len(clauses), max(1, batch)):
            argv = [wg, "set", interface]
            for clause in clauses[start : start + max(1, batch)]:
                argv += clause
            steps.append(argv)
        return steps


def plan(
    wanted: dict[str, WantedPeer],
    current: dict[str, CurrentPeer],
    *,
    managed: Collection[str] | None = None,
) -> Plan:
    """What to do so the interface has exactly the wanted peers.

    `managed`: public keys of the peers this server put there (and may take away);
    a peer on the interface outside it is left alone. None: every peer is managed.
    """
    result = Plan()
    for key, peer in sorted(wanted.items(), key=lambda kv: kv[1].name):
        have = current.get(key)
        if have is None:
            result.add.append(peer)
        elif have.allowed_ips != (peer.allowed_ip,):
            result.change.append(peer)
    for key in sorted(current):
        if key in wanted:
            continue
        if managed is None or key in managed:
            result.remove.append(key)
        else:
            result.unmanaged.append(key)
    return result
