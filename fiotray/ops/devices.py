"""A factory's devices: the list (with selectors), one device's VPN state, enable/disable
VPN on one device or many, favourites, and which actions apply to a device now (with the
reason when one does not)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from fiotray.core import devices as core_devices
from fiotray.core.errors import FiotrayError
from fiotray.core.services import Services
from fiotray.core.tunnelstate import State

if TYPE_CHECKING:
    from datetime import datetime

    from fiotray.core.devices import DeviceRow, DeviceRows, VpnState


# Tunnel states through which nothing reaches the devices (None: state not known yet).
TUNNEL_DOWN = (None, State.DISCONNECTED, State.ERROR)
# Devices whose VPN a batch writes at once: each is ~4 requests, and the API is shared.
BULK_CONCURRENCY = 4
# The VPN column's words a selector can ask for: "disabled" is also "never enabled".
VPN_STATES = ("enabled", "disabled", "pending")


@dataclass(frozen=True)
class Selector:
    """Which devices: every criterion given must match (None: any). `tag`, `group` and
    `target` are exact, or shell-style patterns with `*`, `?` and `[...]`; `vpn` is one of
    VPN_STATES, as the VPN column says it (a change not applied yet is "pending")."""

    tag: str | None = None
    group: str | None = None
    target: str | None = None
    online: bool | None = None
    vpn: str | None = None

    def __post_init__(self) -> None:
        if self.vpn is not None and self.vpn not in VPN_STATES:
            raise FiotrayError(f"--vpn takes {', '.join(VPN_STATES)}, not {self.vpn[:40]!r}.")

    def __bool__(self) -> bool:
        return any(
            v is not None for v in (self.tag, self.group, self.target, self.online, self.vpn)
        )

    def matches(self, row: DeviceRow, now: datetime | None = None) -> bool:
        d = row.device
        for pattern, value in ((self.tag, d.tag), (self.group, d.group), (self.target, d.target)):
            if pattern is not None and not fnmatchcase(value or "", pattern):
                return False
        if self.online is not None and row.online(now) != self.online:
            return False
        return self.vpn is None or vpn_word(row) == self.vpn

    def describe(self) -> str:
        """`tag=main group=qa`, the way the user gave them."""
        parts = [
            f"{k}={v}"
            for k, v in (("tag", self.tag), ("group", self.group), ("target", self.target))
            if v is not None
        ]
        if self.online is not None:
            parts.append("online" if self.online else "offline")
        if self.vpn is not None:
            parts.append(f"vpn={self.vpn}")
        return " ".join(parts)


def vpn_word(row: DeviceRow) -> str:
    """ "enabled", "disabled" or "pending" (a change not applied yet), for selectors."""
    if row.vpn_pending:
        return "pending"
    return "enabled" if row.vpn_enabled else "disabled"


async def list_devices(
    services: Services,
    factory: str | None = None,
    *,
    search: str | None = None,
    where: Selector | None = None,
    on_page: Callable[[list[Any], int | None], None] | None = None,
    previous: DeviceRows | None = None,
) -> DeviceRows:
    """Every device of the factory with its VPN columns; `search` keeps the matching ones
    (each whitespace-separated term somewhere in the row), `where` those it selects.

    `on_page(rows, total)` is told of each page as it arrives; `previous` (the list a
    view shows now) lets unchanged rows be reused.
    """
    api = await services.client(factory)
    rows = await core_devices.list_rows(
        api, pending=services.pending(), on_page=on_page, previous=previous
    )
    return filter_rows(rows, search=search, where=where)


def filter_rows(
    rows: DeviceRows, *, search: str | None = None, where: Selector | None = None
) -> DeviceRows:
    """The rows holding each whitespace-separated term of `search` somewhere, and that
    `where` selects (both None: `rows` itself)."""
    if not (search or where):
        return rows
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    terms = (search or "").split()
    return core_devices.DeviceRows.of(
        r for r in rows if all(r.matches(t) for t in terms) and (not where or where.matches(r, now))
    )


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


@dataclass(frozen=True)
class VpnPlan:
    """What a bulk enable or disable would do: the devices it changes, those it skips
    (with why) and the names the factory does not have."""

    enable: bool
    change: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...] = ()  # (device, reason)
    missing: tuple[str, ...] = ()


def vpn_reason(row: DeviceRow, enable: bool, *, no_key: bool = False) -> str | None:
    """Why enabling (or disabling) VPN does not apply to the device now; None: it does."""
    if no_key:
        return "no WireGuard key yet"
    if enable and row.vpn_enabled:
        return "already enabled" + (", not applied yet" if row.vpn_pending else "")
    if not enable and not row.vpn_enabled:
        if row.vpn_pending:
            return "already disabled, not applied yet"
        return "already disabled" if row.vpn_address else "VPN never enabled"
    return None


def plan_vpn(
    rows: Iterable[DeviceRow],
    enable: bool,
    *,
    names: Sequence[str] = (),
    where: Selector | None = None,
    no_key: Iterable[str] = (),
) -> VpnPlan:
    """Of `rows`, the devices `names` (all when none) that `where` selects, split into
    those the change applies to and those it skips; `no_key`: devices known to have no
    WireGuard key (an enable was refused for it)."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    refused = set(no_key)
    wanted = dict.fromkeys(names)
    found: dict[str, DeviceRow] = {}
    for row in rows:
        if not wanted or row.device.name in wanted:
            found[row.device.name] = row
    order = list(wanted) if wanted else list(found)
    change: list[str] = []
    skipped: list[tuple[str, str]] = []
    for name in order:
        row = found.get(name)
        if row is None:
            continue
        if where and not where.matches(row, now):
            if wanted:  # a name the user gave is accounted for; the rest were never asked
                skipped.append((name, f"does not match {where.describe()}"))
            continue
        reason = vpn_reason(row, enable, no_key=name in refused)
        if reason:
            skipped.append((name, reason))
        else:
            change.append(name)
    missing = tuple(n for n in wanted if n not in found)
    return VpnPlan(enable, tuple(change), tuple(skipped), missing)


