"""pytest plugin: a little FoundriesFactory VPN world in network namespaces.

What it builds (all names start with a random ``fvw<4 hex>`` prefix)::

    <p>-net   "internet": bridge br0, underlay 192.0.2.0/24 (TEST-NET-1)
    <p>-srv   VPN server: eth0 192.0.2.1, WireGuard <p>-srv 10.42.42.1/16, UDP 5555,
              one peer per device (AllowedIPs = device/32), sshd on 10.42.42.1:22 as
              the jump host, /etc/hosts with the device names (/etc/netns/<p>-srv/hosts)
    <p>-d1..  devices: eth0 192.0.2.11.., WireGuard <p>-dN 10.42.42.5.. (/32), only peer
              the server (AllowedIPs = 10.42.42.1/32, keepalive 25, endpoint
              192.0.2.1:5555), sshd on <device ip>:22
    <p>-lap   the engineer's laptop: eth0 192.0.2.2 only; fiotray brings up its tunnel here

Each sshd runs in its own UTS namespace whose hostname is the device's name (the
server's is ``vpn-server``), so ``ssh ... hostname`` tells which machine answered;
``echo $SSH_CONNECTION`` shows the client address as the machine saw it and the
machine's own VPN address.

Fixtures
--------
``vpn_world``
    Session-scoped :class:`VpnWorld` (~0.2 s to build, ~0.2 s to remove). Tests that
    change it (``set_nat``, ``add_peer``) must restore it; ``clean_vpn_world`` does that.
``clean_vpn_world``
    Function-scoped: the same world, reset after the test (laptop peers added
    through it removed, NAT off).
``laptop_netns``
    The laptop namespace's name.
``vpn_world_factory``
    :func:`build_vpn_world` bound to the test users, for a test's own world.

Also here: ``WG_ENV`` (environment for wireguard-go/wg-quick without the kernel
module), :func:`in_netns` (make a listening socket, e.g. the fake API's, inside the
laptop namespace), :func:`leftovers` (what of a world is still on the machine) and
:func:`reap_stale_worlds` (run before each build: removes worlds of SIGKILLed sessions).

What a test should check to know which machine answered over ssh: ``hostname`` is
the device's name; ``$SSH_CONNECTION`` is ``<client> <port> <device vpn ip> 22``, and
the client is the server's VPN address both through the jump host and through NAT.

Gotchas:

- wireguard-go's control socket is ``/var/run/wireguard/<ifname>.sock``: a path shared
  by all namespaces. Interface names must be unique on the machine, not only in the
  namespace; use ``world.laptop_ifname`` for the laptop's tunnel. For the same reason
  ``wg show`` without an interface lists every wireguard-go on the machine.
- A new peer handshakes only once it has something to send: without traffic or
  ``PersistentKeepalive`` a laptop tunnel that is "up" has ``latest_handshake == 0``.
- Inside the laptop namespace, the root namespace's 127.0.0.1 (a fake API started the
  usual way) and abstract unix sockets (``unix:abstract=`` D-Bus addresses, X11's
  abstract socket) are out of reach; path sockets (``/tmp/.X11-unix/X*``,
  ``unix:path=`` buses, /run/dbus) work. See :func:`in_netns`.
- ``ssh -J`` starts the jump hop as a new ``ssh`` that gets ``-F`` but no ``-o`` or
  ``-i``: pass ``-F world.ssh_config`` (which names the key and known_hosts) or a
  ``ProxyCommand``; ``-F none -i KEY -o UserKnownHostsFile=...`` only covers the last hop.
- sshd needs ``/run/sshd`` (absent here without systemd): each sshd gets a private
  tmpfs on ``/run`` in its own mount namespace rather than a directory we would
  have to leave behind on the host.

Needs root and the Debian packages iproute2, wireguard-tools, wireguard-go, iptables,
openssh-server, openssh-client and util-linux; without them the fixtures fail (a skip
would hide a broken CI set-up).
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.procs import alive, stop, stop_pids
from tests.system_user import SystemUser

VPN_SUBNET = "10.42.0.0/16"
SERVER_VPN_ADDRESS = "10.42.42.1"
SERVER_UNDERLAY_ADDRESS = "192.0.2.1"
LAPTOP_UNDERLAY_ADDRESS = "192.0.2.2"
WG_PORT = 5555
# Foundries hands out device addresses from the server's /16; these are the world's.
FIRST_DEVICE_VPN = ipaddress.IPv4Address("10.42.42.5")
FIRST_DEVICE_UNDERLAY = ipaddress.IPv4Address("192.0.2.11")
# A free VPN address for the laptop, as the server's admin would assign one.
LAPTOP_VPN_ADDRESS = "10.42.42.200"
DEVICE_NAMES = ("device-1", "device-2")
SERVER_HOSTNAME = "vpn-server"
UNDERLAY_PREFIXLEN = 24

START_TIMEOUT = 10.0
WG_RUN_DIR = Path("/var/run/wireguard")
NETNS_ETC = Path("/etc/netns")
OWNER_FILE = "owner"
CLONE_NEWNET = 0x40000000
SSHD = "/usr/sbin/sshd"  # sshd re-executes itself and insists on an absolute path

_PACKAGES = {
    "ip": "iproute2",
    "ss": "iproute2",
    "wg": "wireguard-tools",
    "wg-quick": "wireguard-tools",
    "wireguard-go": "wireguard-go",
    "iptables": "iptables",
    SSHD: "openssh-server",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "runuser": "util-linux",
    "unshare": "util-linux",
    "mount": "mount",
}

WG_ENV = {
    "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1",
    "WG_QUICK_USERSPACE_IMPLEMENTATION": "wireguard-go",
}

# Starts sshd in its own UTS namespace (so `hostname` names the machine) with a private
# /run, since sshd needs /run/sshd and we must not leave one behind on the host.
_SSHD_LAUNCH = (
    'hostname "$1" && mount -t tmpfs -o mode=0755,size=1m fvw-run /run '
    '&& mkdir -m 0755 /run/sshd && exec "$2" -D -e -f "$3"'
)


@dataclass(frozen=True)
class WorldDevice:
    name: str
    ns: str
    vpn_address: str
    wg_public_key: str
    ifname: str
    underlay_address: str
    host_public_key: str  # "ssh-ed25519 AAAA...", for a known_hosts line


@dataclass
class VpnWorld:
    """A running world. Addresses are plain strings, without prefix length."""

    prefix: str
    root: Path  # logs, keys and configs; removed at the end
    net_ns: str
    server_ns: str
    server_ifname: str
    laptop_ns: str
    laptop_ifname: str  # free, machine-wide unique name for the laptop's tunnel
    laptop_underlay_address: str
    laptop_vpn_address: str  # a suggestion: free in the subnet, not yet a peer
    server_endpoint: str
    server_public_key: str
    server_vpn_address: str
    server_underlay_address: str
    server_host_public_key: str
    vpn_subnet: str
    devices: list[WorldDevice]
    app_user: str
    device_user: str
    ssh_key: Path  # private key of app_user, 0600, in a 0700 dir app_user owns
    known_hosts: Path  # empty at start, owned by app_user
    ssh_config: Path  # Host * with the key, known_hosts, accept-new, BatchMode
    pids: list[int] = field(default_factory=list)  # wireguard-go and sshd we started
    _iptables: str | None = None
    _nat: bool = False
    _added_peers: set[str] = field(default_factory=set)

    # -- running things -----------------------------------------------------

    def exec(
        self,
        ns: str,
        argv: Sequence[str],
        *,
        user: str | SystemUser | None = None,
        input: str | None = None,
        timeout: float = 30,
        env: dict[str, str] | None = None,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """``ip netns exec NS [runuser -u USER --] argv``, text in and out.

        As a user the environment is a clean login-like one (plus ``env``); on a
        timeout the whole process group is killed before TimeoutExpired is raised.
        ``check=True`` turns a non-zero exit into a test failure showing stderr.
        """
        name = user.name if isinstance(user, SystemUser) else user
        return _run_in_ns(ns, argv, user=name, input=input, timeout=timeout, env=env, check=check)

    def ssh_argv(self, *extra: str, jump: bool = True) -> list[str]:
        """``ssh`` with this world's client config (both hops), e.g.
        ``world.ssh_argv(f"fio@{dev.vpn_address}", "hostname")``."""
        argv = ["ssh", "-F", str(self.ssh_config)]
        if jump:
            argv += ["-J", f"{self.device_user}@{self.server_vpn_address}"]
        return [*argv, *extra]

    def latest_handshake(self, ns: str, ifname: str, peer: str | None = None) -> int:
        """Unix time of the latest handshake on ``ifname`` (of ``peer`` if given), or 0."""
        out = _run_in_ns(ns, ["wg", "show", ifname, "latest-handshakes"], check=True).stdout
        times = [
            int(stamp)
            for key, _, stamp in (line.partition("\t") for line in out.splitlines())
            if stamp and (peer is None or key == peer)
        ]
        return max(times, default=0)

    def wait_for_handshake(
        self, ns: str, ifname: str, peer: str | None = None, timeout: float = START_TIMEOUT
    ) -> int:
        _wait_for(
            lambda: self.latest_handshake(ns, ifname, peer) > 0,
            f"no WireGuard handshake on {ifname} in {ns}",
            timeout,
            lambda: _run_in_ns(ns, ["wg", "show", ifname]).stdout,
        )
        return self.latest_handshake(ns, ifname, peer)

    def device(self, name: str) -> WorldDevice:
        return next(d for d in self.devices if d.name == name)

    # -- the server admin's steps ------------------------------------------

    def add_peer(self, public_key: str, address: str) -> None:
        """Admit a laptop as a peer of the server, as the server's admin does."""
        host = str(ipaddress.ip_interface(address).ip)
        _run_in_ns(
            self.server_ns,
            ["wg", "set", self.server_ifname, "peer", public_key, "allowed-ips", f"{host}/32"],
            check=True,
        )
        self._added_peers.add(public_key)

    def remove_peer(self, public_key: str) -> None:
        _run_in_ns(
            self.server_ns,
            ["wg", "set", self.server_ifname, "peer", public_key, "remove"],
            check=True,
        )
        self._added_peers.discard(public_key)

    def server_peers(self) -> dict[str, str]:
        """public key -> allowed IPs, as the server has them now."""
        out = _run_in_ns(
            self.server_ns, ["wg", "show", self.server_ifname, "allowed-ips"], check=True
        ).stdout
        return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)

    @property
    def nat_enabled(self) -> bool:
        return self._nat

    def set_nat(self, enabled: bool) -> None:
        """Forward laptop->device traffic with NAT out of the server's WireGuard interface.

        Masquerading is what makes it work at all: a device accepts tunnel traffic
        only from the server's VPN address (AllowedIPs = 10.42.42.1/32).
        """
        iptables = self._iptables_binary()

        def masquerade(op: str, check: bool) -> subprocess.CompletedProcess[str]:
            argv = [iptables, "-w", "-t", "nat", op, "POSTROUTING"]
            argv += ["-o", self.server_ifname, "-j", "MASQUERADE"]
            return _run_in_ns(self.server_ns, argv, check=check)

        present = masquerade("-C", check=False).returncode == 0
        if enabled and not present:
            masquerade("-A", check=True)
        elif not enabled and present:
            masquerade("-D", check=True)
        _run_in_ns(
            self.server_ns,
            ["sh", "-c", f"echo {int(enabled)} > /proc/sys/net/ipv4/ip_forward"],
            check=True,
        )
        self._nat = enabled

    def reset(self) -> None:
        """Back to the built state: laptop peers added through add_peer gone, NAT off."""
        for key in list(self._added_peers):
            self.remove_peer(key)
        if self._nat:
            self.set_nat(False)

    def _iptables_binary(self) -> str:
        # Debian 12 defaults to iptables-nft; fall back to the other backend if the
        # kernel lacks nf_tables (or the legacy tables) inside a namespace.
        if self._iptables is None:
            errors = []
            for candidate in ("iptables", "iptables-nft", "iptables-legacy"):
                if shutil.which(candidate) is None:
                    continue
                probe = _run_in_ns(self.server_ns, [candidate, "-w", "-t", "nat", "-S"])
                if probe.returncode == 0:
                    self._iptables = candidate
                    break
                errors.append(f"{candidate}: {probe.stderr.strip()}")
            else:
                pytest.fail(
                    "no working iptables in the server namespace (Debian package 'iptables'): "
                    + "; ".join(errors),
                    pytrace=False,
                )
        assert self._iptables is not None
        return self._iptables


