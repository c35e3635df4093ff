#!/usr/bin/env python3
"""Wall time of short `fiotray` commands as whole processes: what a person waits for.

In one run, alternating, N times each (median and max printed):
  * `python -c pass`: the interpreter's own start, the floor;
  * `fiotray --version`;
  * `fiotray factories` (a signed-in config, no network, no keyring call);
  * `fiotray status` (a tunnel configured, none up);
  * `fiotray devices` and `fiotray devices --json` on a factory of D devices, L seconds added
    to every request, against the fake API in its own process, signed in with an API token
    kept in a private, real Secret Service (gnome-keyring on its own D-Bus), as the CLI runs
    for a user;
  * the baseline for that: the same list fetched the way fioctl does, 500 per page one
    after another, by a standard-library process (bench/fioctl_pattern.py);
  * `fiotray devices` against a one-device factory (no latency): the fixed cost.

With `--checkout REV` the same commands also run from a copy of that commit (`git archive`,
nothing added to the repository's worktrees), alternating with this checkout: a before and
after on one machine in one run. Both trees are byte-compiled first, as an installed
fiotray is. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import compileall
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fiotray.demo.fakeapi import start_process  # noqa: E402
from tests.keyring_session import start_secret_service  # noqa: E402
from tests.user_config import cli_env, write_user_config  # noqa: E402


def export(rev: str, into: Path) -> Path:
    """The fiotray package of commit `rev`, unpacked under `into`."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "fiotray"],
        check=True,
        capture_output=True,
    ).stdout
    into.mkdir()
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[1:])} failed: {proc.stderr.decode()[-500:]}")
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=10, help="runs of each (default 10)")
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    parser.add_argument("--checkout", metavar="REV", help="also time this commit (e.g. main)")
    args = parser.parse_args()

    token = secrets.token_urlsafe(24)
    fake, info = start_process(
        ["--devices", str(args.devices), "--latency", str(args.latency), f"--api-token={token}"]
    )
    small, small_info = start_process(
        ["--devices", "1", "--factory", "one-device", f"--api-token={token}"]
    )
    try:
        with (
            tempfile.TemporaryDirectory(prefix="fiotray-bench-") as tmp,
            start_secret_service() as ks,
        ):
            home = Path(tmp) / "home"
            env = cli_env(home, ks.bus_address)
            write_user_config(home / "config")
            trees = {"this checkout": ROOT}
            if args.checkout:
                trees = {args.checkout: export(args.checkout, Path(tmp) / "old"), **trees}
            for path in trees.values():
                # Byte-compiled, as installed: otherwise a run with PYTHONDONTWRITEBYTECODE
                # set compiles every module it imports, every time (~35 ms for `devices`).
                compileall.compile_dir(path / "fiotray", quiet=1)
            # `-m` puts the working directory first on sys.path: run from `home`, where no
            # fiotray is, so PYTHONPATH decides which tree runs.
            py = [sys.executable]
            fiotray = [*py, "-m", "fiotray"]
            # Signed in once, by this checkout: the files and the keyring entry are the same
            # for both trees. The fake API's factory is made the default, for `devices`.
            for factory_info, default in ((small_info, []), (info, ["--default"])):
                subprocess.run(
                    [
                        *fiotray,
                        "login",
                        "--factory",
                        factory_info["factory"],
                        "--api-url",
                        factory_info["url"],
                        "--api-token-stdin",
                        *default,
                    ],
                    input=(token + "\n").encode(),
                    env={**env, "PYTHONPATH": str(ROOT)},
                    cwd=home,
                    check=True,
                    capture_output=True,
                )
            big = f"({args.devices:,} devices, {args.latency * 1000:g} ms per request)"
            baseline = f"fioctl pattern: 500 per page, one after another {big}"
            with_json = f"fiotray devices --json {big}"
            commands = {
                "python -c pass": [*py, "-c", "pass"],
                "fiotray --version": [*fiotray, "--version"],
                "fiotray factories": [*fiotray, "factories"],
                "fiotray status": [*fiotray, "status"],
                "fiotray devices (one-device factory)": [
                    *fiotray,
                    "devices",
                    "--factory",
                    "one-device",
                ],
                f"fiotray devices {big}": [*fiotray, "devices"],
                with_json: [*fiotray, "devices", "--json"],
                baseline: [
                    *py,
                    str(ROOT / "bench" / "fioctl_pattern.py"),
                    info["url"],
                    info["factory"],
                ],
            }
            times: dict[tuple[str, str], list[float]] = {}
            for _ in range(args.runs):  # interleaved, so drift hits every figure alike
                for label, argv in commands.items():
                    for tree, path in trees.items():
                        run_env = {**env, "PYTHONPATH": str(path), "FIOCTL_TOKEN": token}
                        times.setdefault((label, tree), []).append(timed(argv, run_env, home))
    finally:
        for process in (fake, small):
            process.terminate()
            process.wait(timeout=10)

    print(f"Median (max) wall time of {args.runs} runs, ms; {os.cpu_count()} CPUs\n")
    print("| command | " + " | ".join(trees) + " |")
    print("|---|" + "---:|" * len(trees))
    for label in commands:
        cells = []
        for tree in trees:
            t = times[(label, tree)]
            cells.append(f"{statistics.median(t) * 1000:.0f} ({max(t) * 1000:.0f})")
        print(f"| {label} | " + " | ".join(cells) + " |")
    for tree in trees:
        ratio = statistics.median(times[(baseline, tree)]) / statistics.median(
            times[(with_json, tree)]
        )
        print(f"\n{tree}: `fiotray devices --json` is {ratio:.2f}x faster than the baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
