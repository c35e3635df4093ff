"""Tunnels and the tunnel controller.

A tunnel's state is read from the system, never assumed: the interface exists
(`/sys/class/net`, no process, no prompt) and its last handshake (the helper's
read-only `status`, which polkit lets an active user run without a password).
Connect and disconnect go through the privileged helper; requests for one
tunnel are serialized so repeated clicks end in a consistent state.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import platformdirs

from fiotray.core import errors
from fiotray.core.errors import FiotrayError, SetupError, VpnError
from fiotray.core.store import JsonFile
from fiotray.core.tunnelstate import State, TunnelStatus  # re-exported (see tunnelstate)
from fiotray.wg import errors as helper_exit
from fiotray.wg.config import MAX_INPUT, is_ifname

if TYPE_CHECKING:
    from fiotray.core.secrets import SecretStore

log = logging.getLogger(__name__)


# keyring and cryptography are imported on first use: the tray must appear fast, and
# reading a tunnel's state needs neither.
def _wgconf() -> Any:
    from fiotray.core import wgconf

    return wgconf


def tunnel_key(tunnel: str) -> str:
    from fiotray.core.secrets import tunnel_key as key

    return key(tunnel)


HELPER_PATH = Path("/usr/libexec/fiotray/fiotray-helper")
PKEXEC = "pkexec"
SYS_NET = Path("/sys/class/net")
# WireGuard rejects a session 180 s after its handshake (REJECT_AFTER_TIME); with
# traffic or keepalives a new handshake comes every ~2 minutes, so past this the
# tunnel carries nothing.
STALE_AFTER = 180.0
# How long an interface may sit without its first handshake before we say so.
FIRST_HANDSHAKE_GRACE = 15.0
# A server that knows the key answers the first handshake within a second; WireGuard
# tries again every 5 s. Past that, a key never answered is one the server does not know.
ADMIT_GRACE = 5.0
HELPER_TIMEOUT = 60.0

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


# -- tunnels -------------------------------------------------------------------------


@dataclass(frozen=True)
class Tunnel:
    name: str
    kind: Literal["foundries", "plain"]
    interface: str
    template: str  # wg-quick config without PrivateKey
    public_key: str
    endpoint: str = ""
    factory: str | None = None
    address: str | None = None  # the laptop's VPN address (Foundries)
    server_address: str | None = None  # the VPN server's VPN address (Foundries)
    ssh: dict[str, Any] = field(default_factory=dict)  # SshSettings fields
    # How the VPN server learns of this laptop (Foundries): "request" = published in the
    # factory's config for a self-service fiotray-server, under `engineer`; "" = its
    # admin adds the peer by hand.
    access: str = ""
    engineer: str = ""
    # The server has answered this tunnel's key at least once: from then on, silence
    # means the server is unreachable, not that the laptop is still to be admitted.
    admitted: bool = False
    # Brought up when the tray app starts (once the network is up); never by the CLI.
    autoconnect: bool = False

    def validated(self) -> Tunnel:
        if not NAME_RE.match(self.name):
            raise SetupError(
                f"Tunnel name {self.name[:40]!r} must be 1-32 letters, digits, '-' or '_'."
            )
        if not is_ifname(self.interface):
            raise SetupError(
                f"Interface name {self.interface[:40]!r} must start with a letter and have at "
                "most 15 letters, digits, '-' or '_'."
            )
        if self.kind not in ("foundries", "plain"):
            raise SetupError(f"Tunnel {self.name} has an unknown kind.")
        return self


_TUNNEL_FIELDS = frozenset(f.name for f in fields(Tunnel) if f.name != "name")


def interface_for_factory(factory: str) -> str:
    """factory-wireguard-server's default name, `fio<factory>`, cut to the kernel's 15."""
    name = re.sub(r"[^A-Za-z0-9_-]", "", f"fio{factory}")[:15]
    return name if is_ifname(name) else "fiotray0"


class TunnelStore:
    """tunnels.json in the XDG config dir: every tunnel, nothing secret.

    The one home of the default tunnel, for the CLI and the GUI alike. Every change
    is made under the file's lock (see ``fiotray.core.store``).
    """

    # 2: the default tunnel lives here only (version 1 files may have one in settings.json).
    VERSION = 2

    def __init__(self, config_dir: Path | None = None) -> None:
        self.config_dir = config_dir or Path(platformdirs.user_config_dir("fiotray"))
        self.path = self.config_dir / "tunnels.json"
        self._file: JsonFile[dict[str, Any]] = JsonFile(
            self.path,
            parse=self._parse,
            dump=lambda data: data,
            default=lambda: {"version": self.VERSION, "default": None, "tunnels": {}},
            invalid=self._refuse,
            error=SetupError,
        )

    def _parse(self, data: Any) -> dict[str, Any]:
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("tunnels"), dict)
            or not isinstance(data.get("version", 1), int)
        ):
            raise SetupError(f"The tunnels file {self.path} is malformed; fix or remove it.")
        return data

    def _refuse(self, reason: str) -> NoReturn:
        raise SetupError(
            f"The tunnels file {self.path} cannot be read ({reason}); "
            "fix or remove it, nothing was changed."
        )

    def _load(self) -> dict[str, Any]:
        data = self._file.read()
        if data.get("version", 1) < self.VERSION:
            try:
                return self._file.update(self._upgraded)
            except FiotrayError as exc:  # read-only config: use the upgrade, save it later
                log.info("cannot upgrade %s: %s", self.path, exc)
                return self._upgraded(data)
        return data

    def _update(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        def apply(data: dict[str, Any]) -> dict[str, Any]:
            data = self._upgraded(data)
            change(data)
            return data

        return self._file.update(apply)

    def _upgraded(self, data: dict[str, Any]) -> dict[str, Any]:
        """Version 1 → 2: the GUI kept its default tunnel in settings.json; it moves here.

        The GUI's choice wins: the user picked it in the settings dialog, while version 1
        set tunnels.json's default only to the first tunnel saved (no command changes it).
        """
        if data.get("version", 1) >= self.VERSION:
            return data
        legacy = _legacy_default_tunnel(self.config_dir / "settings.json")
        if legacy in data["tunnels"]:
            data["default"] = legacy
        data["version"] = self.VERSION
        return data

    def list(self) -> list[Tunnel]:
        out = []
        for name, entry in sorted(self._load()["tunnels"].items()):
            try:
                # Keys a newer fiotray wrote are left alone (and kept by `save`): a file
                # shared across versions must not break the older one.
                known = {k: v for k, v in entry.items() if k in _TUNNEL_FIELDS}
                out.append(Tunnel(name=name, **known).validated())
            except (AttributeError, TypeError, SetupError) as exc:
                raise SetupError(
                    f"The tunnels file {self.path} has a bad entry {name[:40]!r}: {exc}"
                ) from None
        return out

    def default_name(self) -> str | None:
        default = self._load().get("default")
        return default if isinstance(default, str) and default else None

    def set_default(self, name: str | None) -> None:
        """Make `name` the default tunnel; None: none chosen (the first one is used)."""

        def change(data: dict[str, Any]) -> None:
            if name is not None and name not in data["tunnels"]:
                raise SetupError(f"No tunnel named {name[:40]!r}.")
            data["default"] = name

        self._update(change)

    def get(self, name: str | None = None) -> Tunnel:
        tunnels = {t.name: t for t in self.list()}
        if name is None:
            default = self.default_name()
            if default in tunnels:
                return tunnels[default]
            if len(tunnels) == 1:
                return next(iter(tunnels.values()))
            if not tunnels:
                raise SetupError(
                    "No tunnel configured: add one with `fiotray tunnels add-foundries` or "
                    "`fiotray tunnels import FILE`."
                )
            raise SetupError(
                f"Several tunnels configured ({', '.join(sorted(tunnels))}): name one."
            )
        if name not in tunnels:
            raise SetupError(f"No tunnel named {name[:40]!r}.")
        return tunnels[name]

    def for_factory(self, factory: str) -> Tunnel | None:
        return next((t for t in self.list() if t.factory == factory), None)

    def save(self, tunnel: Tunnel, *, new: bool = False) -> None:
        tunnel.validated()
        entry = asdict(tunnel)
        del entry["name"]
        # Written only when on: an older fiotray (without the field) refuses an entry with
        # a key it does not know, and most tunnels never set it.
        if not tunnel.autoconnect:
            del entry["autoconnect"]

        def change(data: dict[str, Any]) -> None:
            if new and tunnel.name in data["tunnels"]:
                # Never overwrite: the existing tunnel's private key would be lost with it.
                raise SetupError(
                    f"A tunnel named {tunnel.name} already exists: remove it first or pick "
                    "another name."
                )
            for other, raw in data["tunnels"].items():
                clash = isinstance(raw, dict) and raw.get("interface") == tunnel.interface
                if other != tunnel.name and clash:
                    raise SetupError(
                        f"Tunnel {other} already uses interface {tunnel.interface}: remove "
                        f"it first, or give this tunnel another interface (--interface)."
                    )
            old = data["tunnels"].get(tunnel.name)
            newer = (
                {}
                if not isinstance(old, dict)
                else {k: v for k, v in old.items() if k not in _TUNNEL_FIELDS}
            )
            data["tunnels"][tunnel.name] = {**newer, **entry}
            if not data.get("default"):
                data["default"] = tunnel.name

        self._update(change)

    def add(self, tunnel: Tunnel) -> None:
        """Save a new tunnel; refused when one of that name exists (checked under the
        file's lock, so two processes adding the same name cannot both succeed)."""
        self.save(tunnel, new=True)

    def mark_admitted(self, name: str) -> None:
        def change(data: dict[str, Any]) -> None:
            entry = data["tunnels"].get(name)
            if isinstance(entry, dict):
                entry["admitted"] = True

        self._update(change)

    def set_autoconnect(self, name: str, on: bool) -> None:
        def change(data: dict[str, Any]) -> None:
            entry = data["tunnels"].get(name)
            if not isinstance(entry, dict):
                raise SetupError(f"No tunnel named {name[:40]!r}.")
            if on:
                entry["autoconnect"] = True
            else:
                entry.pop("autoconnect", None)  # as `save` writes it: only when on

        self._update(change)

    def remove(self, name: str) -> None:
        def change(data: dict[str, Any]) -> None:
            if data["tunnels"].pop(name, None) is None:
                raise SetupError(f"No tunnel named {name[:40]!r}.")
            if data.get("default") == name:
                data["default"] = None

        self._update(change)


def _legacy_default_tunnel(settings_path: Path) -> str | None:
    """The default tunnel a version-1 GUI kept in settings.json, if any."""
    try:
        data = json.loads(settings_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("default_tunnel") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


async def create_foundries_tunnel(
    store: TunnelStore,
    secrets: SecretStore,
    *,
    name: str,
    factory: str,
    server: Any,  # wgfiles.WireguardServer
    address: str,
    used: set[str],
    interface: str | None = None,
    access: str = "",
    engineer: str = "",
) -> Tunnel:
    """A key pair made here, the private half straight into the keyring."""
    address = _wgconf().check_laptop_address(address, server, used)
    template = _wgconf().foundries_template(server, address)
    private = _wgconf().generate_private_key()
    tunnel = Tunnel(
        name=name,
        kind="foundries",
        interface=interface or interface_for_factory(factory),
        template=template,
        public_key=_wgconf().public_key(private),
        endpoint=server.endpoint,
        factory=factory,
        address=address,
        server_address=server.server_address,
        access=access,
        engineer=engineer,
    ).validated()
    return await _store_new(store, secrets, tunnel, private)


async def import_plain_tunnel(
    store: TunnelStore,
    secrets: SecretStore,
    *,
    name: str,
    text: str,
    interface: str | None = None,
) -> Tunnel:
    imported = _wgconf().split_import(text)
    tunnel = Tunnel(
        name=name,
        kind="plain",
        interface=interface or (name[:15] if is_ifname(name[:15]) else "wgtray0"),
        template=imported.template,
        public_key=imported.public_key,
        endpoint=imported.endpoint,
    ).validated()
    return await _store_new(store, secrets, tunnel, imported.private_key)


async def _store_new(
    store: TunnelStore, secrets: SecretStore, tunnel: Tunnel, private_key: str
) -> Tunnel:
    """The tunnel, then its key into the keyring; neither is left behind when one fails.

    In this order a crash in between leaves a tunnel that says its key is missing (and
    can be removed), never a key in the keyring that nothing names."""
    store.add(tunnel)
    try:
        await secrets.aset(tunnel_key(tunnel.name), private_key)
    except BaseException:
        store.remove(tunnel.name)
        raise
    return tunnel


# The helper takes no larger config; neither does an import.
MAX_CONF_BYTES = MAX_INPUT


def read_conf_file(path: Path) -> str:
    """A wg-quick .conf to import: small, UTF-8 text, or a one-sentence refusal."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_CONF_BYTES + 1)
    except OSError as exc:
        raise FiotrayError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    if len(data) > MAX_CONF_BYTES:
        raise FiotrayError(f"{path} is larger than {MAX_CONF_BYTES // 1024} KiB; not a config.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise FiotrayError(f"{path} is not UTF-8 text.") from None


def name_from_path(path: Path) -> str:
    """A tunnel name from a file name (office.conf -> office)."""
    stem = re.sub(r"[^A-Za-z0-9_-]", "-", path.stem).strip("-_")[:15]
    return stem if NAME_RE.match(stem) else "wireguard"


def admin_line(tunnel: Tunnel) -> str:
    """What the VPN server's admin runs to admit this laptop as a peer (upstream server)."""
    iface = interface_for_factory(tunnel.factory or "")
    return f"wg set {iface} peer {tunnel.public_key} allowed-ips {tunnel.address}/32"


def server_admin_line(tunnel: Tunnel, engineer: str) -> str:
    """The same with fiotray-server on the VPN server, which keeps the peer for good."""
    return (
        f"fiotray-server -f {tunnel.factory} peers add {engineer} {tunnel.public_key} "
        f"--address {tunnel.address}"
    )


def engineer_name() -> str:
    """A name for this laptop among the server's engineers: user@host, made safe."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "engineer"
    raw = f"{user}-{socket.gethostname().split('.')[0]}"
    name = re.sub(r"[^A-Za-z0-9._-]", "-", raw).strip("-._")[:64]
    return name if name and name[0].isalnum() else "engineer"


# -- the helper --------------------------------------------------------------------


@dataclass(frozen=True)
class PeerStatus:
    public_key: str
    endpoint: str
    latest_handshake: float  # unix time, 0 = never
    rx_bytes: int
    tx_bytes: int


@dataclass(frozen=True)
class InterfaceStatus:
    name: str
    exists: bool
    created: float
    peers: tuple[PeerStatus, ...]
    # False: another user brought it up; the helper then tells only name and exists.
    mine: bool = True

    @property
    def latest_handshake(self) -> float:
        return max((p.latest_handshake for p in self.peers), default=0.0)


class HelperClient:
    """Runs the privileged helper: through pkexec, or directly when we are root."""

    def __init__(self, helper: Path = HELPER_PATH, *, pkexec: str = PKEXEC) -> None:
        self.helper = helper
        self.pkexec = pkexec

    def _argv(self, *args: str) -> list[str]:
        if os.geteuid() == 0:
            return [str(self.helper), *args]
        pkexec = shutil.which(self.pkexec)
        if pkexec is None:
            raise VpnError(
                "pkexec is not installed: install the pkexec package (policykit-1 on older "
                "systems) to connect tunnels.",
                code=errors.HELPER_MISSING,
            )
        return [pkexec, "--disable-internal-agent", str(self.helper), *args]

    async def run(self, *args: str, stdin: str | None = None) -> str:
        if not self.helper.is_file():
            raise VpnError(
                f"fiotray's helper is not installed at {self.helper}: install the fiotray "
                "package, or from a source checkout run "
                "`sudo .venv/bin/python -m fiotray.helper.install`.",
                code=errors.HELPER_MISSING,
            )
        argv = self._argv(*args)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # No controlling terminal: pkexec must never fall back to a password prompt.
            start_new_session=True,
        )
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(stdin.encode() if stdin is not None else None), HELPER_TIMEOUT
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise VpnError(
                f"The helper did not finish {args[0]} in {HELPER_TIMEOUT:.0f} s.",
                code=errors.HELPER_FAILED,
            ) from None
        if proc.returncode != 0:
            raise _helper_error(proc.returncode or 0, err.decode(errors="replace"))
        return out.decode(errors="replace")

    async def up(self, interface: str, config: str) -> None:
        await self.run("up", interface, stdin=config)

    async def down(self, interface: str) -> None:
        await self.run("down", interface)

    async def status(self) -> dict[str, InterfaceStatus]:
        raw = await self.run("status")
        try:
            data = json.loads(raw)
            return {i.name: i for i in (_interface(x) for x in data["interfaces"])}
        except (ValueError, KeyError, TypeError) as exc:
            raise VpnError(
                f"The helper's status is malformed ({type(exc).__name__}).",
                code=errors.HELPER_FAILED,
            ) from None


def _interface(raw: dict[str, Any]) -> InterfaceStatus:
    return InterfaceStatus(
        name=str(raw["name"]),
        exists=bool(raw.get("exists")),
        created=float(raw.get("created") or 0),
        mine=raw.get("mine", True) is not False,  # helpers before "mine" showed only ours
        peers=tuple(
            PeerStatus(
                public_key=str(p.get("public_key", "")),
                endpoint=str(p.get("endpoint") or ""),
                latest_handshake=float(p.get("latest_handshake") or 0),
                rx_bytes=int(p.get("rx_bytes") or 0),
                tx_bytes=int(p.get("tx_bytes") or 0),
            )
            for p in raw.get("peers", [])
        ),
    )


# pkexec's own exit codes: the user dismissed the password dialog; polkit refused (or had no
# agent to ask). The helper never uses either.
PKEXEC_DISMISSED = 126
PKEXEC_REFUSED = 127

# The helper's exit codes (fiotray.wg.errors, which the helper itself uses) -> error codes.
_HELPER_CODES = {
    helper_exit.EXIT_USAGE: errors.HELPER_BAD_CONFIG,  # refused input; nothing was run
    helper_exit.EXIT_CONFLICT: errors.HELPER_CONFLICT,
    helper_exit.EXIT_MISSING_TOOL: errors.HELPER_MISSING,  # wg-quick, wg or ip not installed
    helper_exit.EXIT_WG_QUICK: errors.HELPER_FAILED,
}


def _helper_error(code: int, stderr: str) -> VpnError:
    """The helper's (or pkexec's) failure as one sentence and a code a front end acts on."""
    line = next((ln.strip() for ln in reversed(stderr.splitlines()) if ln.strip()), "")
    line = line.removeprefix("fiotray-helper: ")
    if code == PKEXEC_DISMISSED:
        return VpnError(
            "Authentication was dismissed; nothing was changed.", code=errors.HELPER_DISMISSED
        )
    if code == PKEXEC_REFUSED:
        if "authentication agent" in line.lower():
            return VpnError(
                "No polkit authentication agent is running to ask for your password; start "
                "your desktop's agent, or ask your admin to enable fiotray's group rule.",
                code=errors.HELPER_NOT_AUTHORIZED,
            )
        return VpnError(
            "Not authorized to manage fiotray tunnels (polkit refused).",
            code=errors.HELPER_NOT_AUTHORIZED,
        )
    return VpnError(
        line[:300] or f"The helper failed (exit {code}).",
        code=_HELPER_CODES.get(code, errors.HELPER_FAILED),
    )


# -- the controller ------------------------------------------------------------------


def classify(
    tunnel: Tunnel,
    info: InterfaceStatus | None,
    *,
    now: float,
    error: str | None = None,
) -> TunnelStatus:
    base = TunnelStatus(tunnel.name, tunnel.interface, State.DISCONNECTED)
    if info is None or not info.exists:
        if error:
            return replace(base, state=State.ERROR, detail=error)
        return base
    peer = max(info.peers, key=lambda p: p.latest_handshake, default=None)
    status = replace(
        base,
        endpoint=peer.endpoint if peer else "",
        latest_handshake=info.latest_handshake,
        rx_bytes=sum(p.rx_bytes for p in info.peers),
        tx_bytes=sum(p.tx_bytes for p in info.peers),
    )
    if info.latest_handshake:
        if now - info.latest_handshake > STALE_AFTER:
            return replace(
                status,
                state=State.STALE,
                detail="server unreachable: no handshake for over 3 minutes",
            )
        return replace(status, state=State.CONNECTED)
    if tunnel.kind == "foundries" and not tunnel.admitted:
        if info.created and now - info.created < ADMIT_GRACE:
            return replace(status, state=State.CONNECTING)
        return replace(status, state=State.WAITING, detail=waiting_detail(tunnel))
    if info.created and now - info.created < FIRST_HANDSHAKE_GRACE:
        return replace(status, state=State.CONNECTING)
    return replace(
        status,
        state=State.STALE,
        detail=f"server unreachable: no answer from {tunnel.endpoint or 'the server'} yet",
    )


def waiting_detail(tunnel: Tunnel) -> str:
    """What a laptop the server has not admitted yet is waiting for, and who acts."""
    if tunnel.access == "request":
        return (
            "waiting for the server to admit this laptop: a self-service fiotray-server "
            "admits it at its next sync (every 5 minutes by default)"
        )
    return (
        "waiting for the server to admit this laptop: its admin runs "
        f"`{server_admin_line(tunnel, tunnel.engineer or engineer_name())}` "
        f"(or, with factory-wireguard-server, `{admin_line(tunnel)}`)"
    )


Listener = Callable[[TunnelStatus], None]

OTHER_USERS = "up, brought up by another user of this computer"


class TunnelController:
    """Connect, disconnect and observe tunnels; one request at a time per tunnel."""

    def __init__(
        self,
        store: TunnelStore,
        secrets: SecretStore,
        helper: HelperClient | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sys_net: Path = SYS_NET,
    ) -> None:
        self.store = store
        self.secrets = secrets
        self.helper = helper or HelperClient()
        self.clock = clock
        self.sys_net = sys_net
        self._locks: dict[str, asyncio.Lock] = {}
        self._errors: dict[str, str] = {}
        self._last: dict[str, TunnelStatus] = {}
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _publish(self, status: TunnelStatus) -> TunnelStatus:
        if self._last.get(status.tunnel) != status:
            self._last[status.tunnel] = status
            for listener in list(self._listeners):
                listener(status)
        return status

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def interface_exists(self, interface: str) -> bool:
        """The cheap check: one stat, no process, no prompt."""
        return (self.sys_net / interface).exists()

    async def status(self, name: str | None = None) -> list[TunnelStatus]:
        """The state of one or every tunnel, from the system."""
        tunnels = [self.store.get(name)] if name else self.store.list()
        if not tunnels:
            return []
        infos: dict[str, InterfaceStatus] = {}
        if any(self.interface_exists(p.interface) for p in tunnels):
            infos = await self.helper.status()
        now = self.clock()
        out = []
        for p in tunnels:
            info = infos.get(p.interface)
            theirs = info is not None and not info.mine
            if theirs:
                info = None  # another user's tunnel on this interface name: not this one
            if info is None and self.interface_exists(p.interface):
                # Up, but not by fiotray's helper (wg-quick by hand, NetworkManager...), or by
                # another user of this computer through fiotray.
                info = InterfaceStatus(p.interface, True, 0.0, ())
                out.append(
                    self._publish(
                        replace(
                            classify(p, info, now=now),
                            state=State.CONNECTED,
                            detail=OTHER_USERS if theirs else "up, but not brought up by fiotray",
                            foreign=True,
                        )
                    )
                )
                continue
            status = classify(p, info, now=now, error=self._errors.get(p.name))
            if status.latest_handshake and p.kind == "foundries" and not p.admitted:
                self._mark_admitted(p.name)
            out.append(self._publish(status))
        return out

    def _mark_admitted(self, name: str) -> None:
        try:
            self.store.mark_admitted(name)
        except FiotrayError as exc:  # a read-only config: asked again at the next status
            log.info("cannot record that %s was admitted: %s", name, exc)

    async def connect(self, name: str | None = None, *, wait: float = 0.0) -> TunnelStatus:
        tunnel = self.store.get(name)
        async with self._lock(tunnel.name):
            if self.interface_exists(tunnel.interface):
                (current,) = await self.status(tunnel.name)
                if current.foreign and current.detail == OTHER_USERS:
                    raise VpnError(
                        f"Interface {tunnel.interface} is already up: another user of this "
                        "computer brought it up with fiotray, and only they (or root) can take "
                        "it down.",
                        code=errors.TUNNEL_FOREIGN,
                    )
                if current.foreign:
                    raise VpnError(
                        f"Interface {tunnel.interface} is already up outside fiotray; take it "
                        "down first (wg-quick down).",
                        code=errors.TUNNEL_FOREIGN,
                    )
                return current  # already up: connecting twice is not an error
            self._publish(TunnelStatus(tunnel.name, tunnel.interface, State.CONNECTING))
            try:
                private = await self.secrets.aget(tunnel_key(tunnel.name))
                if not private:
                    raise VpnError(
                        f"The private key of tunnel {tunnel.name} is not in the keyring; "
                        "add the tunnel again."
                    )
                await self.helper.up(tunnel.interface, _wgconf().with_key(tunnel.template, private))
            except FiotrayError as exc:
                self._errors[tunnel.name] = str(exc)
                self._publish(
                    TunnelStatus(tunnel.name, tunnel.interface, State.ERROR, detail=str(exc))
                )
                raise
            self._errors.pop(tunnel.name, None)
        if wait:
            return await self.wait_for_handshake(tunnel.name, wait)
        (status,) = await self.status(tunnel.name)
        return status

    async def wait_for_handshake(self, name: str, timeout: float) -> TunnelStatus:
        """Poll until a handshake is seen or `timeout` passes; return the last status."""
        deadline = self.clock() + timeout
        delay = 0.1
        while True:
            (status,) = await self.status(name)
            done = status.latest_handshake or status.state in (State.DISCONNECTED, State.ERROR)
            if done or self.clock() >= deadline:
                return status
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    async def disconnect(self, name: str | None = None) -> TunnelStatus:
        tunnel = self.store.get(name)
        async with self._lock(tunnel.name):
            self._errors.pop(tunnel.name, None)
            if self.interface_exists(tunnel.interface):
                await self.helper.down(tunnel.interface)
        (status,) = await self.status(tunnel.name)
        return status