# -- helpers --------------------------------------------------------------------


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the VPN world needs root (network namespaces, CI runs as root)", pytrace=False)


def _require_binaries() -> None:
    missing = sorted({pkg for binary, pkg in _PACKAGES.items() if shutil.which(binary) is None})
    if missing:
        pytest.fail(
            f"the VPN world needs the Debian packages {', '.join(missing)} "
            f"(apt-get install -y {' '.join(missing)})",
            pytrace=False,
        )


def _user_env(name: str, extra: dict[str, str] | None) -> dict[str, str]:
    entry = pwd.getpwnam(name)
    return {
        "HOME": entry.pw_dir,
        "USER": name,
        "LOGNAME": name,
        "SHELL": entry.pw_shell or "/bin/sh",
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "LANG": "C.UTF-8",
        **(extra or {}),
    }


def _run_in_ns(
    ns: str,
    argv: Sequence[str],
    *,
    user: str | None = None,
    input: str | None = None,
    timeout: float = 30,
    env: dict[str, str] | None = None,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    full = ["ip", "netns", "exec", ns]
    if user is not None:
        full += ["runuser", "-u", user, "--"]
    full += list(argv)
    run_env = _user_env(user, env) if user is not None else {**os.environ, **(env or {})}
    # A new session so a timeout can kill runuser's child and ssh's ProxyCommand too.
    with subprocess.Popen(
        full,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=run_env,
        start_new_session=True,
    ) as proc:
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise subprocess.TimeoutExpired(full, timeout, out, err) from None
    result = subprocess.CompletedProcess(full, proc.returncode, out, err)
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(full)} exited {result.returncode}: {err.strip() or out.strip()}",
            pytrace=False,
        )
    return result


