#!/usr/bin/env python3
"""`fiotray mcp` as an assistant's client sees it: what the wait costs.

With the MCP SDK's own stdio client, N times each (median and max printed):
  * from starting `fiotray mcp` to an answered `tools/list` (initialize, then the list):
    what a client waits for before it can offer fiotray's tools;
  * `list_foundries_devices` (the default limit of 50) on a factory of D devices with L
    seconds added to every request, against the fake API in its own process, signed in
    with an API token kept in a private, real Secret Service (as bench/cli_start.py sets
    it up): the first call of a server, which fetches the whole list, and a second one
    on the same server;
  * the same listing through the CLI, `fiotray devices --json`, as a process: the baseline.

Needs the `mcp` extra. Prints a Markdown table.
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

ROOT = Path(__file__).resolve().parents[1]
# This script's directory comes first on sys.path, and this script is named mcp.py: it
# would stand in for the MCP SDK's package.
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    del sys.path[0]
sys.path.insert(0, str(ROOT))

from fiotray.demo.fakeapi import start_process  # noqa: E402
from tests.keyring_session import start_secret_service  # noqa: E402
from tests.user_config import cli_env  # noqa: E402


async def one_server(env: dict[str, str], cwd: Path) -> tuple[float, float, float, dict]:
    """Seconds to an answered tools/list, to the first and to a second listing."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "fiotray", "mcp"], env=env, cwd=cwd
    )
    with open(os.devnull, "w") as errlog:
        start = time.perf_counter()
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            tools = await session.list_tools()
            listed = time.perf_counter() - start
            assert any(t.name == "list_foundries_devices" for t in tools.tools)
            times = []
            for _ in range(2):
                start = time.perf_counter()
                result = await session.call_tool("list_foundries_devices", {})
                times.append(time.perf_counter() - start)
                if result.isError:
                    raise SystemExit(f"list_foundries_devices failed: {result.content}")
    return listed, times[0], times[1], result.structuredContent or {}


def cli_listing(env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "fiotray", "devices", "--json"],
        env=env,
        cwd=cwd,
        capture_output=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"fiotray devices failed: {proc.stderr.decode()[-500:]}")
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=5, help="runs of each (default 5)")
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    args = parser.parse_args()

    token = secrets.token_urlsafe(24)
    fake, info = start_process(
        ["--devices", str(args.devices), "--latency", str(args.latency), f"--api-token={token}"]
    )
    try:
        with (
            tempfile.TemporaryDirectory(prefix="fiotray-bench-") as tmp,
            start_secret_service() as ks,
        ):
            home = Path(tmp) / "home"
            home.mkdir()
            # `-m` from `home`, where no fiotray is: PYTHONPATH says this checkout runs.
            env = {**cli_env(home, ks.bus_address), "PYTHONPATH": str(ROOT)}
            subprocess.run(
                [
                    *(sys.executable, "-m", "fiotray", "login", "--factory", info["factory"]),
                    *("--api-url", info["url"], "--api-token-stdin"),
                ],
                input=(token + "\n").encode(),
                env=env,
                cwd=home,
                check=True,
                capture_output=True,
            )
            times: dict[str, list[float]] = {}
            shape: dict = {}
            for run in range(args.runs):  # interleaved, so drift hits every figure alike
                print(f"run {run + 1}", file=sys.stderr)
                listed, first, second, shape = asyncio.run(one_server(env, home))
                times.setdefault("tools/list", []).append(listed)
                times.setdefault("first", []).append(first)
                times.setdefault("second", []).append(second)
                times.setdefault("cli", []).append(cli_listing(env, home))
    finally:
        fake.terminate()
        fake.wait(10)

    big = f"{args.devices:,} devices, {args.latency * 1000:g} ms per request"
    labels = {
        "tools/list": "start `fiotray mcp` → answered `tools/list` (initialize included)",
        "first": f"`list_foundries_devices`, first call of a server ({big})",
        "second": f"`list_foundries_devices`, again on the same server ({big})",
        "cli": f"baseline: `fiotray devices --json` as a process ({big})",
    }
    print(f"{args.runs} runs each, seconds\n")
    print("| what | median | max |")
    print("|---|---|---|")
    for key, label in labels.items():
        values = times[key]
        print(f"| {label} | {statistics.median(values):.3f} | {max(values):.3f} |")
    summary = {k: shape.get(k) for k in ("total_devices", "matched", "returned")}
    size = len(json.dumps(shape))
    print(f"\nThe listing's result: {summary}, {size:,} bytes of JSON (what a model reads).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
