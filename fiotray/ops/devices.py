"""A factory's devices: the list, one device's VPN state, enable/disable VPN, and which
actions apply to a device now (with the reason when one does not)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fiotray.core import devices as core_devices
from fiotray.core.errors import FiotrayError
from fiotray.core.services import Services
from fiotray.core.tunnelstate import State

if TYPE_CHECKING:
    from fiotray.core.devices import DeviceRow, DeviceRows, VpnState


# Tunnel states through which nothing reaches the devices (None: state not known yet).
TUNNEL_DOWN = (None, State.DISCONNECTED, State.ERROR)


async def list_devices(
    services: Services,
    factory: str | None = None,
    *,
    search: str | None = None,
    on_page: Callable[[list[Any], int | None], None] | None = None,
    previous: DeviceRows | None = None,
) -> DeviceRows:
    """Every device of the factory with its VPN columns; `search` keeps the matching ones.

    `on_page(rows, total)` is told of each page as it arrives; `previous` (the list a
    view shows now) lets unchanged rows be reused.
    """
    api = await services.client(factory)
    rows = await core_devices.list_rows(
        api, pending=services.pending(), on_page=on_page, previous=previous
    )
    if search:
        rows = core_devices.DeviceRows.of(r for r in rows if r.matches(search))
    return rows


async def device_vpn(services: Services, factory: str | None, device: str) -> VpnState:
    """One device's VPN config as the API has it, and whether the device applied it."""
    core_devices.validate_device_name(device)
    api = await services.client(factory)
    return await core_devices.device_vpn(api, device)


async def set_vpn(services: Services, factory: str | None, device: str, enable: bool) -> VpnState:
    """Exactly what `fioctl devices config wireguard DEVICE enable|disable` writes."""
    core_devices.validate_device_name(device)
    api = await services.client(factory)
    return await core_devices.set_vpn(api, device, enable, pending=services.pending())


async def applied(services: Services, factory: str, device: str) -> VpnState:
    """Read the device's VPN state once; when it applied the change, stop marking it."""
    state = await device_vpn(services, factory, device)
    if not state.pending:
        services.pending().clear(factory, [device])
    return state


def web_url(services: Services, factory: str, device: str) -> str | None:
    """The device's page in the factory's web app, or None where it cannot be known:
    the demo (its fake API has no web app), or a sign-in whose OAuth server is not the
    web app's own (`https://app.<domain>/oauth`, as app.foundries.io and self-hosted
    factories have it)."""
    from urllib.parse import quote, urlsplit

    if services.is_demo:
        return None
    try:
        oauth = urlsplit(services.factory(factory).oauth_url)
    except FiotrayError:
        return None
    host = oauth.hostname or ""
    if not host.startswith("app.") or oauth.path.rstrip("/") != "/oauth":
        return None
    base = f"{oauth.scheme}://{host}" + (f":{oauth.port}" if oauth.port else "")
    return f"{base}/factories/{quote(factory, safe='')}/devices/{quote(device, safe='')}/"


@dataclass(frozen=True)
class Availability:
    """Whether an action applies now; `reason` says why not, in a few words."""

    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class DeviceActions:
    ssh: Availability
    copy_ssh: Availability
    copy_address: Availability
    enable_vpn: Availability
    disable_vpn: Availability


def actions(
    row: DeviceRow,
    *,
    has_tunnel: bool,
    tunnel_state: State | None,
    route: str,
    no_key: bool = False,
) -> DeviceActions:
    """Which of a device's actions apply, from its row and the factory's tunnel now.

    `has_tunnel`: the factory has a tunnel; `tunnel_state` its state (None: not known);
    `route`: the SSH route in effect (`ops.ssh.route`); `no_key`: enabling VPN on it
    was refused because the device has no WireGuard key yet (the list cannot tell).
    """
    vpn_off = None if row.vpn_enabled and row.vpn_address else "VPN is off for this device"
    ssh = vpn_off
    if ssh is None and route != "public":  # public: the server's public SSH, no tunnel
        if not has_tunnel:
            ssh = "no VPN tunnel for this factory"
        elif tunnel_state in TUNNEL_DOWN:
            ssh = "connect the tunnel first"
    enable = disable = "no WireGuard key yet" if no_key else None
    if enable is None and row.vpn_enabled:
        enable = "already enabled" + (", not applied yet" if row.vpn_pending else "")
    if disable is None and not row.vpn_enabled:
        if row.vpn_pending:
            disable = "already disabled, not applied yet"
        else:
            disable = "already disabled" if row.vpn_address else "VPN never enabled"
    return DeviceActions(
        ssh=Availability(ssh),
        copy_ssh=Availability(vpn_off),
        copy_address=Availability(None if row.vpn_address else "no VPN address"),
        enable_vpn=Availability(enable),
        disable_vpn=Availability(disable),
    )
