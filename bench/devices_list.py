#!/usr/bin/env python3
"""Time to list every device of a large factory, fiotray's way and fioctl's way.

Starts the fake FoundriesFactory API in its own process (so its threads do not
share our GIL) with N devices and L seconds of latency added to every request,
then in the same run measures:
  * fiotray: FactoryClient.list_devices (first page, then the rest concurrently)
  * sequential: 500 per page following `next` one after another, as fioctl does
  * peak RSS of `fiotray devices --json` as a process, signed in with an API token
    kept in a private, real Secret Service (gnome-keyring on its own D-Bus).
Prints one line per figure and, with --json, a JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fiotray.core.api import FactoryClient, new_http_client
from fiotray.core.auth import ApiTokenCredentials
from fiotray.core.models import Device
from fiotray.demo.fakeapi import start_process
from tests.keyring_session import start_secret_service


def start_fake(devices: int, latency: float, token: str) -> tuple[subprocess.Popen, dict]:
    args = ["--devices", str(devices), "--latency", str(latency)]
    return start_process([*args, f"--api-token={token}"])  # a token may start with "-"


async def fiotray_way(url: str, factory: str, token: str) -> tuple[float, int]:
    start = time.perf_counter()
    async with FactoryClient(url, factory, ApiTokenCredentials(token)) as api:
        devices = await api.list_devices()
    return time.perf_counter() - start, len(devices)


async def sequential_way(url: str, factory: str, token: str) -> tuple[float, int]:
    start = time.perf_counter()
    devices: list[Device] = []
    async with new_http_client() as http:
        headers = {"OSF-TOKEN": token}
        next_url: str | None = f"{url}/ota/devices/?factory={factory}&limit=500"
        while next_url:
            page = (await http.get(next_url, headers=headers)).json()
            devices += [Device.from_json(d) for d in page["devices"]]
            next_url = page.get("next")
    return time.perf_counter() - start, len(devices)


def cli_peak_rss(url: str, factory: str, token: str) -> tuple[float, float, int]:
    """Peak RSS (MiB) and wall time of `fiotray devices --json`, and devices printed."""
    with tempfile.TemporaryDirectory() as home, start_secret_service() as keyring_session:
        env = {
            **os.environ,
            "DBUS_SESSION_BUS_ADDRESS": keyring_session.bus_address,
            "HOME": home,
            "XDG_CONFIG_HOME": f"{home}/config",
            "XDG_STATE_HOME": f"{home}/state",
            "XDG_CACHE_HOME": f"{home}/cache",
        }
        fiotray = [sys.executable, "-m", "fiotray"]
        subprocess.run(
            [*fiotray, "login", "--factory", factory, "--api-url", url, "--api-token-stdin"],
            input=token + "\n",
            text=True,
            env=env,
            check=True,
            capture_output=True,
        )
        start = time.perf_counter()
        proc = subprocess.Popen([*fiotray, "devices", "--json"], env=env, stdout=subprocess.PIPE)
        out = proc.stdout.read() if proc.stdout else b""
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if status != 0:
            raise SystemExit(f"fiotray devices --json failed with status {status}")
        return usage.ru_maxrss / 1024, wall, len(json.loads(out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    token = secrets.token_urlsafe(24)
    proc, info = start_fake(args.devices, args.latency, token)
    try:
        url, factory = info["url"], info["factory"]
        fiotray_times, seq_times = [], []
        for _ in range(args.runs):  # interleaved so drift hits both alike
            t, n = asyncio.run(fiotray_way(url, factory, token))
            assert n == args.devices, f"fiotray saw {n} devices"
            fiotray_times.append(t)
            t, n = asyncio.run(sequential_way(url, factory, token))
            assert n == args.devices, f"sequential saw {n} devices"
            seq_times.append(t)
        rss, cli_wall, cli_n = cli_peak_rss(url, factory, token)
        assert cli_n == args.devices, f"fiotray devices --json printed {cli_n} devices"
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    fio, seq = statistics.median(fiotray_times), statistics.median(seq_times)
    figures = {
        "devices": args.devices,
        "latency_ms": args.latency * 1000,
        "runs": args.runs,
        "fiotray_list_s_median": round(fio, 3),
        "fiotray_list_s_max": round(max(fiotray_times), 3),
        "sequential_list_s_median": round(seq, 3),
        "speedup": round(seq / fio, 1),
        "cli_devices_json_peak_rss_mib": round(rss, 1),
        "cli_devices_json_wall_s": round(cli_wall, 2),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"{args.devices} devices, {args.latency * 1000:.0f} ms latency, {args.runs} runs")
        print(
            f"fiotray list_devices      median {fio:.3f} s  max {max(fiotray_times):.3f} s"
            "  (target <= 0.5 s)"
        )
        print(f"sequential 500/page       median {seq:.3f} s")
        print(f"speedup                   {seq / fio:.1f}x")
        print(f"fiotray devices --json    peak RSS {rss:.1f} MiB, wall {cli_wall:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