@dataclass(frozen=True)
class VpnResult:
    """One device's outcome in a batch: its new state, or the error that stopped it."""

    device: str
    state: VpnState | None = None
    error: str = ""
    code: str | None = None

    @property
    def ok(self) -> bool:
        return self.state is not None


async def set_vpn_many(
    services: Services,
    factory: str | None,
    names: Sequence[str],
    enable: bool,
    *,
    concurrency: int = BULK_CONCURRENCY,
    on_result: Callable[[VpnResult], None] | None = None,
) -> list[VpnResult]:
    """Enable or disable VPN on each device (at most `concurrency` at a time), as `set_vpn`
    does one; a result per device, in the order of `names`, and `on_result` told of each
    as it comes. Addresses come from one read of the factory's list, handed out one by
    one under a lock, so no two devices of the batch are ever given the same one.
    A factory without an enabled VPN server fails the whole enable (a VpnError)."""
    api = await services.client(factory)
    if enable and names:
        # No VPN server: one error for the batch, not the same one for every device.
        await core_devices.factory_server(api)
    pending = services.pending()
    limiter = asyncio.Semaphore(max(1, concurrency))
    lock = asyncio.Lock()
    used: set[str] | None = None
    reserved: set[str] = set()  # handed to this batch (the clash check avoids them too)

    async def allocate(server_address: str) -> str:
        nonlocal used
        from fiotray.core.wgfiles import allocate_address

        async with lock:
            if used is None:
                used = {ip.ip for ip in await api.wireguard_ips()}
            address = allocate_address(server_address, used | reserved)
            reserved.add(address)
            return address

    async def one(name: str) -> VpnResult:
        async with limiter:
            try:
                core_devices.validate_device_name(name)
                state = await core_devices.set_vpn(
                    api, name, enable, pending=pending, allocate=allocate, reserved=reserved
                )
                result = VpnResult(name, state)
            except FiotrayError as exc:
                result = VpnResult(name, error=str(exc), code=exc.code)
        if on_result is not None:
            on_result(result)
        return result

    return list(await asyncio.gather(*(one(n) for n in names)))


def bulk_summary(
    results: Sequence[VpnResult], enable: bool, skipped: int = 0, *, most: int = 3
) -> str:
    """ "Enabled VPN on 7 of 8 devices; gw-3: no public key …; 2 skipped": one line."""
    ok = sum(r.ok for r in results)
    verb = "Enabled" if enable else "Disabled"
    noun = "device" if len(results) == 1 else "devices"
    parts = [f"{verb} VPN on {ok} of {len(results)} {noun}"]
    failed = [r for r in results if not r.ok]
    parts += [f"{r.device}: {r.error}" for r in failed[:most]]
    if len(failed) > most:
        parts.append(f"{len(failed) - most} {'more ' if most else ''}failed")
    if skipped:
        parts.append(f"{skipped} skipped")
    return "; ".join(parts)


def favourites(services: Services, factory: str | None = None) -> list[tuple[str, str]]:
    """The user's favourite devices as (factory, device), in their order; of one factory
    when `factory` is given."""
    saved = services.settings.load().favourites
    return [p for p in saved if factory is None or p[0] == factory]


def set_favourite(services: Services, factory: str, device: str, favourite: bool) -> bool:
    """Add the device to the favourites (at the end) or remove it, under the settings
    file's lock; whether that changed anything."""
    import dataclasses

    core_devices.validate_device_name(device)
    pair = (factory, device)
    changed = False

    def change(saved: Any) -> Any:
        nonlocal changed
        if favourite:  # one already there keeps its place
            now = saved.favourites if pair in saved.favourites else (*saved.favourites, pair)
        else:
            now = tuple(p for p in saved.favourites if p != pair)
        changed = now != saved.favourites
        return dataclasses.replace(saved, favourites=now) if changed else saved

    services.settings.update(change)
    return changed


async def add_favourite(services: Services, factory: str | None, device: str) -> tuple[str, bool]:
    """`set_favourite` for a device the factory is asked about first (a clear "no such
    device"); the factory's name and whether that changed anything."""
    core_devices.validate_device_name(device)
    api = await services.client(factory)
    await api.get_device(device)
    return api.factory, set_favourite(services, api.factory, device, True)


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
    enable = vpn_reason(row, True, no_key=no_key)
    disable = vpn_reason(row, False, no_key=no_key)
    return DeviceActions(
        ssh=Availability(ssh),
        copy_ssh=Availability(vpn_off),
        copy_address=Availability(None if row.vpn_address else "no VPN address"),
        enable_vpn=Availability(enable),
        disable_vpn=Availability(disable),
    )
