#!/usr/bin/env python3
"""fiotray-server with a factory of 10,000 VPN devices, and next to upstream's
factory-wireguard.py on a real WireGuard server.

Needs root: it builds the test VPN world (tests/vpn_world.py: wireguard-go in network
namespaces) with two throwaway system users, runs each daemon as a process in the
server's namespace against the fake API listening inside that namespace, and removes
all of it afterwards, also when something fails.

Part 1, scale (fiotray-server alone; --devices N, default 10,000): N VPN-enabled devices
with distinct keys and the addresses fioctl's allocator hands out (10.42.42.2 upward,
skipping those ending in .0). Measures the first sync (daemon start to N peers on the
interface), one device disabled (to its peer gone, and nothing else touched), the
daemon's memory and the API requests per sync.

Part 2, compare (--upstream FILE, upstream's factory-wireguard.py; never committed here):
the world's 3 devices and the laptop; each daemon in turn with the same interval. While
the server pings two devices and the laptop pings the server every 0.2 s, one device's
VPN is switched 3 times in the factory: the longest gap without a reply per change, the
laptop's peer after each change, and the time from the change to the server's peer.
Upstream talks only to https://api.foundries.io: inside the server's namespace that
name is 127.0.0.1 (/etc/netns/<ns>/hosts) where the fake API serves TLS on port 443
with a throwaway CA (REQUESTS_CA_BUNDLE).

Prints "figure: name value unit" lines as it goes, then Markdown tables for the README.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import hashlib
import itertools
import json
import math
import os
import platform
import random
import re
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fiotray.core import wgconf
from fiotray.demo.fakeapi import (
    VPN_HANDLER,
    WG_CLIENT_FILE,
    ConfigFile,
    FakeApiServer,
    FakeFactory,
)
from fiotray.demo.tlsca import make_tls_files
from fiotray.server.interface import BATCH
from tests.system_user import SystemUser, temporary_user
from tests.vpn_world import WG_ENV, VpnWorld, build_vpn_world, in_netns

REPO = Path(__file__).resolve().parents[1]
FACTORY = "benchfactory"  # upstream needs -n past 12 characters; we pass -n anyway
PING_INTERVAL = 0.2
# A change window lasts at least this long after the server applied the change, so a
# gap that starts late (a device's next keepalive into a dead session) is still seen.
MIN_WINDOW = 5.0
# Upstream's restart leaves devices to re-handshake on their own; how long we wait for
# that before calling a device cut off for good.
DEVICE_RECOVERY_TIMEOUT = 200.0
LAPTOP_RECOVERY_TIMEOUT = 30.0
# A trailing stretch without replies longer than this counts as "still cut off".
OPEN_GAP = 5 * PING_INTERVAL
WG_RUN_DIR = Path("/var/run/wireguard")
NETNS_ETC = Path("/etc/netns")
ETC_WIREGUARD = Path("/etc/wireguard")
TOOL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

T = TypeVar("T")


class BenchError(Exception):
    """The bench could not measure something; the message says what and why."""


# -- pure logic (tests/unit/test_bench_server.py) -------------------------------------


def device_addresses(server_address: str, count: int) -> list[str]:
    """The addresses fioctl's allocator hands to `count` devices enabled one after another
    on an empty factory: the first free one after the server's, never one ending in .0."""
    out = []
    host = int(IPv4Address(server_address)) + 1
    while len(out) < count:
        if host & 0xFF != 0:
            out.append(str(IPv4Address(host)))
        host += 1
    return out


@dataclass(frozen=True)
class Gap:
    seconds: float
    # No reply from the last one to the end of the window: still cut off then.
    open: bool

    def text(self) -> str:
        # Open: no reply since, so far this long (counted from the last reply).
        return f"cut off (≥ {self.seconds:.1f} s)" if self.open else f"{self.seconds:.2f} s"


def longest_gap(replies: Sequence[float], start: float, end: float) -> Gap:
    """The longest time without a reply within [start, end]: between consecutive replies
    (the last one before `start` included, so a gap already under way counts whole) and,
    when no reply came after the last one, from it to `end`."""
    before = [t for t in replies if t < start]
    inside = sorted(t for t in replies if start <= t <= end)
    points = [before[-1] if before else start, *inside]
    closed = max((b - a for a, b in itertools.pairwise(points)), default=0.0)
    trailing = end - points[-1]
    if trailing > closed and trailing > OPEN_GAP:
        return Gap(trailing, True)
    return Gap(max(closed, trailing), False)


@dataclass(frozen=True)
class UapiPeer:
    allowed_ips: tuple[str, ...]
    handshake: int  # unix seconds, 0: never


def parse_uapi(text: str) -> dict[str, UapiPeer] | None:
    """Peers (base64 public key -> state) from a wireguard-go `get=1` answer; None when the
    answer is not a complete, successful one."""
    lines = text.splitlines()
    if "errno=0" not in lines:
        return None
    peers: dict[str, UapiPeer] = {}
    key: str | None = None
    ips: list[str] = []
    handshake = 0

    def flush() -> None:
        if key is not None:
            peers[key] = UapiPeer(tuple(ips), handshake)

    for line in lines:
        name, _, value = line.partition("=")
        if name == "public_key":
            flush()
            key, ips, handshake = _b64(bytes.fromhex(value)), [], 0
        elif key is not None and name == "allowed_ip":
            ips.append(value)
        elif key is not None and name == "last_handshake_time_sec":
            handshake = int(value)
    flush()
    return peers


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# -- the machine ------------------------------------------------------------------------


def uapi_peers(ifname: str) -> dict[str, UapiPeer] | None:
    """The interface's peers straight from wireguard-go's control socket (~0.1 ms; a
    `wg show` process costs ~5 ms of a 2-core machine's time), or None while it is down.
    The socket path is machine-wide, so this works from the root namespace."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(WG_RUN_DIR / f"{ifname}.sock"))
            sock.sendall(b"get=1\n\n")
            data = b""
            while not data.endswith(b"\n\n"):
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    return parse_uapi(data.decode("ascii", "replace"))


def run_in_ns(
    ns: str, argv: Sequence[str], *, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["ip", "netns", "exec", ns, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    if check and result.returncode != 0:
        raise BenchError(f"{' '.join(argv)} in {ns} exited {result.returncode}: {result.stderr}")
    return result


def wg_dump(world: VpnWorld) -> tuple[str, dict[str, str]]:
    """`wg show IF dump`: the interface line, and public key -> the peer's whole line."""
    out = run_in_ns(world.server_ns, ["wg", "show", world.server_ifname, "dump"]).stdout
    first, *rest = out.splitlines()
    return first, {line.split("\t", 1)[0]: line for line in rest if line}


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) / 1024
    return out


