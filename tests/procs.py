"""Stopping what the test fixtures started: a child process, or processes by PID.

Every fixture that starts daemons (D-Bus, gnome-keyring, polkitd, wireguard-go, sshd,
Xvfb, ...) stops them the same way: SIGTERM, a bounded wait, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable

STOP_TIMEOUT = 5.0


def alive(pid: int) -> bool:
    """True while pid runs; a zombie counts as gone (our init may reap late)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = STOP_TIMEOUT) -> None:
    """Stop a child of ours and reap it."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def stop_pids(pids: Iterable[int], timeout: float = STOP_TIMEOUT) -> None:
    """Stop processes that are not our children (nothing to reap): all at once."""
    pids = list(pids)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while (pids := [pid for pid in pids if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
