"""Does a device answer over the VPN? One SSH probe through the device's route.

The probe waits for the device's SSH banner (``SSH-2.0-...``), the first thing an sshd
sends, and stops there: it proves the whole path (this laptop, the tunnel, the VPN
server's peer for the device, the device's tunnel and its sshd) without signing in to
the device, so it needs no key for the device, leaves no login in its logs and never
asks for anything.

- ``direct``: a TCP connection from here to the device's VPN address.
- ``jump`` and ``public``: ``ssh -W <device>:<port>`` to the VPN server, the same hop
  ``ssh -J`` makes (the user's own ssh config, agent and known_hosts; none of our
  ``-o`` options, as OpenSSH starts the ``-J`` hop), with ``BatchMode`` so a missing
  key or an unknown server key fails instead of prompting. The server connects to
  the device and hands the bytes back.

Where it fails says why: the hop itself (the server did not let us in), the server's
connection to the device (ssh's ``channel 0: open failed``: it has no route or peer for
the device), or silence (the server's connection hangs: wireguard-go drops packets to
a peer it does not have, and a peer whose device is off never answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass
from typing import Literal

from fiotray.core.format import safe_text
from fiotray.core.ssh import SshSettings, SshTarget

# What answered, or where the probe stopped.
Where = Literal["device", "server", "device-path"]

PROBE_TIMEOUT = 8.0
# Below PROBE_TIMEOUT: a hop that does not answer is told apart from a device that does not.
HOP_CONNECT_TIMEOUT = 5
BANNER_LIMIT = 255  # RFC 4253: the identification line is at most 255 bytes


@dataclass(frozen=True)
class Probe:
    ok: bool
    where: Where  # "device": it answered; "server": the hop failed; "device-path": no answer
    detail: str  # ssh's own words or ours, safe to show
    seconds: float

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "where": self.where,
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
        }


def device_port(settings: SshSettings) -> int:
    """The device's SSH port: 22, or the user's ``Port=`` extra option."""
    for option in settings.extra_options:
        key, _, value = option.partition("=")
        if key.strip().lower() == "port" and value.strip().isdigit():
            return int(value)
    return 22


def probe_argv(target: SshTarget, settings: SshSettings, *, ssh: str = "ssh") -> list[str] | None:
    """The hop's argv for the jump and public routes; None for direct (no hop)."""
    target, settings = target.validated(), settings.validated()
    hop = settings.jump(target.server_address)
    if hop is None:
        return None
    argv = [ssh, "-o", "BatchMode=yes", "-o", f"ConnectTimeout={HOP_CONNECT_TIMEOUT}"]
    argv += ["-l", settings.jump_user]
    if hop.port:
        argv += ["-p", str(hop.port)]
    argv += ["-W", f"{target.vpn_address}:{device_port(settings)}", "--", hop.bare_host()]
    return argv


def _banner(line: bytes) -> str | None:
    text = line.decode("ascii", "replace").strip()
    return safe_text(text, 80) if text.startswith("SSH-") else None


async def probe(
    target: SshTarget, settings: SshSettings, *, timeout: float = PROBE_TIMEOUT, ssh: str = "ssh"
) -> Probe:
    """One try: did the device's sshd answer through the route within `timeout`?"""
    started = time.monotonic()
    argv = probe_argv(target, settings, ssh=ssh)
    if argv is None:
        where, detail = await _direct(target, device_port(settings), timeout)
    else:
        where, detail = await _through_hop(argv, timeout)
    return Probe(where == "device", where, detail, time.monotonic() - started)


async def _direct(target: SshTarget, port: int, timeout: float) -> tuple[Where, str]:
    address = target.validated().vpn_address
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(address, port)
            banner = _banner(await reader.readline())
    except TimeoutError:
        return "device-path", f"no answer from {address}:{port} within {timeout:.0f} s"
    except OSError as exc:
        # asyncio's "Connect call failed" carries the errno, not its words.
        words = os.strerror(exc.errno) if exc.errno else str(exc)
        return "device-path", f"{address}:{port}: {safe_text(words, 120)}"
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    if banner is None:
        return "device-path", f"{address}:{port} answered, but not as an SSH server"
    return "device", banner


async def _through_hop(argv: list[str], timeout: float) -> tuple[Where, str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Its own group: a probe given up on is ended whole, with no terminal of ours.
            start_new_session=True,
        )
    except FileNotFoundError:
        return "server", "ssh is not installed (Debian: apt install openssh-client)"
    assert proc.stdout is not None and proc.stderr is not None
    line = errors = b""
    try:
        async with asyncio.timeout(timeout):
            line = await proc.stdout.readline()
            if not line:
                await proc.wait()  # ended without a banner: its stderr says why
    except TimeoutError:
        pass
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                errors = await proc.stderr.read(4096)
                await proc.wait()
    banner = _banner(line[:BANNER_LIMIT])
    if banner is not None:
        return "device", banner
    said = [safe_text(s, 160) for s in errors.decode(errors="replace").splitlines() if s.strip()]
    for text in said:
        if "open failed" in text or "forwarding failed" in text:
            # The server let us in, but could not connect to the device.
            return "device-path", f"the VPN server could not connect to it ({text})"
    if proc.returncode == 255 and said:
        return "server", said[-1]
    if not line and not said:
        return "device-path", f"no answer through the VPN server within {timeout:.0f} s"
    return "device-path", said[-1] if said else "it answered, but not as an SSH server"
