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
IFNAME.json (who brought it up), so `down` only touches tunnels fiotray made,
and only for the user who made them (or root).

`status` prints one JSON line, never a private or preshared key:

    {"version": 1, "interfaces": [{"name", "owner_uid", "created", "exists", "public_key",
     "listen_port", "peers": [{"public_key", "endpoint", "allowed_ips",
     "latest_handshake", "rx_bytes", "tx_bytes", "persistent_keepalive"}]}]}

(latest_handshake in unix seconds, 0 = never; persistent_keepalive 0 = off;
public_key and listen_port null and peers empty while the interface does not
exist.) `up` prints nothing; `down` prints a note when the interface was
already gone.

Exit codes (fiotray.wg.errors): 0 ok; 1 internal error; 2 usage or refused
input (nothing run, nothing written), or not root; 3 state conflict; 4 a
required tool is missing; 5 wg-quick failed. Every error is one line on stderr
starting with "fiotray-helper: ".

Stdlib only, Python >= 3.11: this module and the fiotray.wg package are
installed beside the launcher (fiotray.helper.install). Importing it has no
side effects.
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
from fiotray.wg.tools import ToolTimeout, find_tool, last_error_line, require_tool, run_tool

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
LOCK_TIMEOUT = 45.0  # longer than one wg-quick run of another helper holding the lock
STATUS_VERSION = 1

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


def lock_dir(fd: int) -> None:
    """Serialize up/down of all helpers (a flock on the directory itself: nothing to write)."""
    deadline = time.monotonic() + LOCK_TIMEOUT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise WgError(EXIT_CONFLICT, "another fiotray-helper is still busy") from None
            time.sleep(0.05)


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


def _remove_records(dirfd: int, name: str) -> None:
    for suffix in (".conf", ".json"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name + suffix, dir_fd=dirfd)


def read_record(dirfd: int, name: str) -> int | None:
    """The owner uid of IFNAME's record; None if the record is unreadable.

    Raises FileNotFoundError when there is no record.
    """
    return _record(dirfd, name)[0]


def _record(dirfd: int, name: str) -> tuple[int | None, int]:
    """(owner uid or None, creation time or 0) of IFNAME's record."""
    fd = os.open(f"{name}.json", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None, 0
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
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, 0
    if not isinstance(created, int) or isinstance(created, bool) or created < 0:
        created = 0
    valid = isinstance(uid, int) and not isinstance(uid, bool) and uid >= 0
    return (uid if valid else None), created


def _record_text(uid: int, created: int) -> str:
    """The record cmd_up writes: what json.dumps({"uid": uid, "created": created}) gives."""
    return f'{{"uid": {int(uid)}, "created": {int(created)}}}\n'


def _canonical_uint(digits: bytes) -> bool:
    # bytes.isdigit() is ASCII-only; JSON allows no leading zeros.
    return digits.isdigit() and (digits == b"0" or not digits.startswith(b"0"))


def _parse_own_record(raw: bytes) -> tuple[int, int] | None:
    """(uid, created) from exactly what _record_text writes, else None.

    `down` reads a record on every call: this spares it json (and re, which json imports).
    Where it answers, json.loads would give the same numbers.
    """
    head, tail = b'{"uid": ', b"}\n"
    if not (raw.startswith(head) and raw.endswith(tail)):
        return None
    uid, sep, created = raw[len(head) : -len(tail)].partition(b', "created": ')
    if not (sep and _canonical_uint(uid) and _canonical_uint(created)):
        return None
    return int(uid), int(created)


def _has_file(dirfd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


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


def cmd_up(name: str, config: WgConfig) -> int:
    require_root()
    wg_quick = require_tool("wg-quick")
    require_tool("wg")  # wg-quick calls both through PATH
    require_tool("ip")
    uid = caller_uid()
    if iface_exists(name):  # before creating anything
        raise WgError(EXIT_CONFLICT, f"interface {name} already exists")
    dirfd = open_runtime_dir(create=True)
    assert dirfd is not None
    try:
        lock_dir(dirfd)
        if iface_exists(name):
            raise WgError(EXIT_CONFLICT, f"interface {name} already exists")
        _remove_records(dirfd, name)  # left over from a tunnel that is gone
        conf_path = os.path.join(os.fspath(RUNTIME_DIR), f"{name}.conf")
        record = _record_text(uid, int(time.time()))
        try:
            _write_new(dirfd, f"{name}.conf", render_config(config).encode("utf-8"))
            _write_new(dirfd, f"{name}.json", record.encode("utf-8"))
            detail = _wg_quick(wg_quick, "up", conf_path, config.secrets())
        except BaseException:
            _remove_records(dirfd, name)
            raise
        if detail is not None:
            _remove_records(dirfd, name)
            raise WgError(EXIT_WG_QUICK, f"wg-quick up {name} failed ({detail}){_hint(detail)}")
    finally:
        os.close(dirfd)
    return EXIT_OK


def cmd_down(name: str, out: TextIO) -> int:
    require_root()
    uid = caller_uid()
    not_ours = WgError(EXIT_CONFLICT, f"{name} was not brought up by fiotray")
    dirfd = open_runtime_dir(create=False)
    if dirfd is None:
        raise not_ours
    try:
        lock_dir(dirfd)
        try:
            owner = read_record(dirfd, name)
        except FileNotFoundError:
            raise not_ours from None
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
        require_tool("wg")
        require_tool("ip")
        conf_path = os.path.join(os.fspath(RUNTIME_DIR), f"{name}.conf")
        detail = _wg_quick(wg_quick, "down", conf_path, [])
        if detail is not None:
            if not iface_exists(name):
                _remove_records(dirfd, name)
            raise WgError(EXIT_WG_QUICK, f"wg-quick down {name} failed ({detail})")
        _remove_records(dirfd, name)
    finally:
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


def status() -> dict[str, object]:
    """Every interface with a record; reads only."""
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
                try:
                    owner, created = _record(dirfd, name)
                except FileNotFoundError:  # taken down meanwhile
                    continue
                entry: dict[str, object] = {
                    "name": name,
                    "owner_uid": owner,
                    # When it was brought up: lets the app tell "connecting" from "never answered".
                    "created": created,
                    "exists": iface_exists(name),
                    "public_key": None,
                    "listen_port": None,
                    "peers": [],
                }
                if entry["exists"]:
                    shown = _wg_show(require_tool("wg"), name)
                    if shown is not None:
                        entry.update(shown)
                interfaces.append(entry)
        finally:
            os.close(dirfd)
    return {"version": STATUS_VERSION, "interfaces": interfaces}


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
