"""Port forwards to devices over their SSH route: the ssh argv, the records, the stores.

A forward is one `ssh -f -N` process with `-L` (a device port reachable on this
machine's loopback) or `-R` (a port on the device's loopback reaching this machine),
built from the very argv `fiotray ssh` uses (`core.ssh.ssh_argv`), so host key
checks, identity, route and the user's allow-listed options are the same. Never a
shell: the forward options are inserted as argv elements before ssh's `--`.

Each forward has its own control socket (`ControlMaster=yes`, `ControlPersist=no`)
in a private runtime directory: `ssh -O check` on it tells whether that very forward
is alive, and `ssh -O exit` on it ends exactly that one, never another ssh.

`-f` with `ExitOnForwardFailure=yes` makes ssh's own exit the readiness event: the
first process exits 0 only once authentication succeeded, the local listener is bound
(or, for `-R`, the device confirmed the remote listener) and the control socket is
listening; otherwise it exits 255 with the reason in the forward's log.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

from fiotray.core.devices import validate_device_name
from fiotray.core.errors import FiotrayError
from fiotray.core.factories import validate_factory_name
from fiotray.core.files import private_dir, runtime_dir
from fiotray.core.store import JsonFile

Kind = Literal["local", "remote"]
KINDS: tuple[str, ...] = get_args(Kind)

# ssh pings the device every 15 s and gives up after 3 unanswered pings: a dead route
# ends the forward in under a minute, where the supervisor notices and restarts it.
SERVER_ALIVE_INTERVAL = 15
SERVER_ALIVE_COUNT_MAX = 3
# Unix socket paths are at most 107 bytes; ssh binds `<ControlPath>.<16 random chars>`
# first and renames it, so the path itself must leave room for that suffix.
MAX_CONTROL_PATH = 107 - 17
_ID_RE = re.compile(r"[0-9a-f]{8}")
_PID_RE = re.compile(r"pid=(\d+)")

# Device ports that serve a web UI, and the scheme to open them with.
WEB_PORTS: dict[int, str] = {
    80: "http",
    443: "https",
    3000: "http",
    5000: "http",
    8000: "http",
    8080: "http",
    8443: "https",
    8888: "http",
    9090: "http",
}
# What the "Forward a port…" dialog offers; (port, label).
PRESETS: tuple[tuple[int, str], ...] = (
    (80, "Web UI (HTTP)"),
    (443, "Web UI (HTTPS)"),
    (22, "SSH"),
    (2345, "gdbserver"),
    (5555, "adb"),
)


# -- validation ---------------------------------------------------------------------


def validate_port(port: object, what: str = "port") -> int:
    """An int in 1..65535 (a digit string is accepted, for argv and JSON alike)."""
    if isinstance(port, str) and re.fullmatch(r"[0-9]{1,5}", port):
        port = int(port)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise FiotrayError(f"The {what} {str(port)[:20]!r} is not a port number (1-65535).")
    return port


def validate_local_port(port: object, what: str = "local port") -> int:
    """`validate_port`, and below 1024 only for root (others cannot bind it anyway, and
    ssh would fail later with a less clear message)."""
    value = validate_port(port, what)
    if value < 1024 and getattr(os, "geteuid", lambda: 0)() != 0:
        raise FiotrayError(
            f"The {what} {value} is below 1024, which only root may listen on; "
            "pick a port from 1024 up, or leave it out to get a free one."
        )
    return value


def validate_forward_id(forward_id: str) -> str:
    if not isinstance(forward_id, str) or not _ID_RE.fullmatch(forward_id):
        raise FiotrayError(
            f"{str(forward_id)[:20]!r} is not a forward id (`fiotray forward list` shows them)."
        )
    return forward_id


def new_forward_id() -> str:
    # os.urandom, not `secrets`: that imports hashlib, which the idle tray does without.
    return os.urandom(4).hex()


def pick_free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now: bind port 0, read what the kernel gave, close.

    There is a small race (another program may take the port before ssh binds it);
    ExitOnForwardFailure then makes ssh fail with "Address already in use" instead of
    running without its forward, and the caller says so.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# -- records ------------------------------------------------------------------------


@dataclass(frozen=True)
class ForwardSpec:
    """What a forward is, without a process: what `--save` keeps and `restore` starts."""

    factory: str
    device: str
    kind: Kind
    remote_port: int  # the port on the device
    local_port: int | None = None  # on this machine; None: a free one is picked
    route: str | None = None  # None: the factory's SSH route

    def validated(self) -> ForwardSpec:
        if self.kind not in KINDS:
            raise FiotrayError(f"Forward kind {str(self.kind)[:20]!r} is neither local nor remote.")
        # Here, not at the top: core.ssh imports hashlib, which the idle tray does without.
        from fiotray.core.ssh import ROUTES

        if self.route is not None and self.route not in ROUTES:
            raise FiotrayError(f"SSH route {str(self.route)[:20]!r} is unknown.")
        if self.kind == "remote" and self.local_port is None:
            raise FiotrayError("A remote forward needs the local port it reaches.")
        local = None
        if self.local_port is not None:
            # A remote forward connects to the local port: any port may be reached.
            local = (
                validate_local_port(self.local_port)
                if self.kind == "local"
                else validate_port(self.local_port, "local port")
            )
        return ForwardSpec(
            factory=validate_factory_name(self.factory),
            device=validate_device_name(self.device),
            kind=self.kind,
            remote_port=validate_port(self.remote_port, "device port"),
            local_port=local,
            route=self.route,
        )

    def same_forward(self, other: ForwardSpec) -> bool:
        """The same ports to the same device (the route may differ)."""
        return (self.factory, self.device, self.kind, self.remote_port, self.local_port) == (
            other.factory,
            other.device,
            other.kind,
            other.remote_port,
            other.local_port,
        )

    def runs_in(self, running: Sequence[Forward]) -> bool:
        """Whether one of the `running` (alive) forwards is this saved one: the same ports,
        or any local port for a spec saved without one."""
        for forward in running:
            if not forward.alive:
                continue
            spec = forward.spec
            if self.same_forward(spec) or (
                self.local_port is None and replace(spec, local_port=None).same_forward(self)
            ):
                return True
        return False

    @classmethod
    def from_json(cls, data: Any) -> ForwardSpec:
        if not isinstance(data, dict):
            raise FiotrayError("A saved forward is not an object.")
        try:
            return cls(
                factory=data["factory"],
                device=data["device"],
                kind=data["kind"],
                remote_port=data["remote_port"],
                local_port=data.get("local_port"),
                route=data.get("route"),
            ).validated()
        except KeyError as exc:
            raise FiotrayError(f"A saved forward has no {exc.args[0]!r}.") from None


@dataclass(frozen=True)
class Forward:
    """A started forward: its spec with the ports settled, and the process behind it."""

    id: str
    spec: ForwardSpec  # local_port is always set here
    route: str  # the route it took
    pid: int
    control_path: str
    log_path: str
    started: float  # Unix time
    alive: bool = field(default=True, compare=False)  # as last checked

    @property
    def local_port(self) -> int:
        assert self.spec.local_port is not None
        return self.spec.local_port

    @property
    def address(self) -> str:
        """Where to connect: this machine's loopback (local) or the device's (remote)."""
        if self.spec.kind == "local":
            return f"127.0.0.1:{self.local_port}"
        return f"{self.spec.device}:127.0.0.1:{self.spec.remote_port}"

    @property
    def url(self) -> str | None:
        """A browser address for a local forward of a web port."""
        scheme = WEB_PORTS.get(self.spec.remote_port)
        if self.spec.kind != "local" or scheme is None:
            return None
        return f"{scheme}://127.0.0.1:{self.local_port}"

    @property
    def label(self) -> str:
        if self.spec.kind == "local":
            return f"{self.spec.device}:{self.spec.remote_port} → 127.0.0.1:{self.local_port}"
        return f"127.0.0.1:{self.local_port} → {self.spec.device}:{self.spec.remote_port}"

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "alive"}
        data["spec"] = asdict(self.spec)
        return data

    def public_json(self) -> dict[str, Any]:
        """What `fiotray forward list --json` prints: flat, with the route it took."""
        data = {k: v for k, v in asdict(self.spec).items() if k != "route"}
        data.update({k: v for k, v in self.to_json().items() if k != "spec"})
        data.update(alive=self.alive, address=self.address, url=self.url)
        return data

    @classmethod
    def from_json(cls, data: Any) -> Forward:
        if not isinstance(data, dict):
            raise FiotrayError("A running forward's record is not an object.")
        spec = ForwardSpec.from_json(data.get("spec"))
        try:
            forward = cls(
                id=validate_forward_id(data["id"]),
                spec=spec,
                route=str(data["route"]),
                pid=int(data["pid"]),
                control_path=str(data["control_path"]),
                log_path=str(data["log_path"]),
                started=float(data["started"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FiotrayError(f"A running forward's record is malformed ({exc}).") from None
        if spec.local_port is None:
            raise FiotrayError("A running forward's record has no local port.")
        return forward

    def with_alive(self, alive: bool) -> Forward:
        return replace(self, alive=alive)


# -- argv ---------------------------------------------------------------------------


def forward_options(kind: Kind, local_port: int, remote_port: int, control_path: str) -> list[str]:
    """The options that make an ssh session a detached forward with its own socket."""
    local_port = validate_port(local_port, "local port")
    remote_port = validate_port(remote_port, "device port")
    if kind == "local":
        # Bound to loopback only: other machines on this one's networks never reach it.
        spec = ["-L", f"127.0.0.1:{local_port}:127.0.0.1:{remote_port}"]
    elif kind == "remote":
        # sshd binds remote forwards to the device's loopback unless GatewayPorts says
        # otherwise; the device's own programs reach this machine's local port.
        spec = ["-R", f"{remote_port}:127.0.0.1:{local_port}"]
    else:
        raise FiotrayError(f"Forward kind {str(kind)[:20]!r} is neither local nor remote.")
    return [
        "-f",
        "-N",
        *spec,
        *("-o", "ExitOnForwardFailure=yes"),
        *("-o", f"ServerAliveInterval={SERVER_ALIVE_INTERVAL}"),
        *("-o", f"ServerAliveCountMax={SERVER_ALIVE_COUNT_MAX}"),
        *("-o", "ControlMaster=yes"),
        *("-o", f"ControlPath={control_path_value(control_path)}"),
        *("-o", "ControlPersist=no"),
    ]


def control_path_value(path: str | os.PathLike[str]) -> str:
    text = os.fspath(path)
    if len(os.fsencode(text)) > MAX_CONTROL_PATH:
        raise FiotrayError(
            f"The forward's control socket path {text[:60]!r}... is too long for a socket; "
            "set XDG_RUNTIME_DIR to a shorter directory."
        )
    from fiotray.core.ssh import ssh_path_value

    # ssh expands %-tokens in ControlPath; ssh_path_value escapes them and quotes spaces.
    return ssh_path_value(text, "control socket")


def forward_argv(
    ssh_argv: Sequence[str], kind: Kind, local_port: int, remote_port: int, control_path: str
) -> list[str]:
    """`ssh_argv` (from `core.ssh.ssh_argv`, without a remote command) made a forward.

    The options go right before the `--` that precedes the destination: after the
    security options, so those keep their first-value-wins precedence, and never after
    the destination, where ssh would take them for a remote command.
    """
    argv = list(ssh_argv)
    if len(argv) < 3 or argv[-2] != "--" or argv[-1].startswith("-"):
        raise FiotrayError("A forward needs an ssh command that ends with `-- user@host`.")
    at = len(argv) - 2
    return [*argv[:at], *forward_options(kind, local_port, remote_port, control_path), *argv[at:]]


def control_argv(ssh: str, control_path: str, operation: Literal["check", "exit"]) -> list[str]:
    """`ssh -O check|exit` on exactly this forward's socket. The host name is required by
    ssh's syntax but unused: the socket is given as is."""
    return [
        ssh,
        *("-o", f"ControlPath={control_path_value(control_path)}"),
        "-O",
        operation,
        "--",
        "fiotray-forward",
    ]