def _run(argv: Sequence[str], *, input: str | None = None) -> str:
    proc = subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}", pytrace=False
        )
    return proc.stdout


def _ip(ns: str, *args: str) -> str:
    return _run(["ip", "-n", ns, *args])


def _wait_for(
    predicate: Callable[[], bool],
    failure: str,
    timeout: float,
    details: Callable[[], str] = lambda: "",
) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{failure} within {timeout:g} s\n{details()}", pytrace=False)
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _tail(path: Path, limit: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return f"({path} unreadable)"


def _netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _keypair_wg() -> tuple[str, str]:
    private = _run(["wg", "genkey"]).strip()
    return private, _run(["wg", "pubkey"], input=private + "\n").strip()


def _write_private(path: Path, text: str, mode: int = 0o600) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


class _Cleanup:
    """LIFO undo steps that all run even when some fail; failures are reported at the end."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], None]]] = []

    def push(self, what: str, step: Callable[[], None]) -> None:
        self._steps.append((what, step))

    def run(self) -> list[str]:
        problems = []
        while self._steps:
            what, step = self._steps.pop()
            try:
                step()
            except BaseException as exc:
                problems.append(f"{what}: {exc!r}")
        return problems


def _processes_mentioning(text: str) -> dict[int, str]:
    found = {}
    for proc_dir in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and alive(int(proc_dir.name)):
            found[int(proc_dir.name)] = cmdline.strip()
    return found


def leftovers(prefix: str) -> list[str]:
    """Anything of a world with this prefix still on the machine (empty after cleanup)."""
    found = [f"netns {name}" for name in _netns_names() if name.startswith(prefix)]
    found += [f"file {p}" for p in NETNS_ETC.glob(f"{prefix}*")]
    found += [f"file {p}" for p in WG_RUN_DIR.glob(f"{prefix}*")]
    found += [f"file {p}" for p in Path(tempfile.gettempdir()).glob(f"{prefix}*")]
    found += [f"process {pid}: {cmd}" for pid, cmd in _processes_mentioning(prefix).items()]
    return found


def _delete_namespace(ns: str) -> None:
    if ns not in _netns_names():
        return
    # Anything still running in there would survive the namespace (wireguard-go
    # does): e.g. a tunnel a test brought up with wg-quick and did not take down.
    strays = [int(p) for p in _run(["ip", "netns", "pids", ns]).split()]
    if strays:
        warnings.warn(f"VPN world: stopping processes left in {ns}: {strays}", stacklevel=1)
        stop_pids(strays)
    _run(["ip", "netns", "del", ns])


def _owner_tag(pid: int) -> str | None:
    """pid and start time: a recycled pid does not pass for the world's owner."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return f"{pid} {stat.rpartition(')')[2].split()[19]}"


