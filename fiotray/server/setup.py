"""Setting the server up: the private key file, registering the server in the factory's
config (`enable`, as upstream), and bringing the interface up when it is not there.

Upstream's `enable` and this one write the same `wireguard-server` factory file and use
the same key file, so either daemon can run on a server the other set up.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

from fiotray.core import wgconf
from fiotray.core.errors import SetupError
from fiotray.core.files import write_private
from fiotray.core.models import ConfigFile
from fiotray.core.wgfiles import SERVER_FILE, VPN_HANDLER, WireguardServer
from fiotray.server.interface import WgInterface
from fiotray.wg.config import is_key_shape

log = logging.getLogger("fiotray-server")
ENABLE_REASON = "Enable Wireguard for factory"  # upstream's reason, kept


def read_private_key(path: Path) -> str:
    """The server's private key (one base64 line, as `wg genkey` writes it)."""
    try:
        key = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise SetupError(
            f"There is no private key at {path}: run `fiotray-server ... enable` first."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SetupError(f"Cannot read the private key {path}: {exc}.") from None
    if not is_key_shape(key):
        raise SetupError(f"{path} does not hold a WireGuard private key.")
    return key


def private_key(path: Path) -> tuple[str, bool]:
    """The key in `path`, made (0600) when there is none; (key, made)."""
    if path.exists():
        return read_private_key(path), False
    key = wgconf.generate_private_key()
    write_private(path, key + "\n", error=SetupError, own_dir=False)
    return key, True


def server_file(endpoint: str, port: int, vpnaddr: str, pubkey: str) -> ConfigFile:
    """The factory's `wireguard-server` file, as devices and fioctl read it (upstream
    indents every line after the first; readers strip it, so this one does not)."""
    value = f"endpoint={endpoint}:{port}\nserver_address={vpnaddr}\npubkey={pubkey}"
    return ConfigFile(name=SERVER_FILE, value=value, unencrypted=True, on_changed=(VPN_HANDLER,))


def check_enable(endpoint: str, port: int, vpnaddr: str, intf: WgInterface, check_ip: bool) -> str:
    """The `enable` options checked as upstream checks them; the VPN address back."""
    if not 1 <= port <= 65535:
        raise SetupError(f"Port {port} is out of range.")
    if not endpoint or any(c.isspace() or c in ":/" for c in endpoint):
        raise SetupError(f"Endpoint {endpoint[:60]!r} must be a host name or IPv4 address.")
    try:
        address = ipaddress.IPv4Address(vpnaddr)
    except ValueError:
        raise SetupError(f"VPN address {vpnaddr[:40]!r} is not an IPv4 address.") from None
    ours = intf.exists()  # enable run again: our own port and address are not "in use"
    if check_ip and not ours:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("", port))
            except OSError:
                raise SetupError(
                    f"UDP port {port} is in use on this host; pick another (--port)."
                ) from None
    if not ours and str(address) in intf.host_addresses():
        raise SetupError(f"{address} is already an address of this host; pick another (-v).")
    return str(address)


@dataclass(frozen=True)
class ServerSettings:
    """What the interface needs from the factory's `wireguard-server` file, kept in the
    state directory so the interface comes up at boot even while the API is out."""

    server_address: str
    port: int
    pubkey: str

    @classmethod
    def from_factory(cls, server: WireguardServer) -> ServerSettings:
        return cls(server.server_address, server.port, server.pubkey)

    def save(self, path: Path) -> None:
        write_private(path, json.dumps(asdict(self), indent=2) + "\n", error=SetupError)

    @classmethod
    def load(cls, path: Path) -> ServerSettings | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(str(data["server_address"]), int(data["port"]), str(data["pubkey"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def interface_config(settings: ServerSettings) -> str:
    """wg-quick's config for the server's interface: no key (set from the key file after),
    no hooks (forwarding is `--forward`'s), no peers (the daemon adds them one by one)."""
    return (
        "[Interface]\n"
        f"Address = {settings.server_address}/32\n"
        f"ListenPort = {settings.port}\n"
        "SaveConfig = false\n"
    )


def bring_up(intf: WgInterface, settings: ServerSettings, key_file: Path, state_dir: Path) -> None:
    """Create the interface if it is not there; one that is (upstream's, or ours before a
    restart) is taken over as it is: no peer loses its session."""
    if intf.exists():
        return
    config = state_dir / f"{intf.name}.conf"
    write_private(config, interface_config(settings), error=SetupError)
    log.info("bringing %s up at %s, port %d", intf.name, settings.server_address, settings.port)
    intf.bring_up(config, key_file)


def check_key_matches(key: str, settings: ServerSettings) -> None:
    """Warn when the factory's file has another key than the key file: devices would never
    handshake with the interface about to be made. Nothing is changed."""
    public = wgconf.public_key(key)
    if settings.pubkey and settings.pubkey != public:
        log.warning(
            "the factory's wireguard-server file has another public key than the key file's: "
            "devices will not reach this server (run enable again with this key)"
        )