def master_pid(check_output: str) -> int | None:
    """The pid in `ssh -O check`'s "Master running (pid=1234)"."""
    found = _PID_RE.search(check_output)
    return int(found.group(1)) if found else None


def pid_is_forward(pid: int, control_path: str) -> bool:
    """Whether `pid` is alive and (where /proc tells) the ssh of this control socket, so a
    pid reused by another program is never signalled."""
    if pid <= 1:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process: not ours, whatever the number says
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        words = cmdline.read_bytes().split(b"\0")
    except FileNotFoundError:
        # No /proc (macOS) leaves only the pid; on Linux the process just ended.
        return not Path("/proc/self").exists()
    except OSError:
        return False
    wanted = f"ControlPath={control_path_value(control_path)}".encode()
    return wanted in words


def log_tail(path: str | os.PathLike[str], limit: int = 600) -> str:
    """The end of a forward's log, as one line for an error message."""
    try:
        data = Path(path).read_bytes()[-limit:]
    except OSError:
        return ""
    lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    # ssh's warnings about adding a host key are noise next to the reason it failed.
    lines = [ln for ln in lines if not ln.startswith("Warning: Permanently added")]
    from fiotray.core.format import safe_text

    # ssh passes on what the device says (a banner, a refusal): never raw to a terminal.
    return safe_text(" ".join(lines[-3:]))