def reap_stale_worlds() -> list[str]:
    """Remove worlds whose pytest died without cleaning up (e.g. `timeout -s KILL`).

    Only worlds this module made (a temp dir with an owner file) whose owner process
    is gone; a world of a concurrent session is left alone. Returns what was removed.
    """
    reaped = []
    for root in Path(tempfile.gettempdir()).glob("fvw*-*"):
        match = re.fullmatch(r"(fvw[0-9a-f]{4})-\w+", root.name)
        try:
            tag = (root / OWNER_FILE).read_text()
        except OSError:
            continue
        if match is None or _owner_tag(int(tag.split()[0])) == tag:
            continue
        prefix = match[1]
        for ns in sorted(_netns_names()):
            if ns.startswith(f"{prefix}-"):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    _delete_namespace(ns)
        stop_pids(list(_processes_mentioning(f"{prefix}-")))
        for path in [*NETNS_ETC.glob(f"{prefix}-*"), *WG_RUN_DIR.glob(f"{prefix}-*")]:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        shutil.rmtree(root, ignore_errors=True)
        reaped.append(prefix)
    return reaped


@contextlib.contextmanager
def in_netns(ns: str) -> Iterator[None]:
    """Run the block with this thread in network namespace ns.

    Sockets keep the namespace they were made in: a server whose listening socket is
    created in here (e.g. ``with in_netns(world.laptop_ns): fake_api.start()``) is
    reachable at 127.0.0.1 from processes in ns, and serves from any thread. Threads
    started inside the block stay in ns.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    with (
        open("/proc/thread-self/ns/net", "rb") as home,
        open(f"/run/netns/{ns}", "rb") as target,
    ):
        if libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {ns}: {os.strerror(err)}")
        try:
            yield
        finally:
            if libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns back from {ns}: {os.strerror(err)}")


# -- building ---------------------------------------------------------------------


class _Builder:
    def __init__(
        self,
        cleanup: _Cleanup,
        app_user: SystemUser,
        device_user: SystemUser,
        fail_at: str | None,
    ) -> None:
        self.cleanup = cleanup
        self.app_user = app_user
        self.device_user = device_user
        self.fail_at = fail_at
        self.pids: list[int] = []
        self.prefix = self._free_prefix()
        self.root = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        cleanup.push(f"remove {self.root}", lambda: shutil.rmtree(self.root))
        # Lets a later session tell a world whose pytest was SIGKILLed from a live one.
        owner = _owner_tag(os.getpid())
        assert owner is not None
        (self.root / OWNER_FILE).write_text(owner)
        # fio reads authorized_keys and app_user reaches its own dir through here.
        self.root.chmod(0o755)

    @staticmethod
    def _free_prefix() -> str:
        taken = _netns_names()
        for _ in range(50):
            prefix = f"fvw{secrets.token_hex(2)}"
            clash = any(name.startswith(prefix) for name in taken)
            clash = clash or any(WG_RUN_DIR.glob(f"{prefix}*")) or any(NETNS_ETC.glob(f"{prefix}*"))
            if not clash:
                return prefix
        pytest.fail("no free fvw<hex> prefix for the VPN world", pytrace=False)

    def checkpoint(self, step: str) -> None:
        # Lets the world's own tests make a build fail half-way through.
        if step == self.fail_at:
            raise RuntimeError(f"VPN world {self.prefix} build stopped at {step!r} on purpose")

    def namespace(self, name: str) -> str:
        ns = f"{self.prefix}-{name}"
        self.cleanup.push(f"delete netns {ns}", lambda: _delete_namespace(ns))
        _run(["ip", "netns", "add", ns])
        _ip(ns, "link", "set", "lo", "up")
        return ns

    def plug(self, net_ns: str, ns: str, address: str) -> None:
        """A veth from the internet bridge into ns as eth0; never seen in the root namespace."""
        outer = f"v-{ns.removeprefix(self.prefix + '-')}"
        _ip(net_ns, "link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip(net_ns, "link", "set", outer, "master", "br0", "up")
        _ip(ns, "addr", "add", f"{address}/{UNDERLAY_PREFIXLEN}", "dev", "eth0")
        _ip(ns, "link", "set", "eth0", "up")

    def etc_netns(self, ns: str) -> Path:
        if not NETNS_ETC.exists():
            self.cleanup.push(f"rmdir {NETNS_ETC}", lambda: _rmdir_if_empty(NETNS_ETC))
            NETNS_ETC.mkdir(mode=0o755, exist_ok=True)
        path = NETNS_ETC / ns
        path.mkdir(mode=0o755)  # FileExistsError: not ours, leave it be
        self.cleanup.push(f"remove {path}", lambda: shutil.rmtree(path))
        return path

    def wireguard(self, ns: str, workdir: Path, address: str) -> tuple[str, str]:
        """wireguard-go on ns as interface <ns>, keyed, addressed and up. Returns (if, pubkey)."""
        ifname = ns
        private, public = _keypair_wg()
        key_file = workdir / "wg.key"
        _write_private(key_file, private + "\n")
        if not WG_RUN_DIR.exists():
            # wireguard-go makes it; remove it afterwards only if it was not there before.
            self.cleanup.push(f"rmdir {WG_RUN_DIR}", lambda: _rmdir_if_empty(WG_RUN_DIR))
        sock = WG_RUN_DIR / f"{ifname}.sock"
        # A SIGKILLed wireguard-go leaves its socket behind.
        self.cleanup.push(f"remove {sock}", lambda: sock.unlink(missing_ok=True))
        log = workdir / "wireguard-go.log"
        with log.open("wb") as log_fh:
            # -f keeps it our child, so its PID is the one we stop.
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, "wireguard-go", "-f", ifname],
                env={**os.environ, **WG_ENV, "LOG_LEVEL": "error"},
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
            )
        self.pids.append(proc.pid)
        self.cleanup.push(f"stop wireguard-go {proc.pid} in {ns}", lambda: stop(proc))
        _wait_for(
            lambda: sock.exists() or proc.poll() is not None,
            f"wireguard-go did not create {sock}",
            START_TIMEOUT,
            lambda: _tail(log),
        )
        if proc.poll() is not None:
            pytest.fail(f"wireguard-go in {ns} exited at once: {_tail(log)}", pytrace=False)
        _run_in_ns(
            ns,
            ["wg", "set", ifname, "listen-port", str(WG_PORT), "private-key", str(key_file)],
            check=True,
        )
        _ip(ns, "addr", "add", address, "dev", ifname)
        _ip(ns, "link", "set", ifname, "mtu", "1420", "up")
        return ifname, public

    def sshd(self, ns: str, workdir: Path, listen: str, hostname: str) -> str:
        """sshd on listen:22 in ns, accepting world's key for the device user. Returns host key."""
        host_key = workdir / "ssh_host_ed25519_key"
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", hostname, "-f", str(host_key)])
        config = workdir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress {listen}:22",
                    f"HostKey {host_key}",
                    f"PidFile {workdir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
                    f"AllowUsers {self.device_user.name}",
                    "UsePAM no",
                    "StrictModes no",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "PermitRootLogin no",
                    "AllowTcpForwarding yes",
                    "X11Forwarding no",
                    "PrintMotd no",
                    "PrintLastLog no",
                    "Subsystem sftp internal-sftp",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )
        log = workdir / "sshd.log"
        launch = ["ip", "netns", "exec", ns, "unshare", "--uts", "--", "sh", "-c", _SSHD_LAUNCH]
        with log.open("wb") as log_fh:
            proc = subprocess.Popen(
                [*launch, "sh", hostname, SSHD, str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
            )
        self.pids.append(proc.pid)
        self.cleanup.push(f"stop sshd {proc.pid} in {ns}", lambda: stop(proc))

        def listening() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"sshd in {ns} exited {proc.returncode}: {_tail(log)}", pytrace=False)
            out = _run_in_ns(ns, ["ss", "-Hltn"]).stdout
            return any(f"{listen}:22" in line.split()[3:4] for line in out.splitlines())

        _wait_for(
            listening,
            f"sshd in {ns} is not listening on {listen}:22",
            START_TIMEOUT,
            lambda: _tail(log),
        )
        return " ".join((host_key.with_suffix(".pub")).read_text().split()[:2])

    def laptop_ssh_files(self) -> tuple[Path, Path, Path]:
        user = self.app_user
        home = self.root / "laptop"
        home.mkdir(mode=0o700)
        key = home / "id_ed25519"
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fiotray-test", "-f", str(key)])
        known_hosts = home / "known_hosts"
        known_hosts.touch(mode=0o600)
        config = home / "ssh_config"
        # ssh -J passes -F on to the jump hop but no -o/-i: a config file covers both hops.
        config.write_text(
            "Host *\n"
            f"  IdentityFile {key}\n"
            "  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {known_hosts}\n"
            "  StrictHostKeyChecking accept-new\n"
            "  BatchMode yes\n"
            "  ConnectTimeout 5\n"
            "  LogLevel ERROR\n"
        )
        for path in (home, key, key.with_suffix(".pub"), known_hosts, config):
            os.chown(path, user.uid, user.gid)
        key.chmod(0o600)
        config.chmod(0o600)
        (self.root / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
        (self.root / "authorized_keys").chmod(0o644)
        return key, known_hosts, config


def _rmdir_if_empty(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError, OSError):
        path.rmdir()


def _build(
    b: _Builder, device_names: Sequence[str], app_user: SystemUser, device_user: SystemUser
) -> VpnWorld:
    p = b.prefix
    ssh_key, known_hosts, ssh_config = b.laptop_ssh_files()
    b.checkpoint("keys")

    net_ns = b.namespace("net")
    _ip(net_ns, "link", "add", "br0", "type", "bridge")
    _ip(net_ns, "link", "set", "br0", "up")

    server_ns = b.namespace("srv")
    srv_dir = b.root / "srv"
    srv_dir.mkdir()
    b.plug(net_ns, server_ns, SERVER_UNDERLAY_ADDRESS)
    # The real server keeps /etc/hosts up to date so `ssh fio@<device-name>` works there
    # (and so does `ssh -J fio@server fio@<device-name>`: the jump host resolves it).
    devices_vpn = [str(FIRST_DEVICE_VPN + i) for i in range(len(device_names))]
    hosts = [
        "127.0.0.1 localhost",
        f"{SERVER_VPN_ADDRESS} {SERVER_HOSTNAME}",
        *(f"{ip} {name}" for ip, name in zip(devices_vpn, device_names, strict=True)),
    ]
    (b.etc_netns(server_ns) / "hosts").write_text("\n".join(hosts) + "\n")
    server_if, server_pub = b.wireguard(
        server_ns, srv_dir, f"{SERVER_VPN_ADDRESS}/{ipaddress.ip_network(VPN_SUBNET).prefixlen}"
    )
    server_host_key = b.sshd(server_ns, srv_dir, SERVER_VPN_ADDRESS, SERVER_HOSTNAME)
    b.checkpoint("server")

    endpoint = f"{SERVER_UNDERLAY_ADDRESS}:{WG_PORT}"
    devices = []
    for i, (name, vpn) in enumerate(zip(device_names, devices_vpn, strict=True)):
        ns = b.namespace(f"d{i + 1}")
        workdir = b.root / f"d{i + 1}"
        workdir.mkdir()
        underlay = str(FIRST_DEVICE_UNDERLAY + i)
        b.plug(net_ns, ns, underlay)
        ifname, pub = b.wireguard(ns, workdir, f"{vpn}/32")
        # As factory-wireguard-server configures it: the device only by its address.
        _run_in_ns(
            server_ns, ["wg", "set", server_if, "peer", pub, "allowed-ips", f"{vpn}/32"], check=True
        )
        _ip(ns, "route", "add", f"{SERVER_VPN_ADDRESS}/32", "dev", ifname)
        # As the device's VPN handler does: the server is the only peer, and the device
        # keeps the tunnel open itself since the server has no endpoint for it.
        _run_in_ns(
            ns,
            [
                *("wg", "set", ifname, "peer", server_pub),
                *("allowed-ips", f"{SERVER_VPN_ADDRESS}/32", "endpoint", endpoint),
                *("persistent-keepalive", "25"),
            ],
            check=True,
        )
        host_key = b.sshd(ns, workdir, vpn, name)
        devices.append(WorldDevice(name, ns, vpn, pub, ifname, underlay, host_key))
        b.checkpoint(f"device-{i + 1}")

    laptop_ns = b.namespace("lap")
    b.plug(net_ns, laptop_ns, LAPTOP_UNDERLAY_ADDRESS)
    b.checkpoint("laptop")

    world = VpnWorld(
        prefix=p,
        root=b.root,
        net_ns=net_ns,
        server_ns=server_ns,
        server_ifname=server_if,
        laptop_ns=laptop_ns,
        laptop_ifname=f"{p}-lap",
        laptop_underlay_address=LAPTOP_UNDERLAY_ADDRESS,
        laptop_vpn_address=LAPTOP_VPN_ADDRESS,
        server_endpoint=endpoint,
        server_public_key=server_pub,
        server_vpn_address=SERVER_VPN_ADDRESS,
        server_underlay_address=SERVER_UNDERLAY_ADDRESS,
        server_host_public_key=server_host_key,
        vpn_subnet=VPN_SUBNET,
        devices=devices,
        app_user=app_user.name,
        device_user=device_user.name,
        ssh_key=ssh_key,
        known_hosts=known_hosts,
        ssh_config=ssh_config,
        pids=b.pids,
    )
    # The server learns a device's endpoint only from the device's first handshake;
    # until then it cannot reach the device (as with the real server after a restart).
    for dev in devices:
        world.wait_for_handshake(server_ns, server_if, dev.wg_public_key)
    return world


@contextlib.contextmanager
def build_vpn_world(
    app_user: SystemUser,
    device_user: SystemUser,
    *,
    device_names: Sequence[str] = DEVICE_NAMES,
    _fail_at: str | None = None,
) -> Iterator[VpnWorld]:
    """Build a world, yield it, and remove everything it made (also after a failed build)."""
    _require_root()
    _require_binaries()
    if reaped := reap_stale_worlds():
        warnings.warn(f"VPN world: removed worlds of dead sessions: {reaped}", stacklevel=1)
    cleanup = _Cleanup()
    failed = True
    try:
        builder = _Builder(cleanup, app_user, device_user, _fail_at)
        world = _build(builder, device_names, app_user, device_user)
        failed = False
        yield world
    except BaseException:
        failed = True
        raise
    finally:
        problems = cleanup.run()
        if problems and not failed:
            pytest.fail("VPN world cleanup failed:\n" + "\n".join(problems), pytrace=False)
        elif problems:
            warnings.warn("VPN world cleanup failed: " + "; ".join(problems), stacklevel=1)


# -- fixtures ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def vpn_world(app_user: SystemUser, device_user: SystemUser) -> Iterator[VpnWorld]:
    """The session's VPN world (built once; restore whatever you change)."""
    with build_vpn_world(app_user, device_user) as world:
        yield world


@pytest.fixture
def clean_vpn_world(vpn_world: VpnWorld) -> Iterator[VpnWorld]:
    """The session's world, reset after the test (added peers removed, NAT off)."""
    yield vpn_world
    vpn_world.reset()


@pytest.fixture(scope="session")
def laptop_netns(vpn_world: VpnWorld) -> str:
    return vpn_world.laptop_ns


@pytest.fixture
def vpn_world_factory(
    app_user: SystemUser, device_user: SystemUser
) -> Callable[..., contextlib.AbstractContextManager[VpnWorld]]:
    """``with vpn_world_factory(device_names=["d"]) as world:`` for a test's own world."""

    def factory(
        *, device_names: Sequence[str] = DEVICE_NAMES, _fail_at: str | None = None
    ) -> contextlib.AbstractContextManager[VpnWorld]:
        return build_vpn_world(app_user, device_user, device_names=device_names, _fail_at=_fail_at)

    return factory
