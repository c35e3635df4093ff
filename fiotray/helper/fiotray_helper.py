#!/usr/bin/python3 -I
"""fiotray-helper: the only part of fiotray that runs as root.

Started through pkexec, one polkit action per command (told apart by argv[1]):

    fiotray-helper up IFNAME   < wg-quick config    (io.foundries.fiotray.connect)
    fiotray-helper down IFNAME                      (io.foundries.fiotray.disconnect)
    fiotray-helper status                           (io.foundries.fiotray.status)

It trusts nothing it is given: the config is parsed, every value validated,
anything wg-quick would run as a shell command refused (fiotray.wg.config), and
only a config re-rendered here is handed to wg-quick. Runtime state lives in a
root-only directory (RUNTIME_DIR): IFNAME.conf (the rendered config) and
IFNAME.json (who brought it up, and the interface's identity: its ifindex and
public key), so `down` only touches tunnels fiotray made, only while the live
interface is still the one it made, and only for the user who made them (or
root). A record whose interface was replaced outside fiotray is not reported by
`status`, and `down` removes it and leaves the interface alone.
IFNAME.lock serializes `up` and `down` of one interface; different interfaces
never wait for each other, and every wg-quick run is bounded (WG_QUICK_TIMEOUT).

`status` prints one JSON line, never a private or preshared key:

    {"version": 1, "interfaces": [{"name", "mine", "owner_uid", "created", "exists",
     "public_key", "listen_port", "peers": [{"public_key", "endpoint", "allowed_ips",
     "latest_handshake", "rx_bytes", "tx_bytes", "persistent_keepalive"}]}]}

(latest_handshake in unix seconds, 0 = never; persistent_keepalive 0 = off;
public_key and listen_port null and peers empty while the interface does not
exist, or while an `up` or `down` of it runs.) Another user's tunnel is only
{"name", "exists", "mine": false}; root sees every tunnel in full (see status()).
`up` prints nothing; `down` prints a note when the interface was already gone.
`up` refuses a ListenPort below 1024 unless the caller is root.

Exit codes (fiotray.wg.errors): 0 ok; 1 internal error; 2 usage or refused
input (nothing run, nothing written), or not root; 3 state conflict; 4 a
required tool is missing; 5 wg-quick failed. Every error is one line on stderr
starting with "fiotray-helper: ".

Stdlib only, Python >= 3.11: this module and the fiotray.wg package are
installed beside the launcher for the system's python3 (fiotray.helper.install),
or, in the .deb, built into a bundle with its own interpreter
(packaging/fiotray-helper.spec). Importing it has no side effects.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import sys
import time

from fiotray.wg.config import (
    MAX_INPUT,
    ConfigError,
    WgConfig,
    is_digits,
    is_ifname,
    is_key_shape,
    parse_config_bytes,
    render_config,
    validate_ifname,
)
from fiotray.wg.dump import parse_wg_dump
from fiotray.wg.errors import (
    EXIT_CONFLICT,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_USAGE,
    EXIT_WG_QUICK,
    WgError,
    sanitize,
)
from fiotray.wg.tools import (
    STOP_GRACE,
    ToolTimeout,
    find_tool,
    last_error_line,
    require_tool,
    run_tool,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, TextIO

# Unit tests monkeypatch these two in-process; there is deliberately no
# environment variable or option for them: the caller must not choose where
# root writes or what it believes about interfaces.
RUNTIME_DIR = "/run/fiotray"
SYS_CLASS_NET = "/sys/class/net"

WG_QUICK_TIMEOUT = 30.0
WG_SHOW_TIMEOUT = 10.0
# As long as an `up` or `down` of the same interface may hold its lock (one wg-quick run with
# its SIGTERM and SIGKILL graces, and one more tool), and shorter than the app waits for the
# helper (fiotray.core.tunnels.HELPER_TIMEOUT, 60 s): a waiter gives its own reason.
LOCK_TIMEOUT = WG_QUICK_TIMEOUT + 2 * STOP_GRACE + WG_SHOW_TIMEOUT
STATUS_VERSION = 1
PRIVILEGED_PORTS = 1024

PROG = "fiotray-helper"
USAGE = "usage: fiotray-helper up IFNAME < CONFIG | down IFNAME | status"


# --------------------------------------------------------------------------- system side


def _hint(detail: str) -> str:
    """What to install when wg-quick's failure is a known missing piece."""
    if "resolvconf" in detail and "not found" in detail:
        return "; DNS = needs resolvconf: install the Debian package openresolv"
    if find_tool("wireguard-go") is None and not os.path.exists("/sys/module/wireguard"):
        return "; no WireGuard kernel module: install the Debian package wireguard-go"
    return ""