# -- stores -------------------------------------------------------------------------


def forwards_runtime_dir(base: Path | None = None) -> Path:
    """Where control sockets, logs and running.json live: private to this user, and
    short enough a path for a socket."""
    root = private_dir(base) if base is not None else private_dir(runtime_dir() / "fiotray")
    return private_dir(root / "forwards")


class SavedForwards:
    """forwards.json in the config dir: the forwards `fiotray forward restore` (and the
    tray at start) start again."""

    VERSION = 1

    def __init__(self, config_dir: Path) -> None:
        self.path = config_dir / "forwards.json"
        self._file: JsonFile[list[ForwardSpec]] = JsonFile(
            self.path,
            parse=self._parse,
            dump=lambda specs: {
                "version": self.VERSION,
                "forwards": [asdict(s) for s in specs],
            },
            default=list,
            invalid=self._refuse,
        )

    def _parse(self, data: Any) -> list[ForwardSpec]:
        if not isinstance(data, dict) or not isinstance(data.get("forwards"), list):
            raise FiotrayError(f"The forwards file {self.path} is malformed; fix or remove it.")
        return [ForwardSpec.from_json(item) for item in data["forwards"]]

    def _refuse(self, reason: str) -> list[ForwardSpec]:
        raise FiotrayError(f"The forwards file {self.path} cannot be read ({reason}).")

    def load(self) -> list[ForwardSpec]:
        return self._file.read()

    def add(self, spec: ForwardSpec) -> bool:
        """Save `spec` (replacing the same ports to the same device); whether it was new."""
        spec = spec.validated()
        added = True

        def change(specs: list[ForwardSpec]) -> list[ForwardSpec]:
            nonlocal added
            kept = [s for s in specs if not s.same_forward(spec)]
            added = len(kept) == len(specs)
            return [*kept, spec]

        self._file.update(change)
        return added

    def remove(self, spec: ForwardSpec) -> bool:
        removed = False

        def change(specs: list[ForwardSpec]) -> list[ForwardSpec]:
            nonlocal removed
            kept = [s for s in specs if not s.same_forward(spec)]
            removed = len(kept) != len(specs)
            return kept

        self._file.update(change)
        return removed


