"""A simulated tunnel for the demo: the helper's behaviour without root or WireGuard.

`up` validates the config exactly as the real helper would, then an interface
"appears" in a private stand-in for /sys/class/net and its first handshake
follows shortly after, as a real one does; `down` removes it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from fiotray.core import wgconf
from fiotray.core.errors import VpnError
from fiotray.core.tunnels import HelperClient, InterfaceStatus, PeerStatus

UP_DELAY = 0.3
HANDSHAKE_DELAY = 0.6


class SimulatedHelper(HelperClient):
    def __init__(self, sys_net: Path) -> None:
        super().__init__()
        self.sys_net = sys_net
        self._up: dict[str, tuple[float, str, str, int]] = {}  # if -> (created, peer, endpoint)

    async def up(self, interface: str, config: str) -> None:
        parsed = wgconf.parse(config)
        if (self.sys_net / interface).exists():
            raise VpnError(f"interface {interface} already exists")
        await asyncio.sleep(UP_DELAY)
        (self.sys_net / interface).mkdir(parents=True)
        peer = parsed.peers[0]
        self._up[interface] = (time.time(), peer.public_key, peer.endpoint or "", 0)

    async def down(self, interface: str) -> None:
        await asyncio.sleep(UP_DELAY / 2)
        self._up.pop(interface, None)
        path = self.sys_net / interface
        if path.exists():
            path.rmdir()

    async def status(self) -> dict[str, InterfaceStatus]:
        now = time.time()
        out = {}
        for name, (created, peer, endpoint, _) in self._up.items():
            age = now - created
            handshake = created + HANDSHAKE_DELAY if age >= HANDSHAKE_DELAY else 0.0
            # Keepalives every 25 s keep the handshake fresh, as on a real link.
            if handshake and age > 120:
                handshake = now - (age % 120)
            traffic = int(age * 180)
            out[name] = InterfaceStatus(
                name,
                True,
                created,
                (PeerStatus(peer, endpoint, handshake, traffic * 3, traffic),),
            )
        return out
