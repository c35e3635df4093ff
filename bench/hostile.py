#!/usr/bin/env python3
"""`fiotray devices` against hostile servers: how long, how much memory, how many requests.

For each misbehaviour of tests/hostile.py (a `total` of a trillion, an endless or
repeating `next` chain, a body trickled a byte at a time, a gzip bomb, JSON nested
100,000 deep, 429 with `Retry-After: soon` for ever, escape sequences in an error) it
signs the real CLI in to a loopback server with an API token (kept in a private, real
Secret Service, as bench/devices_list.py does), runs `fiotray devices` as a process and
prints its wall time, its peak RSS (VmHWM, sampled), the requests the server saw, its
exit code, whether its output held a traceback or a raw control character, and its
message. Ends with a Markdown table for the README.

--checkout DIR runs another checkout's fiotray (say, main before the hardening), each
run killed after --limit seconds and held to --memory MiB of address space, since that
code may neither stop nor stay small.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fiotray.core.format import safe_text  # noqa: E402
from tests import hostile  # noqa: E402
from tests.hostile import HostileServer  # noqa: E402
from tests.keyring_session import start_secret_service  # noqa: E402

TOKEN = "hostile-bench-token"  # noqa: S105 - the loopback server takes any token
BEHAVIOURS: list[tuple[str, hostile.Behaviour]] = [
    ("total of 10^12 devices", hostile.huge_total()),
    ("endless next chain", hostile.endless_next),
    ("next that repeats", hostile.repeating_next),
    ("body trickled 1 byte / 0.2 s", hostile.trickle),
    ("gzip bomb, 1 MiB -> 1 GiB", hostile.bomb(1 << 30)),
    ("a gzip bomb for every page but the first", hostile.bomb_pages(1 << 30)),
    ("JSON nested 100,000 deep", hostile.deep_json),
    ("429, Retry-After: soon, always", hostile.bad_retry_after),
    ("escape sequences in msg", hostile.escapes_in_msg),
    ("escape sequences in errors keys", hostile.escapes_in_error_keys),
    ("escape sequences in text body", hostile.escapes_in_text),
]
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


@dataclass
class Run:
    name: str
    code: int | None  # None: killed at the time limit
    wall: float
    rss_mib: float
    requests: int
    traceback: bool
    raw_control: bool
    message: str


def sample_hwm(pid: int, exited: threading.Event, peak: list[int]) -> None:
    """The process's VmHWM (peak RSS, KiB), read every 20 ms until it exits.

    Not wait4's ru_maxrss: that counts the RSS the child had before exec, which is this
    benchmark's own (a fork of it), not fiotray's. VmHWM belongs to the process's memory
    since exec and only grows, so the last reading is its peak to within 20 ms.
    """
    path = f"/proc/{pid}/status"
    while not exited.is_set():
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]))
        except OSError:
            return
        exited.wait(0.02)


def run_one(
    name: str,
    behaviour: hostile.Behaviour,
    env: dict[str, str],
    code: Path,
    limit: float,
    memory: int,
) -> Run:
    fiotray = [sys.executable, "-m", "fiotray"]
    with HostileServer(behaviour) as server:
        login = ["login", "--api-token-stdin", "--factory", hostile.FACTORY]
        signed_in = subprocess.run(
            [*fiotray, *login, "--api-url", server.url],
            input=TOKEN + "\n",
            text=True,
            env=env,
            cwd=code,  # `python -m` puts the working directory first on sys.path
            capture_output=True,
        )
        if signed_in.returncode:
            raise SystemExit(f"fiotray login failed: {signed_in.stderr.strip()}")
        before = len(server.requests)

        def cap_memory() -> None:
            if memory:
                limit_bytes = memory << 20
                resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

        start = time.perf_counter()
        proc = subprocess.Popen(
            [*fiotray, "devices"],
            env=env,
            cwd=code,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # Only setrlimit runs between fork and exec: nothing there takes a lock.
            preexec_fn=cap_memory,
        )
        out: dict[str, bytes] = {}
        readers = [
            threading.Thread(target=lambda k=k, f=f: out.__setitem__(k, f.read()))
            for k, f in (("out", proc.stdout), ("err", proc.stderr))
        ]
        for t in readers:
            t.start()
        killed = threading.Timer(limit, proc.kill)
        killed.start()
        exited = threading.Event()
        peak = [0]
        sampler = threading.Thread(target=sample_hwm, args=(proc.pid, exited, peak))
        sampler.start()
        _, status, _ = os.wait4(proc.pid, 0)
        exited.set()
        sampler.join()
        wall = time.perf_counter() - start
        timed_out = not killed.is_alive()
        killed.cancel()
        for t in readers:
            t.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        requests = len(server.requests) - before
    text = (out["out"] + out["err"]).decode("utf-8", "replace")
    lines = out["err"].decode("utf-8", "replace").strip().splitlines()
    message = lines[-1] if lines else ""
    return Run(
        name=name,
        code=None if timed_out else proc.returncode,
        wall=wall,
        rss_mib=peak[0] / 1024,
        requests=requests,
        traceback="Traceback (most recent call last)" in text,
        raw_control=any(c in text for c in RAW),
        message=safe_text(message, 110),
    )


def table(runs: list[Run]) -> str:
    rows = [
        "| server sends | exit | wall | peak RSS | requests | traceback | raw ESC/BEL/C1/bidi |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        code = "killed" if r.code is None else str(r.code)
        rows.append(
            f"| {r.name} | {code} | {r.wall:.1f} s | {r.rss_mib:.0f} MiB | {r.requests} "
            f"| {'yes' if r.traceback else 'no'} | {'yes' if r.raw_control else 'no'} |"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, help="run this checkout's fiotray instead")
    parser.add_argument("--limit", type=float, default=120.0, help="kill a run after (s)")
    parser.add_argument("--memory", type=int, default=0, help="address-space cap (MiB)")
    parser.add_argument("--only", help="run the behaviours whose name contains this")
    args = parser.parse_args()

    code = (args.checkout or ROOT).resolve()
    with tempfile.TemporaryDirectory() as home, start_secret_service() as keyring_session:
        env = {
            **os.environ,
            "PYTHONPATH": str(code),
            "DBUS_SESSION_BUS_ADDRESS": keyring_session.bus_address,
            "HOME": home,
            "XDG_CONFIG_HOME": f"{home}/config",
            "XDG_STATE_HOME": f"{home}/state",
            "XDG_CACHE_HOME": f"{home}/cache",
        }
        runs = []
        for name, behaviour in BEHAVIOURS:
            if args.only and args.only not in name:
                continue
            run = run_one(name, behaviour, env, code, args.limit, args.memory)
            runs.append(run)
            code_text = "killed" if run.code is None else f"exit {run.code}"
            print(
                f"{name:34} {code_text:8} {run.wall:6.1f} s {run.rss_mib:6.0f} MiB "
                f"{run.requests:6} requests  {run.message}",
                flush=True,
            )
    print()
    print(f"fiotray devices from {code}")
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