def iface_exists(name: str) -> bool:
    return os.path.lexists(os.path.join(SYS_CLASS_NET, name))


def require_root() -> None:
    if os.geteuid() != 0:
        raise WgError(
            EXIT_USAGE, "must run as root: start it through pkexec (fiotray does this itself)"
        )


def caller_uid() -> int:
    """The user on whose behalf we act: pkexec's caller, else our own real uid."""
    raw = os.environ.get("PKEXEC_UID")
    if raw is None:
        return os.getuid()
    if not is_digits(raw, 10) or int(raw) >= 2**32 - 1:
        raise WgError(EXIT_USAGE, "PKEXEC_UID is not a valid uid")
    return int(raw)


def open_runtime_dir(*, create: bool) -> int | None:
    """An fd of RUNTIME_DIR after checking it is a real, root-owned directory.

    With create=False a missing directory gives None (status never writes).
    """
    path = os.fspath(RUNTIME_DIR)
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        if create:
            raise
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise WgError(
                EXIT_CONFLICT, f"{path} is not a real directory (a symlink or a file): refusing"
            ) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0:
            raise WgError(EXIT_CONFLICT, f"{path} is not a directory owned by root: refusing")
        if st.st_mode & 0o022:
            raise WgError(EXIT_CONFLICT, f"{path} is writable by others: refusing")
        if create and st.st_mode & 0o777 != 0o700:
            os.fchmod(fd, 0o700)
    except BaseException:
        os.close(fd)
        raise
    return fd


def lock_interface(dirfd: int, name: str) -> int:
    """An fd of IFNAME.lock holding an exclusive flock: one `up` or `down` per interface.

    Per interface, not one lock for all: a connect stuck for WG_QUICK_TIMEOUT (an endpoint
    whose name does not resolve) must not hold up other users' tunnels. The lock files stay
    (removing a lock file others may be waiting on lets two holders in); /run is emptied at
    boot, and there is one per interface name ever brought up.
    """
    fd = os.open(
        f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dirfd
    )
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise WgError(EXIT_CONFLICT, f"{name}.lock is not a regular file: refusing")
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise WgError(
                        EXIT_CONFLICT, f"another fiotray-helper is still busy with {name}"
                    ) from None
                time.sleep(0.05)
    except BaseException:
        os.close(fd)
        raise


def peek_interface_lock(dirfd: int, name: str) -> int | None:
    """A shared flock on IFNAME.lock, taken without waiting: None while an `up` or `down` of
    IFNAME runs (its record and interface are then half-made), else an fd to close (-1 when
    no helper ever locked IFNAME). Opens, never creates: `status` writes nothing.
    """
    try:
        fd = os.open(f"{name}.lock", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
    except FileNotFoundError:
        return -1
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _write_new(dirfd: int, name: str, data: bytes) -> None:
    fd = os.open(
        name,
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
        0o600,
        dir_fd=dirfd,
    )
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _write_record(dirfd: int, name: str, record: Record) -> None:
    """IFNAME.json replaced atomically: `status` reads records without a lock."""
    tmp = f".{name}.json.tmp"  # not *.json: status never lists it
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=dirfd)
    _write_new(dirfd, tmp, record.text().encode("ascii"))
    os.replace(tmp, f"{name}.json", src_dir_fd=dirfd, dst_dir_fd=dirfd)


def _remove_records(dirfd: int, name: str) -> None:
    for entry in (f"{name}.conf", f"{name}.json", f".{name}.json.tmp"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry, dir_fd=dirfd)


