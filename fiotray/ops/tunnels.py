"""Tunnels: add one to a factory's VPN server, import a `.conf`, remove one, the default
tunnel, and bringing tunnels up and down (through the privileged helper)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fiotray.core import errors
from fiotray.core import tunnels as core_tunnels
from fiotray.core.errors import SetupError, VpnError
from fiotray.core.services import Services
from fiotray.core.tunnels import Tunnel, TunnelStatus

if TYPE_CHECKING:
    from fiotray.core.api import FactoryClient
    from fiotray.core.wgfiles import WireguardServer

# How long a connect waits for the first handshake before it reports, by default.
CONNECT_WAIT = 10.0


def list_tunnels(services: Services) -> list[Tunnel]:
    return services.tunnels.list()


def default_tunnel(services: Services) -> Tunnel | None:
    """The tunnel a bare `connect` or a left click means: the chosen default, else the
    only or first one; None when there is none."""
    tunnels = services.tunnels.list()
    default = services.tunnels.default_name()
    return next((t for t in tunnels if t.name == default), tunnels[0] if tunnels else None)


def set_default(services: Services, name: str | None) -> Tunnel | None:
    """Make `name` the default tunnel (an unknown name is refused); None: no choice, the
    first tunnel is used."""
    services.tunnels.set_default(name)
    return services.tunnels.get(name) if name else None


@dataclass(frozen=True)
class AddedTunnel:
    tunnel: Tunnel
    # What the VPN server's admin runs to admit this laptop as a peer: with upstream's
    # daemon (lost at its next device change), and with fiotray-server (kept).
    admin_line: str
    server_admin_line: str
    # Published in the factory's config: a self-service fiotray-server admits it alone.
    requested: bool = False


REQUEST_REASON = "fiotray: {name} asks for VPN access"
WITHDRAW_REASON = "fiotray: {name} no longer needs VPN access"


async def add_foundries(
    services: Services,
    factory: str | None = None,
    *,
    address: str | None = None,
    name: str | None = None,
    interface: str | None = None,
    request_access: bool = False,
) -> AddedTunnel:
    """A tunnel to the factory's VPN server with a key pair made here (private half to
    the keyring); `address` is checked against the factory's VPN network and its devices.
    Without one, a free address of the engineers' range: above all fioctl can hand to a
    device, so a device never takes it later.

    `request_access`: publish the laptop's public key and address in the factory's config
    (`fiotray-engineer-<engineer>`), where a self-service fiotray-server finds it."""
    api = await services.client(factory)
    existing = services.tunnels.for_factory(api.factory)
    if existing is not None:
        # SSH and the devices window use the factory's one tunnel: a second would be a
        # second peer of the same server that nothing uses.
        raise SetupError(
            f"Factory {api.factory} already has a tunnel, {existing.name} (interface "
            f"{existing.interface}): one tunnel per factory. Remove it first to set up a "
            f"new one (`fiotray tunnels remove {existing.name}`).",
        )
    engineer = core_tunnels.engineer_name()
    server, used = await _taken(api, engineer)
    if address is None:
        address = free_engineer_address(server.server_address, used, far_end=request_access)
    await asyncio.to_thread(services.secrets.check)
    tunnel = await core_tunnels.create_foundries_tunnel(
        services.tunnels,
        services.secrets,
        name=name or api.factory,
        factory=api.factory,
        server=server,
        address=address,
        used=used,
        interface=interface,
        access="request" if request_access else "",
        engineer=engineer,
    )
    if request_access:
        try:
            await _publish_access(services, tunnel, enabled=True)
        except BaseException:
            # Nothing half-done: without its request the tunnel would wait forever.
            services.tunnels.remove(tunnel.name)
            await services.secrets.adelete(core_tunnels.tunnel_key(tunnel.name))
            raise
    return AddedTunnel(
        tunnel,
        core_tunnels.admin_line(tunnel),
        core_tunnels.server_admin_line(tunnel, engineer),
        requested=request_access,
    )


async def suggest_address(
    services: Services, factory: str | None = None, *, request_access: bool = False
) -> str:
    """The address `add_foundries` would pick now (for a form to show beforehand)."""
    api = await services.client(factory)
    server, used = await _taken(api, core_tunnels.engineer_name())
    return free_engineer_address(server.server_address, used, far_end=request_access)


async def _taken(api: FactoryClient, engineer: str) -> tuple[WireguardServer, set[str]]:
    """The factory's VPN server and the addresses taken: every device's, and every other
    laptop's request (this laptop's own earlier one is replaced, its address free)."""
    from fiotray.core import devices
    from fiotray.core.wgfiles import engineer_requests

    # One read of the factory's config for both: the server, and the other laptops'
    # requests (the newest entry holds every current file).
    entries = await api.factory_config()
    server = devices.server_in(entries, api.factory)
    used = {ip.ip for ip in await api.wireguard_ips()}
    files = entries[0].files if entries else ()
    used |= {
        r.address
        for r in engineer_requests((f.name, f.value) for f in files)
        if r.enabled and r.name != engineer
    }
    return server, used


async def _publish_access(services: Services, tunnel: Tunnel, *, enabled: bool) -> None:
    """The laptop's own file in the factory's config: its key and address, or withdrawn."""
    from fiotray.core.models import ConfigFile
    from fiotray.core.wgfiles import EngineerAccess

    access = EngineerAccess(
        tunnel.engineer, tunnel.public_key, tunnel.address or "", enabled=enabled
    )
    api = await services.client(tunnel.factory)
    reason = REQUEST_REASON if enabled else WITHDRAW_REASON
    await api.patch_factory_config(
        reason.format(name=tunnel.engineer),
        [ConfigFile(access.file_name, access.marshal(), unencrypted=True, on_changed=())],
    )


def free_engineer_address(server_address: str, used: set[str], *, far_end: bool = False) -> str:
    from fiotray.core import wgconf

    candidates = wgconf.engineer_addresses(server_address)
    if far_end:
        # Requests take the engineers' range from its far end: the admin's `peers add`
        # (which a laptop cannot see) takes it from the near end.
        candidates.reverse()
    address = next((a for a in candidates if a not in used), None)
    if address is None:
        raise VpnError("No free address is left in the engineers' range: give one (--address).")
    return address


async def import_conf(
    services: Services, path: Path, *, name: str | None = None, interface: str | None = None
) -> Tunnel:
    """A wg-quick `.conf`, checked as the helper will check it; its private key moves to
    the keyring (the file is left alone: the caller tells the user to delete it)."""
    text = await asyncio.to_thread(core_tunnels.read_conf_file, path)
    await asyncio.to_thread(services.secrets.check)
    return await core_tunnels.import_plain_tunnel(
        services.tunnels,
        services.secrets,
        name=name or core_tunnels.name_from_path(path),
        text=text,
        interface=interface,
    )


async def remove(services: Services, name: str) -> Tunnel:
    """Forget a tunnel and its private key; refused while it is up. A tunnel that asked a
    self-service server for access withdraws the request first (the server drops the
    peer at its next sync); when that fails, nothing is removed."""
    tunnel = services.tunnels.get(name)
    if services.controller.interface_exists(tunnel.interface):
        raise VpnError(f"Tunnel {tunnel.name} is up: disconnect it first.", code=errors.TUNNEL_UP)
    if tunnel.access == "request":
        try:
            await _publish_access(services, tunnel, enabled=False)
        except errors.FiotrayError as exc:
            raise VpnError(
                f"Could not withdraw the access request of tunnel {tunnel.name} ({exc}); "
                "nothing was removed. Try again when the factory API answers."
            ) from None
    services.tunnels.remove(tunnel.name)
    await services.secrets.adelete(core_tunnels.tunnel_key(tunnel.name))
    return tunnel


def set_autoconnect(services: Services, name: str, on: bool) -> Tunnel:
    """Whether the tray app brings the tunnel up when it starts."""
    tunnel = services.tunnels.get(name)
    services.tunnels.set_autoconnect(tunnel.name, on)
    return tunnel


def endpoint_reachable(endpoint: str) -> bool:
    """The endpoint's host resolves and the system has a route to it (no packet is sent:
    connecting a UDP socket only looks the route up)."""
    import socket

    from fiotray.wg.config import ConfigError, check_endpoint

    try:
        # The helper's own reading of an Endpoint: HOST:PORT or [IPv6]:PORT.
        host, _, port = check_endpoint(endpoint, 0).rpartition(":")
    except ConfigError:
        return False
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError):
        return False
    for family, kind, proto, _name, address in infos:
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.connect(address)
            return True
        except OSError:
            continue
    return False


async def wait_for_network(
    tunnel: Tunnel, *, first: float = 1.0, cap: float = 15.0, demo: bool = False
) -> None:
    """Return once the tunnel's server can be reached (checked at growing intervals, up
    to `cap` s apart, for as long as it takes: a laptop may come online much later)."""
    if demo or not tunnel.endpoint:
        return
    delay = first
    while not await asyncio.to_thread(endpoint_reachable, tunnel.endpoint):
        await asyncio.sleep(delay)
        delay = min(delay * 2, cap)


async def connect(
    services: Services, name: str | None = None, *, wait: float = CONNECT_WAIT
) -> TunnelStatus:
    """Bring the tunnel up (None: the default one); with `wait`, until the first handshake
    or that many seconds."""
    return await services.controller.connect(name, wait=wait)


async def disconnect(services: Services, name: str | None = None) -> TunnelStatus:
    return await services.controller.disconnect(name)


async def status(services: Services, name: str | None = None) -> list[TunnelStatus]:
    """Every tunnel's state as the system shows it (or one tunnel's)."""
    return await services.controller.status(name)