def cpu_seconds(pid: int) -> float:
    """User + system time of a process and of the children it has waited for (wg, ip)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_until(
    predicate: Callable[[], T | None],
    what: str,
    timeout: float,
    *,
    step: float = 0.02,
    details: Callable[[], str] = lambda: "",
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"{what} within {timeout:g} s\n{details()}")
        time.sleep(step)


def wait_soft(predicate: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    """As wait_until, but a timeout is a result (False), not a failure."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def write_secret(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path


def set_device_vpn(factory: FakeFactory, device: str, pubkey: str, address: str, on: bool) -> None:
    """What `fioctl devices config wireguard DEV enable|disable` leaves in the factory."""
    value = f"address={address}\npubkey={pubkey}" + ("" if on else "\nenabled=0")
    reason = f"Set Wireguard configuration - {'enable' if on else 'disable'}"
    with factory.lock:
        factory.patch_config(
            factory.devices[device].configs,
            reason,
            [ConfigFile(WG_CLIENT_FILE, value, True, [VPN_HANDLER])],
        )


# -- watching a daemon --------------------------------------------------------------------


class LogTail:
    """A daemon's output line by line, each with the time it arrived: fiotray-server's log
    lines carry no time, upstream's whole seconds only."""

    def __init__(self, stream: IO[bytes], path: Path) -> None:
        self.path = path
        self._lines: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        with self.path.open("w") as out:
            for raw in stream:
                now = time.time()
                line = raw.decode("utf-8", "replace").rstrip("\n")
                with self._lock:
                    self._lines.append((now, line))
                out.write(f"{now:.3f} {line}\n")
                out.flush()

    def find(self, text: str, after: float = 0.0) -> float | None:
        """Arrival time of the first line containing `text` that came at or after `after`."""
        with self._lock:
            return next((t for t, line in self._lines if t >= after and text in line), None)

    def count(self, text: str) -> int:
        with self._lock:
            return sum(text in line for _, line in self._lines)

    def tail(self, limit: int = 3000) -> str:
        with self._lock:
            return "\n".join(line for _, line in self._lines)[-limit:]

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


class Process:
    """A daemon in the server's namespace. `pid` is the program itself: `ip netns exec`
    execs it in place, and under strace it is strace's one child."""

    def __init__(
        self,
        ns: str,
        argv: Sequence[str],
        env: dict[str, str],
        log: Path,
        trace: Path | None = None,
    ) -> None:
        full = ["ip", "netns", "exec", ns]
        if trace is not None:
            # Only execve stops the process (seccomp-bpf): the count of `wg` and `ip` runs
            # per sync at a few microseconds each, next to the milliseconds each run costs.
            full += ["strace", "-f", "--seccomp-bpf", "-qq", "-ttt", "-s", "64"]
            full += ["-e", "trace=execve", "-e", "signal=none", "-o", str(trace)]
        self.started = time.time()
        self.proc = subprocess.Popen(
            [*full, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd="/",
        )
        assert self.proc.stdout is not None
        self.log = LogTail(self.proc.stdout, log)
        self.pid = self.proc.pid if trace is None else self._traced_child()

    def _traced_child(self) -> int:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")

        def child() -> int | None:
            if self.proc.poll() is not None:
                raise BenchError(f"strace exited {self.proc.returncode}: {self.log.tail()}")
            with contextlib.suppress(OSError):
                pids = children.read_text().split()
                return int(pids[0]) if pids else None
            return None

        return wait_until(child, "strace started no program", 10, step=0.005)

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int | None:
        """SIGTERM to the program (both daemons end on it), SIGKILL after 15 s."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                for pid in {self.pid, self.proc.pid}:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.join(5)
        return self.proc.returncode


@dataclass(frozen=True)
class StatusWrite:
    written: float  # the file's mtime: when the daemon wrote it, right after a sync
    last_sync: dict[str, Any] | None
    last_error: str | None


class StatusWatcher:
    """Every status.json fiotray-server writes (one per sync), polled every 10 ms from a
    thread, so a sync a second is never missed while the bench does something else."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writes: list[StatusWrite] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        seen = None
        while not self._stop.wait(0.01):
            try:
                mtime = self.path.stat().st_mtime_ns
                if mtime == seen:
                    continue
                data = json.loads(self.path.read_text())
            except (OSError, ValueError):
                continue  # not there yet; it is replaced in one step, so never half read
            seen = mtime
            write = StatusWrite(mtime / 1e9, data.get("last_sync"), data.get("last_error"))
            with self._lock:
                self._writes.append(write)

    def writes(self) -> list[StatusWrite]:
        with self._lock:
            return list(self._writes)

    def wait_count(self, n: int, timeout: float) -> list[StatusWrite]:
        return wait_until(
            lambda: (w := self.writes()) and len(w) >= n and w, f"no status.json #{n}", timeout
        )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


@dataclass(frozen=True)
class Exec:
    at: float
    tool: str
    argv: tuple[str, ...]


_EXEC_RE = re.compile(r'^\d+\s+(\d+\.\d+)\s+execve\("([^"]*)", \[(.*)')


def read_trace(path: Path) -> list[Exec]:
    """The programs the daemon started, from strace's execve lines (args may be cut)."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        m = _EXEC_RE.match(line)
        if m:
            args = tuple(re.findall(r'"((?:[^"\\]|\\.)*)"', m[3].split("], ")[0]))
            out.append(Exec(float(m[1]), os.path.basename(m[2]), args))
    return out


def tally(execs: Sequence[Exec], start: float, end: float) -> Counter[str]:
    """`wg set`, `wg show`, `ip route` ... started within [start, end) (the daemon's own
    interpreter, strace's first execve, left out)."""
    return Counter(
        " ".join((e.tool, *e.argv[1:2]))
        for e in execs
        if start <= e.at < end and not e.tool.startswith("python")
    )


class Pinger:
    """`ping -D -i 0.2` from a namespace; the times of its replies."""

    def __init__(self, ns: str, target: str, log: Path) -> None:
        self.log = log
        self.target = target
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, "ping", "-n", "-D", "-i", str(PING_INTERVAL), target],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def replies(self) -> list[float]:
        times = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("[") and "bytes from" in line:
                times.append(float(line[1 : line.index("]")]))
        return times

    def replied_after(self, t: float) -> bool:
        return any(r > t for r in self.replies())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# -- output ---------------------------------------------------------------------------------


class Figures:
    def __init__(self) -> None:
        self.values: dict[str, tuple[Any, str]] = {}

    def add(self, name: str, value: Any, unit: str = "") -> Any:
        self.values[name] = (value, unit)
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"figure: {name} {shown} {unit}".rstrip(), flush=True)
        return value


