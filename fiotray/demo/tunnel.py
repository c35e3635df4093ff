"""A simulated tunnel for the demo: the helper's behaviour without root or WireGuard.

`up` validates the config exactly as the real helper would, then an interface
"appears" in a stand-in for /sys/class/net and its first handshake follows
shortly after, as a real one does; `down` removes it.

The stand-in is one per user, shared by every demo process (`demo_net_dir`): the
tray's demo and `fiotray --demo status` / `connect` / `disconnect` see and change
the same simulated tunnel. Each interface is a directory holding a small JSON state
(when it came up, its peer's public key and endpoint), made whole before it appears,
so a reader sees an interface complete or not at all. A tunnel left up when the demo
quits stays up, as a real wg-quick interface would, until a `disconnect`; the
runtime directory it lives in is cleared at logout.

What is in that directory is read with suspicion: a state that is not a small regular
file of the expected JSON is logged and ignored (the interface then looks up but not
fiotray's, as one brought up by hand would), never a crash.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import math
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

from fiotray.core import wgconf
from fiotray.core.errors import VpnError
from fiotray.core.files import private_dir, runtime_dir, write_private
from fiotray.core.tunnels import HelperClient, InterfaceStatus, PeerStatus

log = logging.getLogger(__name__)

UP_DELAY = 0.3
HANDSHAKE_DELAY = 0.6
STATE_FILE = "state.json"
MAX_STATE = 4096  # bytes: the state is ~150
MAX_KEY = 64  # a WireGuard key in base64 is 44 characters
MAX_ENDPOINT = 300


def demo_net_dir() -> Path:
    """The simulated interfaces every demo process of this user shares (private, 0700)."""
    return private_dir(runtime_dir() / f"fiotray-{os.getuid()}-demo-net")


class SimulatedHelper(HelperClient):
    def __init__(self, sys_net: Path) -> None:
        super().__init__()
        self.sys_net = sys_net
        self._reported: set[tuple[str, str]] = set()  # problems logged once each

    async def up(self, interface: str, config: str) -> None:
        parsed = wgconf.parse(config)
        target = self.sys_net / interface
        if target.exists() or target.is_symlink():
            raise VpnError(f"interface {interface} already exists")
        await asyncio.sleep(UP_DELAY)
        peer = parsed.peers[0]
        state = {"created": time.time(), "peer": peer.public_key, "endpoint": peer.endpoint or ""}
        # Made whole aside, then renamed into place: no reader sees it half made.
        try:
            scratch = Path(tempfile.mkdtemp(prefix=f".{interface}.", dir=self.sys_net))
        except OSError as exc:
            raise VpnError(f"Cannot bring up {interface}: {exc.strerror or exc}.") from None
        try:
            write_private(scratch / STATE_FILE, json.dumps(state), error=VpnError)
            if target.exists() or target.is_symlink():  # another demo was quicker
                raise VpnError(f"interface {interface} already exists")
            os.rename(scratch, target)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise VpnError(f"interface {interface} already exists") from None
            raise VpnError(f"Cannot bring up {interface}: {exc.strerror or exc}.") from None
        finally:
            if scratch.exists():
                shutil.rmtree(scratch, ignore_errors=True)

    async def down(self, interface: str) -> None:
        await asyncio.sleep(UP_DELAY / 2)
        path = self.sys_net / interface
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()  # something else by that name: it goes as an interface would
        except FileNotFoundError:
            pass  # another demo took it down meanwhile
        except OSError as exc:
            raise VpnError(f"Cannot take {interface} down: {exc.strerror or exc}.") from None

    async def status(self) -> dict[str, InterfaceStatus]:
        now = time.time()
        out = {}
        try:
            names = sorted(os.listdir(self.sys_net))
        except OSError as exc:
            self._report("", f"cannot list {self.sys_net}: {exc.strerror or exc}")
            return {}
        for name in names:
            if name.startswith("."):
                continue  # one being made
            state = self._read(name)
            if state is None:
                continue
            created, peer, endpoint = state
            age = max(0.0, now - created)
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

    def _read(self, name: str) -> tuple[float, str, str] | None:
        """An interface's state, or None (logged once) when it is not one of ours."""
        path = self.sys_net / name
        try:
            st = path.lstat()
            if not stat.S_ISDIR(st.st_mode):
                return self._report(name, "not a directory")
            fd = os.open(path / STATE_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return self._report(name, "no state")
        except OSError as exc:
            return self._report(name, f"unreadable state ({exc.strerror or exc})")
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return self._report(name, "state is not a regular file")
            data = os.read(fd, MAX_STATE + 1)
        except OSError as exc:
            return self._report(name, f"unreadable state ({exc.strerror or exc})")
        finally:
            os.close(fd)
        if len(data) > MAX_STATE:
            return self._report(name, "state too large")
        try:
            state: Any = json.loads(data)
        except (ValueError, RecursionError):
            return self._report(name, "state is not JSON")
        if not isinstance(state, dict):
            return self._report(name, "state is not a JSON object")
        created, peer, endpoint = state.get("created"), state.get("peer"), state.get("endpoint")
        if (
            not isinstance(created, int | float)
            or isinstance(created, bool)
            or not math.isfinite(created)
            or created < 0
            or not isinstance(peer, str)
            or not 0 < len(peer) <= MAX_KEY
            or not isinstance(endpoint, str)
            or len(endpoint) > MAX_ENDPOINT
        ):
            return self._report(name, "state has missing or malformed fields")
        return float(created), peer, endpoint

    def _report(self, name: str, problem: str) -> None:
        if (name, problem) not in self._reported:
            self._reported.add((name, problem))
            log.warning("demo interface %r in %s ignored: %s", name[:40], self.sys_net, problem)
        return None
