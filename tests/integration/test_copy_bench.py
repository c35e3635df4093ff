"""The figure of issue 13: a 100 MB copy through the jump route with `fiotray cp`, next to
plain scp over the same route, in the same run. Run by bench/copy.py (FIOTRAY_BENCH_COPY=1);
skipped otherwise.

Both run as the engineer in the laptop namespace, through the same wrapper (a D-Bus
session with the unlocked keyring, which `fiotray cp` needs to read its API token), so
what differs is fiotray itself: its start, the device lookup at the API, and scp under a
pseudo-terminal with the meter read. Alternating, N times each; medians compared, for the
whole command and, with a 1-byte copy's time taken off each, for the transfer alone.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.engineer import WITH_KEYRING

# The fixtures, imported so pytest finds them here too.
from tests.integration.test_copy_real import _random_file, _sha256, connected, local_dir

pytestmark = [
    pytest.mark.real,
    pytest.mark.skipif(
        os.environ.get("FIOTRAY_BENCH_COPY") != "1", reason="a figure: run bench/copy.py"
    ),
]

SIZE = 100 * 1000 * 1000
TARGET = 0.9  # fiotray cp's throughput / plain scp's, at least (issue 13); printed


def _runs(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


def test_copy_throughput(connected, local_dir, device_user) -> None:
    person = connected
    world = person.world
    device = world.devices[0]
    runs = int(os.environ.get("FIOTRAY_BENCH_RUNS", "3"))
    local = _random_file(local_dir / "hundred.bin", SIZE, person)
    remote_dir = Path(tempfile.mkdtemp(prefix="fiotray-bench-"))
    shutil.chown(remote_dir, device_user.uid, device_user.gid)

    def timed(argv: list[str]) -> float:
        wrapped = ["dbus-run-session", "--", "sh", "-c", WITH_KEYRING, "sh", *argv]
        start = time.monotonic()
        proc = world.exec(world.laptop_ns, wrapped, user=person.user, env=person.env(), timeout=300)
        took = time.monotonic() - start
        assert proc.returncode == 0, proc.stderr
        return took

    # scp with the world's client config (its key and known_hosts, both hops) and -J.
    plain_argv = ["scp", *world.ssh_argv(jump=False)[1:]]
    plain_argv += ["-J", f"{world.device_user}@{world.server_vpn_address}"]

    def cp_fiotray(src: Path, dest: Path) -> float:
        return timed(
            [sys.executable, "-m", "fiotray", "cp", "-q", str(src), f"{device.name}:{dest}"]
        )

    def cp_plain(src: Path, dest: Path) -> float:
        return timed([*plain_argv, "-s", "-q", "--", str(src), f"fio@{device.vpn_address}:{dest}"])

    # A one-byte copy of each gives its fixed cost (process start, lookups, SSH set-up
    # through the jump host): what is left of the 100 MB copy is the transfer itself.
    tiny = _random_file(local_dir / "tiny.bin", 1, person)
    times: dict[str, list[float]] = {"plain": [], "fiotray": [], "plain1": [], "fiotray1": []}
    try:
        for i in range(runs):
            for name, run, src in (
                ("plain", cp_plain, local),
                ("fiotray", cp_fiotray, local),
                ("plain1", cp_plain, tiny),
                ("fiotray1", cp_fiotray, tiny),
            ):
                dest = remote_dir / f"{name}{i}.bin"
                times[name].append(run(src, dest))
                assert dest.stat().st_size == src.stat().st_size
                if i == 0 and src == local:
                    assert _sha256(dest) == _sha256(local)
                dest.unlink()
    finally:
        shutil.rmtree(remote_dir, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    p, f = med["plain"], med["fiotray"]
    ratio = p / f  # throughput ratio = time ratio inverted
    p_net, f_net = p - med["plain1"], f - med["fiotray1"]
    net_ratio = p_net / f_net
    print(
        f"\n100 MB through the jump route, median of {runs} (wall clock, same wrapper):\n"
        f"  plain scp:   {p:.2f} s  ({SIZE / p / 1e6:.0f} MB/s)  runs {_runs(times['plain'])}\n"
        f"  fiotray cp:  {f:.2f} s  ({SIZE / f / 1e6:.0f} MB/s)  runs {_runs(times['fiotray'])}\n"
        f"  fiotray/plain throughput, whole command: {ratio:.2f}x (target >= {TARGET}x: "
        f"{'met' if ratio >= TARGET else 'NOT met'})\n"
        f"1-byte copy (fixed cost): plain {med['plain1']:.2f} s "
        f"(runs {_runs(times['plain1'])}), fiotray {med['fiotray1']:.2f} s "
        f"(runs {_runs(times['fiotray1'])})\n"
        f"  transfer alone (100 MB minus 1 byte): plain {p_net:.2f} s, fiotray {f_net:.2f} s: "
        f"{net_ratio:.2f}x (target {'met' if net_ratio >= TARGET else 'NOT met'})"
    )
    # A figure, not a gate: on a loaded machine run-to-run spread is a few tenths of a
    # second, the size of what is measured. The verdicts are printed above.


__all__ = ["connected", "local_dir"]