def note(text: str) -> None:
    print(f"# {text}", flush=True)


# -- part 1: scale --------------------------------------------------------------------------


def fiotray_env(**extra: str) -> dict[str, str]:
    # PYTHONPATH: the daemon runs this checkout's fiotray, not whatever the venv installed.
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


def fiotray_cli(world: VpnWorld, state: Path, *args: str) -> list[str]:
    argv = [sys.executable, "-m", "fiotray.server.cli", "-n", world.server_ifname]
    return [*argv, "--state-dir", str(state), *args]


def scale(world: VpnWorld, args: argparse.Namespace, fig: Figures, workdir: Path) -> None:
    count, interval = args.devices, args.interval
    server = world.server_vpn_address
    factory = FakeFactory(FACTORY)
    token = secrets.token_urlsafe(24)
    factory.add_api_token(token)
    factory.set_wireguard_server(
        endpoint=world.server_endpoint, server_address=server, pubkey=world.server_public_key
    )
    rng = random.Random(args.seed)
    keys: dict[str, None] = {}  # insertion-ordered set: distinct keys, reproducible
    while len(keys) < count:
        keys[_b64(rng.randbytes(32))] = None
    addresses = device_addresses(server, count)
    window_end = wgconf.device_window(server)[1]
    beyond = sum(int(IPv4Address(a)) > window_end for a in addresses)
    subnet = wgconf.vpn_subnet(server)
    # fiotray-server manages the peers of its VPN network (the smallest one holding fioctl's
    # whole window) and hands engineers addresses from its top: the devices stay below.
    lowest_engineer = min(int(IPv4Address(a)) for a in wgconf.engineer_addresses(server))
    last = IPv4Address(addresses[-1])
    if last not in subnet or int(last) >= lowest_engineer:
        raise BenchError(f"{count} devices do not fit {subnet} below the engineers' addresses")
    names = [f"device-{i:05d}" for i in range(count)]
    devices = list(zip(names, keys, addresses, strict=True))
    for name, key, address in devices:
        factory.add_device(name, wg_pubkey=key, vpn_address=address)
    note(
        f"{count} VPN devices, {addresses[0]} .. {addresses[-1]}; {beyond} of them past the "
        f"last address fioctl's allocator reaches ({IPv4Address(window_end)}, server + 9999)"
    )

    with in_netns(world.server_ns):  # the API answers at 127.0.0.1 in the server's netns
        api = FakeApiServer(factory, sock=socket.create_server(("127.0.0.1", 0))).start()
    state, hosts = workdir / "state", workdir / "hosts"
    hosts.write_text("127.0.0.1\tlocalhost\n")
    token_file = write_secret(workdir / "token", token + "\n")
    trace = None if args.no_strace else workdir / "daemon.strace"
    argv = fiotray_cli(world, state, "-v", "-f", FACTORY, "daemon", "--interval", str(interval))
    argv += ["--api-url", api.url, "--apitoken-file", str(token_file), "--hosts-file", str(hosts)]
    note("daemon: ip netns exec SRV " + shlex.join(argv))
    watcher = StatusWatcher(state / "status.json")
    daemon = Process(world.server_ns, argv, fiotray_env(), workdir / "daemon.log", trace)
    try:
        _scale_measure(world, daemon, watcher, api, factory, devices, args, fig, trace)
    finally:
        watcher.stop()
        code = daemon.stop()
        api.stop()
    if code != 0:
        raise BenchError(f"the daemon exited {code}: {daemon.log.tail()}")
    if api.handler_errors:
        raise BenchError(f"the fake API failed: {api.handler_errors[0]}")


