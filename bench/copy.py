#!/usr/bin/env python3
"""Throughput of a 100 MB copy through the jump route: `fiotray cp` next to plain scp.

Needs root: it runs tests/integration/test_copy_bench.py (the VPN world in network
namespaces, polkit, the helper, an engineer signed in to a fake factory, as the
integration tests), which prints the figures and whether they meet the issue's 0.9x.
Take the world lock when other runs may use it: flock /tmp/fiotray-world.lock bench/copy.py

Usage: bench/copy.py [-n N]
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
    parser.add_argument("-n", type=int, default=3, help="runs of each (default 3)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/copy.py needs root (network namespaces, polkit, the helper)")
    env = {
        **os.environ,
        "FIOTRAY_BENCH_COPY": "1",
        "FIOTRAY_BENCH_RUNS": str(args.n),
        "PYTHONPATH": str(ROOT),
    }
    test = "tests/integration/test_copy_bench.py"
    argv = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", test]
    return subprocess.run(argv, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
