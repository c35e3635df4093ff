"""Turn saved factories into a signed-in FactoryClient, and devices into SSH targets."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from fiotray.core import devices, errors, ssh
from fiotray.core.errors import FiotrayError, VpnError

if TYPE_CHECKING:
    from fiotray.core.api import FactoryClient
    from fiotray.core.factories import Factory
    from fiotray.core.secrets import SecretStore
    from fiotray.core.tunnels import Tunnel


async def open_factory(factory: Factory, secrets: SecretStore, **options: object) -> FactoryClient:
    # Here, not at the top: ssh_settings serves commands that make no API call
    # (`fiotray tunnels ssh`), which need not import httpx and the sign-in code.
    from fiotray.core.api import FactoryClient
    from fiotray.core.auth import load_credentials

    credentials = await load_credentials(factory, secrets)
    return FactoryClient(factory.api_url, factory.factory, credentials, **options)  # type: ignore[arg-type]


def ssh_settings(
    tunnel: Tunnel | None, route: str | None = None, defaults: dict[str, Any] | None = None
) -> ssh.SshSettings:
    """The factory's tunnel's SSH settings over the user's defaults; `route` wins."""
    stored: dict[str, Any] = {**(defaults or {}), **(dict(tunnel.ssh) if tunnel else {})}
    if route:
        stored["route"] = route
    try:
        return ssh.SshSettings(**stored)
    except TypeError as exc:
        raise FiotrayError(
            f"The SSH settings of tunnel {tunnel.name if tunnel else ''} are malformed: {exc}."
        ) from None


async def vpn_server_address(api: FactoryClient, tunnel: Tunnel | None) -> str:
    """The VPN server's address on the VPN: the tunnel's, or the factory's server file's."""
    if tunnel and tunnel.server_address:
        return tunnel.server_address
    return (await devices.factory_server(api)).server_address


async def ssh_targets(
    api: FactoryClient, tunnel: Tunnel | None, only: str | None = None
) -> list[ssh.SshTarget]:
    """VPN-enabled devices as SSH targets (one wireguard-ips call); `only` picks one device."""
    server_address, ips = await asyncio.gather(vpn_server_address(api, tunnel), api.wireguard_ips())
    targets = []
    for ip in ips:
        if only is not None and ip.name != only:
            continue
        if not ip.enabled or not ip.ip:
            if only is not None:
                raise VpnError(
                    f"VPN is not enabled on {only}: enable it (fiotray enable {only}) and "
                    "wait until the device applies it.",
                    code=errors.VPN_NOT_ENABLED,
                )
            continue
        targets.append(
            ssh.SshTarget(
                factory=api.factory,
                device=ip.name,
                vpn_address=ip.ip,
                server_address=server_address,
            )
        )
    if only is not None and not targets:
        # wireguard-ips lists only devices that ever had VPN: is it a device at all?
        try:
            await api.get_device(only)
        except errors.NotFoundError:
            raise errors.NotFoundError(
                f"No device named {only} in factory {api.factory} (see `fiotray devices "
                f"--factory {api.factory}`)."
            ) from None
        raise VpnError(
            f"{only} has no VPN address in factory {api.factory}: enable VPN on it "
            f"(fiotray enable {only}).",
            code=errors.VPN_NOT_ENABLED,
        )
    return targets