def _scale_measure(
    world: VpnWorld,
    daemon: Process,
    watcher: StatusWatcher,
    api: FakeApiServer,
    factory: FakeFactory,
    devices: list[tuple[str, str, str]],
    args: argparse.Namespace,
    fig: Figures,
    trace: Path | None,
) -> None:
    count, interval = args.devices, args.interval
    why = daemon.log.tail

    # (a) the first sync: status.json says N peers, and the interface has them.
    def first_done() -> StatusWrite | None:
        if not daemon.running():
            raise BenchError(f"the daemon exited {daemon.proc.returncode}: {why()}")
        return next((w for w in watcher.writes() if (w.last_sync or {}).get("peers")), None)

    first = wait_until(first_done, "no first sync", 600, details=why)
    seen_at = time.time()
    mem = memory_mib(daemon.pid)
    if first.last_error or (first.last_sync or {}).get("peers") != count:
        raise BenchError(f"first sync: {first}")
    started = time.perf_counter()
    _, peers = wg_dump(world)
    dump_s = time.perf_counter() - started
    if set(peers) != {key for _, key, _ in devices}:
        raise BenchError(f"the interface has {len(peers)} peers, not the {count} devices")
    t_api = daemon.log.find("wireguard-ips/")
    t_applied = daemon.log.find(f"peers: {count} added")
    fig.add("scale_devices", count)
    fig.add("scale_first_sync_s", first.written - daemon.started, "s")
    note(f"(status.json seen {seen_at - first.written:.3f} s after it was written)")
    if t_api is not None and t_applied is not None:
        fig.add("scale_first_sync_start_to_api_answer_s", t_api - daemon.started, "s")
        fig.add("scale_first_sync_api_answer_to_applied_s", t_applied - t_api, "s")
        fig.add("scale_first_sync_applied_to_status_s", first.written - t_applied, "s")
    fig.add("scale_interface_peers", len(peers))
    fig.add("scale_wg_show_dump_s", dump_s, "s")
    fig.add("scale_rss_after_first_sync_mib", mem["VmRSS"], "MiB")
    fig.add("scale_hwm_after_first_sync_mib", mem["VmHWM"], "MiB")
    if trace is not None:
        first_sync = tally(read_trace(trace), 0, first.written)
        fig.add("scale_first_sync_wg_set_commands", first_sync["wg set"])
        note(f"first sync ran {dict(first_sync)}; expected wg set: {math.ceil(count / BATCH)}")

    # (d) steady syncs: requests, duration and CPU of a sync that changes nothing.
    n = len(watcher.writes())
    base = watcher.wait_count(n + 1, interval + 60)
    requests0, cpu0 = len(api.requests), cpu_seconds(daemon.pid)
    steady = watcher.wait_count(len(base) + args.steady_syncs, (interval + 60) * args.steady_syncs)
    requests1, cpu1 = len(api.requests), cpu_seconds(daemon.pid)
    window = steady[len(base) - 1 :]
    for w in window[1:]:
        sync = w.last_sync or {}
        if w.last_error or sync.get("added") or sync.get("changed") or sync.get("removed"):
            raise BenchError(f"a steady sync was not a no-op: {w}")
    syncs = len(window) - 1
    kinds = Counter(f"{r.method} {r.path}" for r in api.requests[requests0:requests1])
    durations = [b.written - a.written - interval for a, b in itertools.pairwise(window)]
    fig.add("scale_api_requests_per_sync", (requests1 - requests0) / syncs)
    note(f"requests over {syncs} syncs: {dict(kinds)}")
    fig.add("scale_noop_sync_s", statistics.median(durations), "s")
    note("(a sync's duration: from its start, the previous status.json + the interval, to its")
    note(" own status.json; no-op syncs: " + ", ".join(f"{d:.3f}" for d in durations) + ")")
    fig.add("scale_noop_sync_cpu_s", (cpu1 - cpu0) / syncs, "s")
    mem = memory_mib(daemon.pid)
    fig.add("scale_rss_after_steady_syncs_mib", mem["VmRSS"], "MiB")
    if trace is not None:
        per_sync = tally(read_trace(trace), window[0].written, window[-1].written)
        note(f"programs per no-op sync: { {k: v / syncs for k, v in per_sync.items()} }")

    # (b) one device leaves the VPN: its peer alone goes, at the next sync.
    name, key, address = devices[count // 2]
    head0, before = wg_dump(world)
    n = len(watcher.writes())
    # Right after a sync ended (we just saw its status.json): the change waits a whole
    # interval for the next sync, the worst case; the sync's own share is measured apart.
    changed_at = time.time()
    set_device_vpn(factory, name, key, address, on=False)
    removed_at = wait_until(
        lambda: daemon.log.find("peers: 0 added, 0 changed, 1 removed", after=changed_at),
        "the peer stayed",
        60,
        details=why,
    )

    def applying() -> tuple[StatusWrite, StatusWrite] | None:
        writes = watcher.writes()
        for prev, w in itertools.pairwise(writes[n - 1 :]):
            if (w.last_sync or {}).get("removed"):
                return prev, w
        return None

    prev, done = wait_until(applying, "no status.json after the change", 60)
    head1, after = wg_dump(world)
    sync = done.last_sync or {}
    touched = [k for k in after if after[k] != before.get(k)]
    if key in after or set(after) != set(before) - {key} or head1 != head0:
        raise BenchError("the interface did not lose exactly the disabled device's peer")
    if sync.get("removed") != [key] or sync.get("added") or sync.get("changed"):
        raise BenchError(f"the change's sync reported more than the one removal: {sync}")
    sync_start = prev.written + interval
    fig.add("scale_change_interval_s", interval, "s")
    fig.add("scale_change_to_peer_removed_s", removed_at - changed_at, "s")
    fig.add("scale_change_sync_s", done.written - sync_start, "s")
    fig.add("scale_change_sync_start_to_peer_removed_s", removed_at - sync_start, "s")
    fig.add("scale_change_other_peers_touched", len(touched))
    note(f"that sync's status.json: added {sync.get('added')}, changed {sync.get('changed')}, ")
    note(f"removed {sync.get('removed')} (the disabled device's key), peers {sync.get('peers')}")
    if trace is not None:
        ran = tally(read_trace(trace), prev.written, done.written)
        note(f"programs that sync ran: {dict(ran)}")
    mem = memory_mib(daemon.pid)
    fig.add("scale_rss_end_mib", mem["VmRSS"], "MiB")
    fig.add("scale_hwm_end_mib", mem["VmHWM"], "MiB")


# -- part 2: fiotray-server next to upstream -------------------------------------------------


class Kind(Protocol):
    label: str

    def start(self) -> Process: ...
    def synced(self) -> bool: ...
    def admit(self, public_key: str) -> str: ...
    def after_laptop_up(self, fig: Figures, prefix: str) -> None: ...
    def cleanup(self) -> None: ...


@dataclass
class FiotrayKind:
    world: VpnWorld
    workdir: Path
    token_file: Path
    ca: Path
    interval: int
    label: str = "fiotray-server"
    admitted: bool = False

    @property
    def state(self) -> Path:
        return self.workdir / "state"

    def start(self) -> Process:
        argv = fiotray_cli(self.world, self.state, "-v", "-f", FACTORY, "daemon")
        argv += ["--interval", str(self.interval), "--api-url", "https://api.foundries.io"]
        argv += ["--apitoken-file", str(self.token_file)]
        # Not the namespace's /etc/hosts: fiotray-server replaces the file in one step (a
        # temporary file beside it renamed over it), and in the namespace only the hosts
        # file is bind-mounted: its directory is the machine's real /etc.
        argv += ["--hosts-file", str(self.workdir / "hosts")]
        note("fiotray-server: ip netns exec SRV " + shlex.join(argv))
        env = fiotray_env(CACERT=str(self.ca))
        return Process(self.world.server_ns, argv, env, self.workdir / "daemon.log")

    def synced(self) -> bool:
        path = self.state / "status.json"
        with contextlib.suppress(OSError, ValueError):
            return bool(json.loads(path.read_text()).get("last_sync"))
        return False

    def admit(self, public_key: str) -> str:
        add = fiotray_cli(self.world, self.state, "peers", "add", "laptop", public_key)
        note("admin: fiotray-server " + shlex.join(add[3:]))
        run_in_ns(self.world.server_ns, add, env=fiotray_env())
        self.admitted = True
        listed = fiotray_cli(self.world, self.state, "peers", "list", "--json")
        rows = json.loads(run_in_ns(self.world.server_ns, listed, env=fiotray_env()).stdout)
        return str(next(r["address"] for r in rows if r["name"] == "laptop"))

    def after_laptop_up(self, fig: Figures, prefix: str) -> None:
        pass

    def cleanup(self) -> None:
        if self.admitted:
            remove = fiotray_cli(self.world, self.state, "peers", "remove", "laptop")
            run_in_ns(self.world.server_ns, remove, env=fiotray_env(), check=False)


@dataclass
class UpstreamKind:
    world: VpnWorld
    workdir: Path
    script: Path
    token: str
    ca: Path
    interval: int
    label: str = "upstream"

    @property
    def conf(self) -> Path:
        return ETC_WIREGUARD / f"{self.world.server_ifname}.conf"

    @property
    def netns_hosts(self) -> Path:
        return NETNS_ETC / self.world.server_ns / "hosts"

    def start(self) -> Process:
        # -k: the world's server key, so devices keep their configuration across its
        # wg-quick down/up (as on a real server, whose key never changes).
        key = self.world.root / "srv" / "wg.key"
        argv = ["/usr/bin/python3", str(self.script), "-n", self.world.server_ifname]
        argv += ["-f", FACTORY, "-t", self.token, "-k", str(key)]
        argv += ["daemon", "-i", str(self.interval)]
        shown = shlex.join(argv).replace(self.token, "TOKEN")
        note("upstream: ip netns exec SRV " + shown)
        env = {"PATH": TOOL_PATH, "LANG": "C.UTF-8", **WG_ENV, "REQUESTS_CA_BUNDLE": str(self.ca)}
        return Process(self.world.server_ns, argv, env, self.workdir / "daemon.log")

    def synced(self) -> bool:
        # Its loop: config file, wg-quick down + up, then the hosts block: the last step.
        with contextlib.suppress(OSError):
            return (
                self.conf.exists() and f"## END Factory({FACTORY})" in self.netns_hosts.read_text()
            )
        return False

    def admit(self, public_key: str) -> str:
        address = self.world.laptop_vpn_address
        argv = ["wg", "set", self.world.server_ifname, "peer", public_key]
        argv += ["allowed-ips", f"{address}/32"]
        note("admin: " + shlex.join(argv))
        run_in_ns(self.world.server_ns, argv)
        return address

    def after_laptop_up(self, fig: Figures, prefix: str) -> None:
        """Upstream's interface address is a /32 and wg-quick routes only the peers of its
        config: the laptop's replies may have no route. Measured, then fixed as an admin would."""
        alone = self._laptop_pings()
        fig.add(f"{prefix}_laptop_replies_with_wg_set_alone", alone, "of 5")
        if alone == 0:
            route = ["ip", "route", "replace", f"{self.world.laptop_vpn_address}/32"]
            route += ["dev", self.world.server_ifname]
            note("admin, since the laptop got no reply: " + shlex.join(route))
            run_in_ns(self.world.server_ns, route)
            fig.add(f"{prefix}_laptop_replies_with_route", self._laptop_pings(), "of 5")

    def _laptop_pings(self) -> int:
        argv = ["ping", "-n", "-c", "5", "-i", "0.2", "-W", "1", self.world.server_vpn_address]
        out = run_in_ns(self.world.laptop_ns, argv, check=False).stdout
        return out.count("bytes from")

    def cleanup(self) -> None:
        if (WG_RUN_DIR / f"{self.world.server_ifname}.sock").exists():
            run_in_ns(
                self.world.server_ns,
                ["wg-quick", "down", self.world.server_ifname],
                env=WG_ENV,
                check=False,
            )
        self.conf.unlink(missing_ok=True)


@dataclass
class ChangeWindow:
    on: bool
    changed: float
    applied: float
    end: float
    laptop_present: bool
    devices_back: bool


def laptop_up(world: VpnWorld, private: str, address: str, workdir: Path) -> Path:
    """A plain wg-quick tunnel from the laptop's namespace to the server."""
    conf = workdir / f"{world.laptop_ifname}.conf"
    write_secret(
        conf,
        f"[Interface]\nPrivateKey = {private}\nAddress = {address}/32\n\n"
        f"[Peer]\nPublicKey = {world.server_public_key}\nEndpoint = {world.server_endpoint}\n"
        f"AllowedIPs = {world.vpn_subnet}\nPersistentKeepalive = 25\n",
    )
    run_in_ns(world.laptop_ns, ["wg-quick", "up", str(conf)], env=WG_ENV)
    return conf


def handshaking(ifname: str, keys: Sequence[str]) -> bool:
    """Every one of these peers has made a handshake with the interface."""
    peers = uapi_peers(ifname) or {}
    return all(key in peers and peers[key].handshake > 0 for key in keys)


def compare_phase(
    world: VpnWorld,
    kind: Kind,
    factory: FakeFactory,
    args: argparse.Namespace,
    fig: Figures,
    workdir: Path,
) -> dict[str, Any]:
    prefix = kind_dir(kind)
    toggled, pinged = world.devices[-1], world.devices[:-1]
    ifname = world.server_ifname
    device_keys = [d.wg_public_key for d in world.devices]
    for d in world.devices:  # every device in the VPN at the start
        set_device_vpn(factory, d.name, d.wg_public_key, d.vpn_address, on=True)
    before = uapi_peers(ifname) or {}
    daemon = kind.start()
    pingers: list[Pinger] = []
    windows: list[ChangeWindow] = []
    conf: Path | None = None
    result: dict[str, Any] = {"label": kind.label}
    try:
        wait_until(
            lambda: kind.synced() or _dead(daemon), "no first sync", 120, details=daemon.log.tail
        )
        result["first_sync_s"] = fig.add(
            f"{prefix}_start_to_first_sync_s", time.time() - daemon.started, "s"
        )
        # After a restart of the interface a device is back only once it handshakes again,
        # and the server cannot start that (its peers have no endpoint): a device that sent
        # traffic just before tries after ~15 s without an answer, an idle one only at its
        # own rekey, up to 2 minutes. The first phase's pings leave the pinged devices in the
        # first case and the toggled one in the second.
        back: dict[str, float] = {}

        def all_back() -> bool:
            peers = uapi_peers(ifname) or {}
            for d in world.devices:
                p = peers.get(d.wg_public_key)
                if d.name not in back and p is not None and p.handshake > 0:
                    back[d.name] = time.time() - daemon.started
            return len(back) == len(world.devices)

        wait_soft(all_back, DEVICE_RECOVERY_TIMEOUT, 0.05)
        now = uapi_peers(ifname) or {}
        # The same handshake as before the daemon started: the session went on.
        kept = all(k in before and now.get(k) == before[k] for k in device_keys)
        result["start_sessions_kept"] = fig.add(f"{prefix}_start_device_sessions_kept", kept)
        for d in world.devices:
            fig.add(f"{prefix}_start_to_{d.name}_handshaking_s", back.get(d.name, math.inf), "s")
        result["start_to_devices_back_s"] = {
            d.name: back.get(d.name, math.inf) for d in world.devices
        }

        private = wgconf.generate_private_key()
        public = wgconf.public_key(private)
        address = kind.admit(public)
        conf = laptop_up(world, private, address, workdir)
        laptop_if, server_key = world.laptop_ifname, world.server_public_key
        wait_until(lambda: handshaking(laptop_if, [server_key]), "no laptop handshake", 20)
        kind.after_laptop_up(fig, prefix)
        pingers = [
            Pinger(world.server_ns, d.vpn_address, workdir / f"{d.name}.ping") for d in pinged
        ]
        laptop_pinger = Pinger(world.laptop_ns, world.server_vpn_address, workdir / "laptop.ping")
        pingers.append(laptop_pinger)
        wait_until(
            lambda: all(len(p.replies()) >= 3 for p in pingers), "no ping replies", 60, step=0.1
        )
        time.sleep(1)

        on = True
        for _ in range(args.changes):
            on = not on
            changed = time.time()
            set_device_vpn(factory, toggled.name, toggled.wg_public_key, toggled.vpn_address, on)

            def applied(on: bool = on) -> float | None:
                peers = uapi_peers(ifname)
                # Upstream's wg-quick up makes the interface before it sets the peers: the
                # change counts once the other devices are on the interface too.
                if peers is None or not all(d.wg_public_key in peers for d in pinged):
                    return None
                return time.time() if (toggled.wg_public_key in peers) == on else None

            applied_at = wait_until(applied, "the change never reached the server", 60, step=0.01)
            devices_back = wait_soft(
                lambda t=applied_at: all(p.replied_after(t) for p in pingers[:-1]),
                DEVICE_RECOVERY_TIMEOUT,
            )
            if public in (uapi_peers(ifname) or {}):
                wait_soft(
                    lambda t=applied_at: laptop_pinger.replied_after(t), LAPTOP_RECOVERY_TIMEOUT
                )
            time.sleep(max(0.0, applied_at + MIN_WINDOW - time.time()) + 1.0)
            present = public in (uapi_peers(ifname) or {})
            windows.append(
                ChangeWindow(on, changed, applied_at, time.time(), present, devices_back)
            )
        result["daemon_alive"] = fig.add(f"{prefix}_daemon_running_at_end", daemon.running())
    finally:
        for p in pingers:
            p.stop()
        code = daemon.stop()
        kind.cleanup()
        if conf is not None:
            run_in_ns(world.laptop_ns, ["wg-quick", "down", str(conf)], env=WG_ENV, check=False)
            conf.unlink(missing_ok=True)
    note(f"{kind.label} exited {code}")
    # wg-quick's own trace ("[#] ip link delete dev IF") is in upstream's output.
    fig.add(f"{prefix}_interface_deleted_times", daemon.log.count("[#] ip link delete"))

    replies = [p.replies() for p in pingers]
    device_gaps, laptop_gaps = [], []
    for i, w in enumerate(windows, 1):
        gaps = [longest_gap(r, w.changed, w.end) for r in replies[:-1]]
        worst = max(gaps, key=lambda g: (g.open, g.seconds))
        laptop = longest_gap(replies[-1], w.changed, w.end)
        device_gaps.append(worst)
        laptop_gaps.append(laptop)
        what = "enable" if w.on else "disable"
        fig.add(f"{prefix}_change{i}_{what}_to_server_s", w.applied - w.changed, "s")
        fig.add(f"{prefix}_change{i}_device_gap_s", worst.seconds, "s" + " (open)" * worst.open)
        fig.add(f"{prefix}_change{i}_laptop_gap_s", laptop.seconds, "s" + " (open)" * laptop.open)
        fig.add(f"{prefix}_change{i}_laptop_peer_present", w.laptop_present)
        fig.add(f"{prefix}_change{i}_devices_back", w.devices_back)
    result.update(windows=windows, device_gaps=device_gaps, laptop_gaps=laptop_gaps)
    return result


def _dead(daemon: Process) -> bool:
    if not daemon.running():
        raise BenchError(f"the daemon exited {daemon.proc.returncode}: {daemon.log.tail()}")
    return False


def compare(world: VpnWorld, args: argparse.Namespace, fig: Figures, workdir: Path) -> list[dict]:
    tls = make_tls_files(workdir / "tls", ("api.foundries.io",))
    # `ip netns exec` bind-mounts this file over /etc/hosts: api.foundries.io is the fake
    # API for both daemons, and upstream's hosts block lands here, not in the real one.
    netns_hosts = NETNS_ETC / world.server_ns / "hosts"
    netns_hosts.write_text(netns_hosts.read_text() + "127.0.0.1\tapi.foundries.io\n")
    factory = FakeFactory(FACTORY)
    token = secrets.token_urlsafe(24)
    factory.add_api_token(token)
    factory.set_wireguard_server(
        endpoint=world.server_endpoint,
        server_address=world.server_vpn_address,
        pubkey=world.server_public_key,
    )
    for d in world.devices:
        factory.add_device(d.name, wg_pubkey=d.wg_public_key, vpn_address=d.vpn_address)
    with in_netns(world.server_ns):
        api = FakeApiServer(factory, host="127.0.0.1", port=443, tls=tls).start()
    made_etc_wireguard = False
    results = []
    try:
        probe = "import requests,sys; print(requests.get(sys.argv[1], timeout=10).status_code)"
        url = f"https://api.foundries.io/ota/factories/{FACTORY}/wireguard-ips/"
        answer = run_in_ns(
            world.server_ns,
            ["/usr/bin/python3", "-c", probe, url],
            env={"REQUESTS_CA_BUNDLE": str(tls.ca_cert)},
        ).stdout.strip()
        note(f"api.foundries.io from the server's namespace, without a token: HTTP {answer}")
        fiotray_dir = workdir / "fiotray"
        fiotray_dir.mkdir()
        token_file = write_secret(fiotray_dir / "token", token + "\n")
        kinds: list[Kind] = [
            FiotrayKind(world, fiotray_dir, token_file, tls.ca_cert, args.compare_interval)
        ]
        if args.upstream is not None:
            if not ETC_WIREGUARD.exists():
                ETC_WIREGUARD.mkdir(mode=0o700)
                made_etc_wireguard = True
            upstream_dir = workdir / "upstream"
            upstream_dir.mkdir()
            kinds.append(
                UpstreamKind(
                    world, upstream_dir, args.upstream, token, tls.ca_cert, args.compare_interval
                )
            )
        for kind in kinds:
            note(f"--- {kind.label} ---")
            phase_dir = workdir / kind_dir(kind)
            results.append(compare_phase(world, kind, factory, args, fig, phase_dir))
        if args.upstream is not None:
            text = netns_hosts.read_text()
            block = f"## Factory({FACTORY}) VPN Lookups" in text
            fig.add("upstream_hosts_block_in_netns_hosts_file", block)
            note("the namespace's hosts file after upstream:\n" + text.rstrip())
    finally:
        api.stop()
        # Upstream's config file, also when its phase failed before its own cleanup.
        (ETC_WIREGUARD / f"{world.server_ifname}.conf").unlink(missing_ok=True)
        if made_etc_wireguard:
            with contextlib.suppress(OSError):
                ETC_WIREGUARD.rmdir()
    if api.handler_errors:
        raise BenchError(f"the fake API failed: {api.handler_errors[0]}")
    return results


def kind_dir(kind: Kind) -> str:
    return "fiotray" if kind.label == "fiotray-server" else "upstream"


# -- tables -----------------------------------------------------------------------------------


def scale_table(fig: Figures, args: argparse.Namespace) -> str:
    v = {k: value for k, (value, _) in fig.values.items()}
    n = v["scale_devices"]
    rows = [
        (
            "first sync: daemon start → all peers on the interface",
            f"{v['scale_first_sync_s']:.2f} s",
        ),
    ]
    if "scale_first_sync_start_to_api_answer_s" in v:
        rows += [
            (
                "… of which start → API answer (interpreter, imports, one GET)",
                f"{v['scale_first_sync_start_to_api_answer_s']:.2f} s",
            ),
            (
                "… API answer → peers applied",
                f"{v['scale_first_sync_api_answer_to_applied_s']:.2f} s",
            ),
            (
                "… peers applied → hosts file and status.json written",
                f"{v['scale_first_sync_applied_to_status_s']:.2f} s",
            ),
        ]
    if "scale_first_sync_wg_set_commands" in v:
        rows.append(
            ("`wg set` commands in the first sync", str(v["scale_first_sync_wg_set_commands"]))
        )
    rows += [
        (
            f"one device disabled just after a sync → its peer gone (waits the whole "
            f"{args.interval:g} s interval)",
            f"{v['scale_change_to_peer_removed_s']:.2f} s",
        ),
        (
            "… that sync: start → peer removed / whole sync",
            f"{v['scale_change_sync_start_to_peer_removed_s']:.3f} s / "
            f"{v['scale_change_sync_s']:.3f} s",
        ),
        ("… other peers touched", str(v["scale_change_other_peers_touched"])),
        ("a sync that changes nothing (median)", f"{v['scale_noop_sync_s']:.3f} s"),
        (
            "CPU per sync that changes nothing (daemon + its `wg`/`ip`)",
            f"{v['scale_noop_sync_cpu_s']:.3f} s",
        ),
        ("API requests per sync", f"{v['scale_api_requests_per_sync']:g}"),
        (
            "daemon memory: RSS after the first sync / after the no-op syncs / at the end (peak)",
            f"{v['scale_rss_after_first_sync_mib']:.1f} / "
            f"{v['scale_rss_after_steady_syncs_mib']:.1f} / {v['scale_rss_end_mib']:.1f} MiB "
            f"({v['scale_hwm_end_mib']:.1f} MiB)",
        ),
        ("`wg show IF dump` of all peers (for scale)", f"{v['scale_wg_show_dump_s']:.3f} s"),
    ]
    head = f"| fiotray-server, {n:,} VPN devices | result |\n| --- | --- |\n"
    return head + "\n".join(f"| {a} | {b} |" for a, b in rows)


def compare_table(results: list[dict], args: argparse.Namespace) -> str:
    def col(r: dict, what: str) -> str:
        w: list[ChangeWindow] = r["windows"]
        if what == "first":
            return f"{r['first_sync_s']:.2f} s"
        if what == "sessions":
            if r["start_sessions_kept"]:
                return "kept (same handshake as before)"
            back = ", ".join(
                f"{name} {'never' if math.isinf(t) else f'{t:.0f} s'}"
                for name, t in r["start_to_devices_back_s"].items()
            )
            return f"restarted; handshaking again after: {back}"
        if what == "device":
            return " / ".join(g.text() for g in r["device_gaps"])
        if what == "laptop":
            return " / ".join(g.text() for g in r["laptop_gaps"])
        if what == "present":
            return " / ".join("yes" if x.laptop_present else "**no**" for x in w)
        if what == "enable":
            return ", ".join(f"{x.applied - x.changed:.2f} s" for x in w if x.on) or "—"
        if what == "disable":
            return ", ".join(f"{x.applied - x.changed:.2f} s" for x in w if not x.on) or "—"
        raise ValueError(what)

    rows = [
        ("daemon start → first sync done", "first"),
        ("devices' sessions at the daemon's start", "sessions"),
        ("longest gap, server → devices (ping every 0.2 s), per change", "device"),
        ("longest gap, laptop → server (ping every 0.2 s), per change", "laptop"),
        ("laptop's peer still there after each change", "present"),
        ("device enabled in the factory → its peer on the server", "enable"),
        ("device disabled in the factory → its peer gone", "disable"),
    ]
    names = [r["label"] for r in results]
    head = (
        f"| {args.changes} device VPN changes, interval {args.compare_interval} s | "
        + " | ".join(names)
        + " |\n| --- |"
        + " --- |" * len(names)
        + "\n"
    )
    return head + "\n".join(
        f"| {label} | " + " | ".join(col(r, what) for r in results) + " |" for label, what in rows
    )


# -- main --------------------------------------------------------------------------------------


@contextlib.contextmanager
def users() -> Iterator[tuple[SystemUser, SystemUser]]:
    """Two throwaway users the VPN world needs, with names of our own: a test session running
    at the same time keeps its `fiotray-t` and `fio`, and we never remove those."""
    tag = secrets.token_hex(2)
    with temporary_user(f"fsb{tag}a") as app, temporary_user(f"fsb{tag}d") as device:
        yield app, device


def machine_note() -> str:
    load = Path("/proc/loadavg").read_text().split()[:3]
    return (
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"{platform.platform()}, Python {platform.python_version()}, load {' '.join(load)}; "
        "wireguard-go in network namespaces (no kernel module)"
    )


def run_parts(
    args: argparse.Namespace, app: SystemUser, device: SystemUser, fig: Figures, workdir: Path
) -> list[dict]:
    """Each part in a world of its own, built and removed here."""
    results: list[dict] = []
    if args.part in ("all", "scale"):
        note(f"=== part 1: fiotray-server with {args.devices:,} devices ===")
        (workdir / "scale").mkdir()
        with build_vpn_world(app, device, device_names=()) as world:
            note(f"world {world.prefix}: server namespace {world.server_ns}")
            scale(world, args, fig, workdir / "scale")
    if args.part in ("all", "compare"):
        note("=== part 2: device VPN changes, fiotray-server next to upstream ===")
        (workdir / "compare").mkdir()
        names = ("device-1", "device-2", "device-3")
        with build_vpn_world(app, device, device_names=names) as world:
            note(f"world {world.prefix}: server namespace {world.server_ns}")
            results = compare(world, args, fig, workdir / "compare")
    return results


def keep_logs(workdir: Path, target: Path) -> None:
    """The daemons' output, their strace and the ping logs, out of the temp dir before it
    goes (also after a failure, when they matter most)."""
    target.mkdir(parents=True, exist_ok=True)
    for path in workdir.rglob("*"):
        if path.suffix in (".log", ".ping", ".strace") and path.is_file():
            (target / "-".join(path.relative_to(workdir).parts)).write_bytes(path.read_bytes())
    note(f"logs copied to {target}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "scale", "compare"), default="all")
    parser.add_argument("--devices", type=int, default=10_000, help="part 1 (10000)")
    parser.add_argument("--interval", type=float, default=1.0, help="part 1's sync interval")
    parser.add_argument("--steady-syncs", type=int, default=5, help="part 1: no-op syncs")
    parser.add_argument("--seed", type=int, default=1, help="part 1: of the devices' keys")
    parser.add_argument(
        "--no-strace",
        action="store_true",
        help="part 1: run the daemon bare (by default strace counts the `wg`/`ip` it runs)",
    )
    parser.add_argument(
        "--upstream",
        type=Path,
        help="part 2: upstream's factory-wireguard.py (without it, fiotray-server alone)",
    )
    parser.add_argument(
        "--compare-interval", type=int, default=1, help="part 2, both daemons (upstream: int s)"
    )
    parser.add_argument("--changes", type=int, default=3, help="part 2: device VPN changes")
    parser.add_argument("--logs", type=Path, help="copy the daemons' and pings' logs here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/server.py needs root (network namespaces, users, wg)")
    if args.upstream is not None:
        args.upstream = args.upstream.resolve()
        if not args.upstream.is_file():
            raise SystemExit(f"{args.upstream} is not a file")
    if not args.no_strace and shutil.which("strace") is None:
        note("strace not found: the daemon runs bare, without command counts")
        args.no_strace = True
    # SIGTERM unwinds like Ctrl-C, so every namespace, process and file is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    print("command: " + shlex.join([sys.executable, *sys.argv]))
    print("machine: " + machine_note(), flush=True)
    hosts_sum = hashlib.sha256(Path("/etc/hosts").read_bytes()).hexdigest()
    fig = Figures()
    results: list[dict] = []
    wall = time.monotonic()
    try:
        with users() as (app, device), tempfile.TemporaryDirectory(prefix="fsb-") as tmp:
            workdir = Path(tmp)
            try:
                results = run_parts(args, app, device, fig, workdir)
            finally:
                if args.logs is not None:
                    keep_logs(workdir, args.logs)
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        same = hashlib.sha256(Path("/etc/hosts").read_bytes()).hexdigest() == hosts_sum
        note(f"the machine's /etc/hosts unchanged: {same}")
        left = sorted(str(p) for p in ETC_WIREGUARD.glob("fvw*")) if ETC_WIREGUARD.exists() else []
        if left:
            note(f"left in {ETC_WIREGUARD}: {left}")
    fig.add("bench_wall_s", time.monotonic() - wall, "s")
    print()
    print("machine: " + machine_note())
    if "scale_devices" in fig.values:
        print()
        print(scale_table(fig, args))
    if results:
        print()
        print(compare_table(results, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
