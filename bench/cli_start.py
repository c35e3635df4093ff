#!/usr/bin/env python3
"""Wall time of short `fiotray` commands as whole processes: what a person waits for.

In one run, alternating, N times each (median and max printed):
  * `python -c pass`: the interpreter's own start, the floor;
  * `fiotray --version`;
  * `fiotray factories` (a signed-in config, no network, no keyring call);
  * `fiotray status` (a tunnel configured, none up);
  * `fiotray devices` on a factory of D devices, L seconds added to every request, against
    the fake API in its own process, signed in with an API token kept in a private, real
    Secret Service (gnome-keyring on its own D-Bus), as the CLI runs for a user.

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
            subprocess.run(
                [
                    *fiotray,
                    "login",
                    "--factory",
                    info["factory"],
                    "--api-url",
                    info["url"],
                    "--api-token-stdin",
                    "--default",
                ],
                input=(token + "\n").encode(),
                env={**env, "PYTHONPATH": str(ROOT)},
                cwd=home,
                check=True,
                capture_output=True,
            )
            commands = {
                "python -c pass": [*py, "-c", "pass"],
                "fiotray --version": [*fiotray, "--version"],
                "fiotray factories": [*fiotray, "factories"],
                "fiotray status": [*fiotray, "status"],
                f"fiotray devices ({args.devices:,}, {args.latency * 1000:g} ms)": [
                    *fiotray,
                    "devices",
                ],
            }
            times: dict[tuple[str, str], list[float]] = {}
            for _ in range(args.runs):  # interleaved, so drift hits every figure alike
                for label, argv in commands.items():
                    for tree, path in trees.items():
                        run_env = {**env, "PYTHONPATH": str(path)}
                        times.setdefault((label, tree), []).append(timed(argv, run_env, home))
    finally:
        fake.terminate()
        fake.wait(timeout=10)

    print(f"Median (max) wall time of {args.runs} runs, ms; {os.cpu_count()} CPUs\n")
    print("| command | " + " | ".join(trees) + " |")
    print("|---|" + "---:|" * len(trees))
    for label in commands:
        cells = []
        for tree in trees:
            t = times[(label, tree)]
            cells.append(f"{statistics.median(t) * 1000:.0f} ({max(t) * 1000:.0f})")
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
