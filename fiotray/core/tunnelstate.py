"""A tunnel's observed state: what the tray shows before the backend (and asyncio) is loaded.

Kept apart from `fiotray.core.tunnels`, which re-exports both names, so the tray icon
can be drawn with nothing but the standard library's enum and dataclasses imported.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Any


class State(enum.StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    # Up, and the VPN server has never answered this laptop's key: it has not admitted
    # the laptop yet (WireGuard stays silent to a key it does not know).
    WAITING = "waiting"
    CONNECTED = "connected"
    STALE = "stale"
    ERROR = "error"


@dataclass(frozen=True)
class TunnelStatus:
    tunnel: str  # the tunnel's name
    interface: str
    state: State
    endpoint: str = ""
    latest_handshake: float = 0.0
    rx_bytes: int = 0
    tx_bytes: int = 0
    detail: str = ""
    # The interface is up, but fiotray's helper did not bring it up (wg-quick by hand,
    # NetworkManager...): fiotray shows it and leaves it alone.
    foreign: bool = False

    def handshake_age(self, now: float | None = None) -> float | None:
        if not self.latest_handshake:
            return None
        return max(0.0, (now or time.time()) - self.latest_handshake)

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        age = self.handshake_age(now)
        return {
            "tunnel": self.tunnel,
            # The old name of "tunnel", kept with the same value: scripts read
            # `fiotray status --json` and must not break.
            "profile": self.tunnel,
            "interface": self.interface,
            "state": str(self.state),
            "endpoint": self.endpoint or None,
            "latest_handshake_age": round(age, 1) if age is not None else None,
            "rx_bytes": self.rx_bytes,
            "tx_bytes": self.tx_bytes,
            "detail": self.detail or None,
            "foreign": self.foreign,
        }