class Record:
    """What IFNAME.json says: who brought the tunnel up, when, and which interface it is.

    The interface's identity (its ifindex and the public key it was brought up with) is what
    ties the record to the live interface: a name alone is not enough, since the interface
    may be deleted outside fiotray and another one made under the same name.
    """

    __slots__ = ("created", "ifindex", "public_key", "uid")

    def __init__(
        self, uid: int | None, created: int, ifindex: int = 0, public_key: str | None = None
    ) -> None:
        self.uid = uid  # None: unreadable
        self.created = created  # unix seconds, 0 = unknown
        self.ifindex = ifindex  # 0 = not known yet (`up` still running) or an older record
        self.public_key = public_key  # None: a record from before keys were recorded

    def text(self) -> str:
        """What json.dumps of the four fields gives; the form _parse_own_record reads back."""
        return (
            f'{{"uid": {int(self.uid or 0)}, "created": {int(self.created)}, '
            f'"ifindex": {int(self.ifindex)}, "public_key": "{self.public_key}"}}\n'
        )


def read_record(dirfd: int, name: str) -> int | None:
    """The owner uid of IFNAME's record; None if the record is unreadable.

    Raises FileNotFoundError when there is no record.
    """
    return _record(dirfd, name).uid


def _record(dirfd: int, name: str) -> Record:
    """IFNAME's record (uid None when unreadable); FileNotFoundError when there is none."""
    fd = os.open(f"{name}.json", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return Record(None, 0)
        raw = os.read(fd, 4096)
    finally:
        os.close(fd)
    fast = _parse_own_record(raw)
    if fast is not None:
        return fast
    import json  # a record not in the exact form cmd_up writes: read it as before

    try:
        data = json.loads(raw.decode("utf-8"))
        uid, created = data["uid"], data.get("created", 0)
        ifindex, key = data.get("ifindex", 0), data.get("public_key")
    except (ValueError, KeyError, TypeError, AttributeError):
        return Record(None, 0)
    if not _is_uint(created):
        created = 0
    if not _is_uint(ifindex):
        ifindex = 0
    if not (isinstance(key, str) and is_key_shape(key)):
        key = None
    return Record(uid if _is_uint(uid) else None, created, ifindex, key)


def _is_uint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _canonical_uint(digits: bytes) -> bool:
    # bytes.isdigit() is ASCII-only; JSON allows no leading zeros.
    return digits.isdigit() and (digits == b"0" or not digits.startswith(b"0"))


def _parse_own_record(raw: bytes) -> Record | None:
    """The record in exactly the form Record.text writes, else None.

    `down` reads a record on every call: this spares it json (and re, which json imports).
    Where it answers, json.loads would give the same values.
    """
    head, tail = b'{"uid": ', b'"}\n'
    if not (raw.startswith(head) and raw.endswith(tail)):
        return None
    uid, sep1, rest = raw[len(head) : -len(tail)].partition(b', "created": ')
    created, sep2, rest = rest.partition(b', "ifindex": ')
    ifindex, sep3, key = rest.partition(b', "public_key": "')
    if not (sep1 and sep2 and sep3):
        return None
    if not all(_canonical_uint(n) for n in (uid, created, ifindex)):
        return None
    text = key.decode("ascii", "replace")
    if not is_key_shape(text):
        return None
    return Record(int(uid), int(created), int(ifindex), text)


def _has_file(dirfd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


# --------------------------------------------------------------------------- identity


def iface_index(name: str) -> int | None:
    """The live interface's ifindex; None when there is no such interface."""
    try:
        with open(os.path.join(SYS_CLASS_NET, name, "ifindex"), "rb") as fh:
            raw = fh.read(32).strip()
    except OSError:
        return None
    return int(raw) if raw.isdigit() else None


def public_key_of(wg: str, private_key: str) -> str:
    """`wg pubkey`: the public key an interface brought up with private_key will show."""
    try:
        done = run_tool([wg, "pubkey"], WG_SHOW_TIMEOUT, input=(private_key + "\n").encode())
    except ToolTimeout:
        raise WgError(EXIT_WG_QUICK, "wg pubkey timed out") from None
    key = done.stdout.decode("ascii", "replace").strip()
    if done.returncode != 0 or not is_key_shape(key):
        raise WgError(EXIT_WG_QUICK, f"wg pubkey failed (exit {done.returncode})")
    return key


def live_public_key(wg: str, name: str) -> str | None:
    """`wg show IFNAME public-key`; None for no key, no WireGuard interface, or no answer."""
    try:
        done = run_tool([wg, "show", name, "public-key"], WG_SHOW_TIMEOUT)
    except ToolTimeout:
        return None
    key = done.stdout.decode("ascii", "replace").strip()
    return key if done.returncode == 0 and is_key_shape(key) else None


def _recorded_key(dirfd: int, name: str, record: Record, wg: str) -> str | None:
    """The public key IFNAME was brought up with.

    Records written before keys were recorded have none: derive it from the rendered config
    beside them (its PrivateKey line), so a tunnel up across an upgrade stays manageable.
    """
    if record.public_key is not None:
        return record.public_key
    try:
        fd = os.open(f"{name}.conf", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
    except OSError:
        return None
    try:
        raw = os.read(fd, MAX_INPUT)
    finally:
        os.close(fd)
    for line in raw.decode("ascii", "replace").splitlines():
        key, sep, value = line.partition(" = ")
        if sep and key == "PrivateKey" and is_key_shape(value):
            try:
                return public_key_of(wg, value)
            except WgError:
                return None
    return None


def is_same_interface(dirfd: int, name: str, record: Record, live_key: str | None, wg: str) -> bool:
    """Whether the live IFNAME is the interface the record describes.

    Both must agree: the ifindex (a new interface under the same name gets a new one, unless
    someone asks for the old one with `ip link add ... index N`) and the public key (a copy
    of our config brought up by hand has ours, but not our ifindex).
    """
    if record.ifindex and iface_index(name) != record.ifindex:
        return False
    expected = _recorded_key(dirfd, name, record, wg)
    return expected is not None and live_key == expected


# --------------------------------------------------------------------------- commands


def _wg_quick(wg_quick: str, action: str, conf_path: str, secrets: list[str]) -> str | None:
    """Run `wg-quick ACTION CONF`: None when it worked, else what went wrong (secret-free)."""
    try:
        done = run_tool([wg_quick, action, conf_path], WG_QUICK_TIMEOUT)
    except ToolTimeout:
        return f"timed out after {WG_QUICK_TIMEOUT:g} s"
    if done.returncode == 0:
        return None
    if done.returncode < 0:  # subprocess's way of saying "killed by signal N"
        return f"killed by signal {-done.returncode}"
    return f"exit {done.returncode}: {last_error_line(done.stderr, secrets)}"


def check_listen_port(config: WgConfig, uid: int) -> None:
    """Only root may have a tunnel listen on a privileged port (below 1024).

    A port below 1024 is the system's promise that only root listens there: a user's tunnel
    on 53, 123 or 500 would squat the port a system service (DNS, NTP, IKE) binds, and its
    traffic would reach the user's WireGuard instead. Root may: it could do so anyway.
    """
    port = config.interface.listen_port
    if uid != 0 and port is not None and port < PRIVILEGED_PORTS:
        raise WgError(
            EXIT_USAGE,
            f"ListenPort {port} is a privileged port (below {PRIVILEGED_PORTS}): only root may "
            "use one; leave ListenPort out, or pick one from 1024 up",
        )


def cmd_up(name: str, config: WgConfig) -> int:
    require_root()
    wg_quick = require_tool("wg-quick")
    wg = require_tool("wg")  # wg-quick calls both through PATH
    require_tool("ip")
    uid = caller_uid()
    check_listen_port(config, uid)
    if iface_exists(name):  # before creating anything
        raise WgError(EXIT_CONFLICT, f"interface {name} already exists")
    public_key = public_key_of(wg, config.interface.private_key)
    dirfd = open_runtime_dir(create=True)
    assert dirfd is not None
    lockfd = -1
    try:
        lockfd = lock_interface(dirfd, name)
        if iface_exists(name):
            raise WgError(EXIT_CONFLICT, f"interface {name} already exists")
        _remove_records(dirfd, name)  # left over from a tunnel that is gone
        conf_path = os.path.join(os.fspath(RUNTIME_DIR), f"{name}.conf")
        record = Record(uid, int(time.time()), 0, public_key)
        try:
            _write_new(dirfd, f"{name}.conf", render_config(config).encode("utf-8"))
            # Written before wg-quick runs: a helper killed half-way leaves a tunnel that can
            # still be taken down. The ifindex is known only once the interface exists.
            _write_record(dirfd, name, record)
            detail = _wg_quick(wg_quick, "up", conf_path, config.secrets())
            if detail is None:
                record.ifindex = iface_index(name) or 0
                _write_record(dirfd, name, record)
        except BaseException:
            _remove_records(dirfd, name)
            raise
        if detail is not None:
            _remove_records(dirfd, name)
            if not detail.startswith("exit ") and iface_exists(name):
                # wg-quick was stopped (timed out, or killed) before its own clean-up could
                # remove the interface it had made. It did not exist when we took the lock.
                _delete_link(name)
            raise WgError(EXIT_WG_QUICK, f"wg-quick up {name} failed ({detail}){_hint(detail)}")
    finally:
        if lockfd >= 0:
            os.close(lockfd)
        os.close(dirfd)
    return EXIT_OK


def _delete_link(name: str) -> None:
    with contextlib.suppress(WgError):  # the error the caller is raising says more
        run_tool([require_tool("ip"), "link", "delete", "dev", name], WG_SHOW_TIMEOUT)


def cmd_down(name: str, out: TextIO) -> int:
    require_root()
    uid = caller_uid()
    not_ours = WgError(EXIT_CONFLICT, f"{name} was not brought up by fiotray")
    dirfd = open_runtime_dir(create=False)
    if dirfd is None:
        raise not_ours
    lockfd = -1
    try:
        if not _has_file(dirfd, f"{name}.json"):
            raise not_ours  # before the lock: no lock file for names fiotray never had
        lockfd = lock_interface(dirfd, name)
        try:
            record = _record(dirfd, name)
        except FileNotFoundError:  # taken down meanwhile
            raise not_ours from None
        owner = record.uid
        if uid != 0 and owner != uid:
            whose = "an unreadable record" if owner is None else f"uid {owner}"
            raise WgError(EXIT_CONFLICT, f"{name} belongs to {whose}, not to uid {uid}")
        if not iface_exists(name):
            _remove_records(dirfd, name)
            out.write(f"{name} was already gone; its record was removed\n")
            return EXIT_OK
        if not _has_file(dirfd, f"{name}.conf"):
            raise WgError(
                EXIT_CONFLICT, f"the config of {name} is missing from {os.fspath(RUNTIME_DIR)}"
            )
        wg_quick = require_tool("wg-quick")
        wg = require_tool("wg")
        require_tool("ip")
        if not is_same_interface(dirfd, name, record, live_public_key(wg, name), wg):
            # Ours was deleted and this one made outside fiotray: the record describes
            # nothing that exists any more, and this interface is not ours to take down.
            _remove_records(dirfd, name)
            raise WgError(
                EXIT_CONFLICT,
                f"{name} was not brought up by fiotray: the one fiotray made was replaced "
                "outside fiotray; left up, and the stale record removed",
            )
        conf_path = os.path.join(os.fspath(RUNTIME_DIR), f"{name}.conf")
        detail = _wg_quick(wg_quick, "down", conf_path, [])
        if detail is not None:
            if not iface_exists(name):
                _remove_records(dirfd, name)
            raise WgError(EXIT_WG_QUICK, f"wg-quick down {name} failed ({detail})")
        _remove_records(dirfd, name)
    finally:
        if lockfd >= 0:
            os.close(lockfd)
        os.close(dirfd)
    return EXIT_OK


def _wg_show(wg: str, name: str) -> dict[str, object] | None:
    try:
        done = run_tool([wg, "show", name, "dump"], WG_SHOW_TIMEOUT)
    except ToolTimeout:
        return None
    if done.returncode != 0:
        return None
    try:
        return parse_wg_dump(done.stdout.decode("utf-8", "replace"))
    except ValueError:
        return None


def status(caller: int | None = None) -> dict[str, object]:
    """Every interface with a record, as `caller` (a uid; None: ourselves) may see it; reads only.

    Only the caller's own tunnels (every tunnel, for root) are shown in detail. Of another
    user's, the name and whether it exists, and nothing more: its endpoint and allowed IPs
    tell which servers and device networks a colleague works with, its byte counters and
    handshake times when, and its public key who they are to those servers. The name and
    up/down are no secret (/sys/class/net and `ip link` show them to everyone), and they let
    the app say "up, brought up by another user" instead of "up outside fiotray".
    """
    if caller is None:
        caller = caller_uid()
    interfaces: list[dict[str, object]] = []
    dirfd = open_runtime_dir(create=False)
    if dirfd is not None:
        try:
            names = sorted(
                entry[:-5]
                for entry in os.listdir(dirfd)
                if entry.endswith(".json") and is_ifname(entry[:-5])
            )
            for name in names:
                peek = peek_interface_lock(dirfd, name)
                try:
                    entry = _status_entry(dirfd, name, busy=peek is None)
                finally:
                    if peek is not None and peek >= 0:
                        os.close(peek)
                if entry is None:
                    continue
                mine = entry["owner_uid"] == caller
                if mine or caller == 0:
                    interfaces.append({**entry, "mine": mine})
                else:
                    interfaces.append({"name": name, "exists": entry["exists"], "mine": False})
        finally:
            os.close(dirfd)
    return {"version": STATUS_VERSION, "interfaces": interfaces}


def _status_entry(dirfd: int, name: str, *, busy: bool) -> dict[str, object] | None:
    """IFNAME's status entry; None when it has no record or the live interface is not ours.

    busy: an `up` or `down` of IFNAME is running, so the interface may be half-made (no key
    yet): report that it exists, and no detail, rather than judge its identity now.
    """
    try:
        record = _record(dirfd, name)
    except FileNotFoundError:  # taken down meanwhile
        return None
    entry: dict[str, object] = {
        "name": name,
        "owner_uid": record.uid,
        # When it was brought up: lets the app tell "connecting" from "never answered".
        "created": record.created,
        "exists": iface_exists(name),
        "public_key": None,
        "listen_port": None,
        "peers": [],
    }
    if entry["exists"] and not busy:
        wg = require_tool("wg")
        shown = _wg_show(wg, name)
        live_key = shown.get("public_key") if shown is not None else None
        key = live_key if isinstance(live_key, str) else None
        if not is_same_interface(dirfd, name, record, key, wg):
            return None  # another interface under our name: not fiotray's to claim
        if shown is not None:
            entry.update(shown)
    return entry


def cmd_status(out: TextIO) -> int:
    require_root()
    import json

    out.write(json.dumps(status(), sort_keys=False) + "\n")
    return EXIT_OK


def read_input(stream: BinaryIO | None) -> bytes:
    if stream is None:
        raise ConfigError("no config on standard input")
    # One byte more than allowed tells "too big" from "exactly the limit".
    return stream.read(MAX_INPUT + 1)


def run(argv: list[str], stdin: BinaryIO | None, stdout: TextIO) -> int:
    if argv[:1] == ["up"] and len(argv) == 2:
        name = validate_ifname(argv[1])
        config = parse_config_bytes(read_input(stdin))
        return cmd_up(name, config)
    if argv[:1] == ["down"] and len(argv) == 2:
        return cmd_down(validate_ifname(argv[1]), stdout)
    if argv == ["status"]:
        return cmd_status(stdout)
    raise WgError(EXIT_USAGE, USAGE)


def error_line(message: str) -> str:
    return f"{PROG}: {sanitize(message, limit=400)}\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    stdin = sys.stdin.buffer if sys.stdin is not None else None
    try:
        code = run(args, stdin, sys.stdout)
        sys.stdout.flush()
        return code
    except WgError as exc:
        sys.stderr.write(error_line(exc.message))
        return exc.code
    except BrokenPipeError:
        return EXIT_INTERNAL
    except Exception as exc:
        # The exception's text might quote input: name only its type.
        sys.stderr.write(error_line(f"internal error ({type(exc).__name__})"))
        return EXIT_INTERNAL


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main())
