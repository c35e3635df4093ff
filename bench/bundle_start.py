#!/usr/bin/env python3
"""Start-up of the packaged bundle next to running from source and a bare PySide6 tray app.

On one private X desktop (Xvfb + openbox + trayer, as tests/xsession.py), in the same run,
alternating, N times each:
  * floor:  the 15-line PySide6 tray script of bench/gui_start.py (the venv's Python)
  * source: `.venv/bin/python -m fiotray --demo --hidden` (byte-compiled first)
  * bundle: `opt/fiotray/fiotray --demo --hidden` from the .deb, unpacked with dpkg-deb -x
            (the installed files, byte for byte, without installing them on this machine)
Start = process start -> its icon sits inside the tray (bench/gui_start.py's measure()).
Idle RSS = VmRSS ~2 s after the icon was embedded.

Usage: bench/bundle_start.py [-n N] [--deb build/fiotray_*.deb | --bundle build/dist/fiotray]
(build it first with packaging/build-deb.sh)
"""

from __future__ import annotations

import argparse
import compileall
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gui_start import FLOOR, measure  # noqa: E402
from tests.xsession import require_tools, start_xsession  # noqa: E402


def newest_deb() -> Path:
    debs = sorted((ROOT / "build").glob("fiotray_*.deb"), key=lambda p: p.stat().st_mtime)
    if not debs:
        raise SystemExit("no build/fiotray_*.deb: run packaging/build-deb.sh first")
    return debs[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=8, help="runs of each (default 8)")
    parser.add_argument("--deb", type=Path, default=None, help="the .deb (default: newest)")
    parser.add_argument(
        "--bundle", type=Path, default=None, help="a bundle dir (build/dist/fiotray) instead"
    )
    args = parser.parse_args()
    deb = None if args.bundle else (args.deb or newest_deb())
    require_tools()
    compileall.compile_dir(ROOT / "fiotray", quiet=1)
    py = sys.executable
    icon = str(ROOT / "fiotray" / "gui" / "svg" / "fiotray-disconnected.svg")
    with tempfile.TemporaryDirectory(prefix="fiotray-bench-") as tmp, start_xsession() as session:
        if deb is not None:
            unpacked = Path(tmp) / "deb"
            subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
            bundle = unpacked / "opt/fiotray/fiotray"
        else:
            bundle = args.bundle.resolve() / "fiotray"
        floor_py = Path(tmp) / "floor.py"
        floor_py.write_text(FLOOR)
        env = dict(session.env)
        cases = {
            "floor": ([py, str(floor_py), icon], "floortray"),
            "source": ([py, "-m", "fiotray", "--demo", "--hidden"], "fiotray"),
            "bundle": ([str(bundle), "--demo", "--hidden"], "fiotray"),
        }
        results: dict[str, list[tuple[float, int]]] = {k: [] for k in cases}
        for argv, cls in cases.values():  # warm the page cache once
            measure(session, argv, cls, env)
        for i in range(args.n):
            for name, (argv, cls) in cases.items():
                results[name].append(measure(session, argv, cls, env))
            print(f"round {i + 1}/{args.n} done", file=sys.stderr)
    floor_start = statistics.median(s for s, _ in results["floor"])
    source_start = statistics.median(s for s, _ in results["source"])
    what = f"{deb.name} ({deb.stat().st_size / 1e6:.1f} MB)" if deb else str(args.bundle)
    print(f"{what}; n={args.n}, alternating, same run")
    head = ("case", "start median", "min", "x floor", "x source", "idle RSS")
    print("{:8} {:>13} {:>7} {:>8} {:>9} {:>10}".format(*head))
    for name, runs in results.items():
        starts = [s for s, _ in runs]
        med = statistics.median(starts)
        rss = statistics.median(r for _, r in runs)
        print(
            f"{name:8} {med * 1000:10.0f} ms {min(starts) * 1000:4.0f} ms {med / floor_start:7.2f}x"
            f" {med / source_start:8.2f}x {rss / 1024:6.1f} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