class RunningForwards:
    """running.json next to the sockets: the forwards started by any fiotray process of
    this user, so a later command lists and stops them. Only a convenience: an unreadable
    file is read as empty (its forwards still end with their sockets' ssh -O exit)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "running.json"
        self._file: JsonFile[list[Forward]] = JsonFile(
            self.path,
            parse=self._parse,
            dump=lambda fwds: {"forwards": [f.to_json() for f in fwds]},
            default=list,
            invalid=lambda _reason: [],
        )

    @staticmethod
    def _parse(data: Any) -> list[Forward]:
        if not isinstance(data, dict) or not isinstance(data.get("forwards"), list):
            return []
        found = []
        for item in data["forwards"]:
            with contextlib.suppress(FiotrayError):
                found.append(Forward.from_json(item))
        return found

    def load(self) -> list[Forward]:
        return self._file.read()

    def add(self, forward: Forward) -> None:
        self._file.update(lambda fwds: [*(f for f in fwds if f.id != forward.id), forward])

    def remove(self, forward_id: str) -> None:
        self._file.update(lambda fwds: [f for f in fwds if f.id != forward_id])

    def paths_for(self, forward_id: str) -> tuple[str, str]:
        """(control socket, log) of a new forward."""
        validate_forward_id(forward_id)
        control = str(self.directory / f"fwd-{forward_id}")
        control_path_value(control)  # too long: refused before anything starts
        return control, str(self.directory / f"fwd-{forward_id}.log")


def open_log(path: str) -> int:
    """A fresh private log file for a forward's ssh stderr; its descriptor."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)


def now() -> float:
    return time.time()
