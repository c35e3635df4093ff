#!/usr/bin/env python3
"""Time from Enable VPN to "reachable" in the test world, with its parts: apply (the
device takes the change), server sync (fiotray-server adds its peer) and probe (the
device's SSH banner through the jump route).

Needs root: it runs tests/integration/test_reach_world.py (the VPN world in network
namespaces, polkit, the helper, an engineer signed in to a fake factory, and
`fiotray-server daemon` on the world's VPN server), which repeats `fiotray enable --wait`
N times and prints the median of each part. The fake device applies 2 s after the
change and the daemon syncs every 3 s: the parts show fiotray's own share (how soon it
sees each stage), not a real factory's minutes.
Take the world lock when other runs may use it: flock /tmp/fiotray-world.lock bench/reach.py

Usage: bench/reach.py [-n N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="enables measured (default 5)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/reach.py needs root (network namespaces, polkit, the helper)")
    env = {**os.environ, "FIOTRAY_BENCH_RUNS": str(args.n), "PYTHONPATH": str(ROOT)}
    test = "tests/integration/test_reach_world.py"
    argv = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", test]
    argv += ["-k", "follows_a_device_to_reachable"]
    argv += ["-o", "timeout=600"]
    return subprocess.run(argv, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
