"""The running tray app as a test sees it: its single-instance socket, and bounded waits.

`fiotray` answers one JSON line per request line (`status`, `show`, `quit`) on
`$XDG_RUNTIME_DIR/fiotray-<uid>.sock` (one per user, demo or not); `status` tells the
tray's state, the tunnels and what the devices window shows (fiotray/gui/app.py).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(what: str, cond: Callable[[], T], timeout: float = 15.0, step: float = 0.05) -> T:
    """Poll `cond` until it returns something true; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


class AppSocket:
    def __init__(self, path: Path) -> None:
        self.path = path

    def request(self, command: str, timeout: float = 5.0) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(self.path))
            s.sendall(command.encode() + b"\n")
            data = b""
            while b"\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data.split(b"\n", 1)[0])

    def status(self) -> dict[str, Any]:
        return self.request("status")

    def tunnel(self) -> str | None:
        """The first tunnel's state, None before the first check."""
        tunnels = self.status()["tunnels"]
        return tunnels[0]["state"] if tunnels else None

    def devices(self) -> dict[str, Any]:
        """What the devices window shows ({} before it was opened)."""
        return self.status()["devices"] or {}

    def rows(self) -> list[dict[str, str]]:
        return self.devices().get("rows", [])
