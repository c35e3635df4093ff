"""Devices with their VPN state, and VPN enable/disable with fioctl's semantics.

`set_vpn` writes exactly what `fioctl devices config wireguard <dev> enable|disable`
writes (same file text, reason, flags), PATCHing only `wireguard-client` so every
other config file of the device stays as it is. Beyond fioctl it re-reads the
factory's address list after writing and moves the device off an address that
another device took at the same moment.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import platformdirs

from fiotray.core import errors
from fiotray.core.errors import FiotrayError, VpnError
from fiotray.core.models import (
    LISTED_FIELDS,
    ConfigEntry,
    ConfigFile,
    Device,
    ListedDevice,
    ListedRecord,
    current_file,
    record_of,
)
from fiotray.core.store import JsonFile
from fiotray.core.wgfiles import (
    CLIENT_FILE,
    SERVER_FILE,
    VPN_HANDLER,
    WireguardClient,
    WireguardServer,
    allocate_address,
)

if TYPE_CHECKING:
    from fiotray.core.api import FactoryClient

log = logging.getLogger(__name__)

REASON = "Set Wireguard configuration - {}"
MAX_NAME = 200
# How often a clash found after writing is resolved before giving up.
CLASH_RETRIES = 3
# Concurrent config reads when checking devices with a change not yet applied.
PENDING_CONCURRENCY = 8
# One row of the list as a plain tuple: a ListedRecord, then vpn_enabled, vpn_address,
# vpn_pending. Plain tuples, not objects, for the garbage collector (see ListedRecord).
RowRecord = tuple[str, str, str, str | None, float | None, str, str, str, bool, bool, str, bool]
LISTED = LISTED_FIELDS  # RowRecord[:LISTED] is the device's ListedRecord
ROW_VPN_ENABLED, ROW_VPN_ADDRESS, ROW_VPN_PENDING = LISTED, LISTED + 1, LISTED + 2


def validate_device_name(name: str) -> str:
    """Refuse names that could become a path, an option or a terminal escape."""
    if not name:
        raise FiotrayError("A device name cannot be empty.")
    if len(name) > MAX_NAME:
        raise FiotrayError(f"A device name cannot be longer than {MAX_NAME} characters.")
    if name.startswith("-"):
        raise FiotrayError(f"Device name {name[:60]!r} starts with '-', which fiotray refuses.")
    if "/" in name or "\\" in name:
        raise FiotrayError(f"Device name {name[:60]!r} contains a slash, which fiotray refuses.")
    if name in (".", ".."):
        raise FiotrayError(f"{name!r} is not a device name.")
    for ch in name:
        if ch.isspace() or unicodedata.category(ch)[0] in "CZ":
            raise FiotrayError(
                f"Device name {name[:60]!r} contains spaces or control characters, "
                "which fiotray refuses."
            )
    return name


@dataclass(frozen=True, slots=True)
class VpnState:
    device: str
    enabled: bool
    address: str
    pubkey: str
    pending: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.device,
            "enabled": self.enabled,
            "address": self.address or None,
            "pubkey": self.pubkey or None,
            "pending": self.pending,
        }


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """A device as the list shows it: API fields plus its VPN columns."""

    device: Device | ListedDevice
    vpn_enabled: bool
    vpn_address: str
    vpn_pending: bool

    @classmethod
    def from_record(cls, record: RowRecord) -> DeviceRow:
        return cls(ListedDevice(*record[:LISTED]), *record[LISTED:])

    def record(self) -> RowRecord:
        return (*record_of(self.device), self.vpn_enabled, self.vpn_address, self.vpn_pending)

    def online(self, now: datetime | None = None) -> bool:
        return self.device.online(now)

    def to_json(self, now: datetime | None = None) -> dict[str, Any]:
        d = self.device
        return {
            "name": d.name,
            "uuid": d.uuid,
            "online": d.online(now),
            "last_seen": d.last_seen.isoformat() if d.last_seen else None,
            "target": d.target,
            "group": d.group,
            "tag": d.tag,
            "owner": d.owner,
            "is_prod": d.is_prod,
            "status": d.status,
            "vpn_enabled": self.vpn_enabled,
            "vpn_address": self.vpn_address or None,
            "vpn_pending": self.vpn_pending,
        }

    def matches(self, text: str) -> bool:
        needle = text.casefold()
        d = self.device
        fields = (d.name, d.uuid, d.target, d.group or "", d.tag, self.vpn_address)
        return any(needle in f.casefold() for f in fields)


class DeviceRows(Sequence[DeviceRow]):
    """A device list held as `RowRecord` tuples; a DeviceRow is made for each one read.

    Objects per row (a DeviceRow and its device) would be walked at every full garbage
    collection, ~50 ms with 50,000 devices; tuples of strings and numbers are not walked
    at all once the collector has seen them, and take a fraction of the memory.
    """

    __slots__ = ("records",)

    def __init__(self, records: Sequence[RowRecord] = ()) -> None:
        # A tuple, best: the collector stops tracking it once it has seen it.
        self.records = records

    @classmethod
    def of(cls, rows: Iterable[DeviceRow]) -> DeviceRows:
        if isinstance(rows, DeviceRows):
            return rows
        return cls(tuple([r.record() for r in rows]))

    def __len__(self) -> int:
        return len(self.records)

    @overload
    def __getitem__(self, index: int) -> DeviceRow: ...
    @overload
    def __getitem__(self, index: slice) -> DeviceRows: ...
    def __getitem__(self, index: int | slice) -> DeviceRow | DeviceRows:
        if isinstance(index, slice):
            return DeviceRows(self.records[index])
        return DeviceRow.from_record(self.records[index])

    def __iter__(self) -> Iterator[DeviceRow]:
        return map(DeviceRow.from_record, self.records)

    def __repr__(self) -> str:
        return f"<DeviceRows: {len(self.records)} devices>"


def vpn_pending(entries: list[ConfigEntry]) -> bool:
    """True until the device applied the entry that holds its current wireguard-client."""
    found = current_file(entries, CLIENT_FILE)
    if found is None:
        return False
    index, _ = found
    # A device applies its whole config: a newer applied entry means this one is applied too.
    return not any(entry.applied_at for entry in entries[: index + 1])


def client_file(entries: list[ConfigEntry]) -> WireguardClient:
    found = current_file(entries, CLIENT_FILE)
    return WireguardClient.parse(found[1].value) if found else WireguardClient(enabled=False)


async def factory_server(api: FactoryClient) -> WireguardServer:
    """The factory's enabled VPN server, or a VpnError saying there is none."""
    return server_in(await api.factory_config(), api.factory)


def server_in(entries: list[ConfigEntry], factory: str) -> WireguardServer:
    """The enabled VPN server of a factory's config history (`factory_server`'s check)."""
    found = current_file(entries, SERVER_FILE)
    if found is None:
        raise VpnError(
            f"A WireGuard server has not been configured for factory {factory}: "
            "its admin must run factory-wireguard-server first."
        )
    server = WireguardServer.parse(found[1].value)
    if not server.enabled:
        raise VpnError(f"The WireGuard server of factory {factory} is disabled.")
    if not server.server_address:
        raise VpnError(f"The WireGuard server of factory {factory} has no server_address.")
    return server


async def device_vpn(api: FactoryClient, name: str) -> VpnState:
    validate_device_name(name)
    entries = await api.device_config(name)
    wcc = client_file(entries)
    return VpnState(
        device=name,
        enabled=wcc.enabled and bool(wcc.address),
        address=wcc.address,
        pubkey=wcc.pubkey,
        pending=vpn_pending(entries),
    )


def _client_config_file(wcc: WireguardClient) -> ConfigFile:
    return ConfigFile(
        name=CLIENT_FILE, value=wcc.marshal(), unencrypted=True, on_changed=(VPN_HANDLER,)
    )


async def set_vpn(
    api: FactoryClient,
    name: str,
    enable: bool,
    *,
    pending: PendingStore | None = None,
    rng: random.Random | None = None,
    allocate: Callable[[str], Awaitable[str]] | None = None,
    reserved: set[str] | None = None,
) -> VpnState:
    """`fioctl devices config wireguard NAME enable|disable`, plus a clash check.

    A batch passes `allocate(server_address)`, which hands out an address no other device
    of the batch gets, and `reserved`, the addresses handed out so far, which the clash
    check's way out avoids too (they may not be written yet, so the API cannot know them).
    """
    validate_device_name(name)
    await api.get_device(name)  # a clear "no such device" before anything is written
    entries = await api.device_config(name)
    found = current_file(entries, CLIENT_FILE)
    wcc = WireguardClient.parse(found[1].value) if found else WireguardClient()
    if wcc.unknown:
        keys = ", ".join(sorted(wcc.unknown))[:120]
        raise VpnError(
            f"The wireguard-client file of {name} has keys fiotray does not know ({keys}); "
            "nothing was changed. Fix the file with fioctl first."
        )
    action = "enable" if enable else "disable"
    server: WireguardServer | None = None
    if enable:
        if not wcc.pubkey:
            raise VpnError(
                f"Device has no public key for VPN: {name} registers one when it first boots "
                "with VPN support.",
                code=errors.NO_PUBLIC_KEY,
            )
        server = await factory_server(api)
        if not wcc.address and allocate is not None:
            wcc.address = await allocate(server.server_address)
        elif not wcc.address:
            used = {ip.ip for ip in await api.wireguard_ips()}
            wcc.address = allocate_address(server.server_address, used)
    wcc.enabled = enable
    await api.patch_device_config(name, REASON.format(action), [_client_config_file(wcc)])
    if server is not None:
        await _resolve_clash(
            api,
            name,
            wcc,
            server,
            action,
            rng or random.Random(),  # noqa: S311
            reserved if reserved is not None else set(),
        )
    if pending is not None:
        await asyncio.to_thread(pending.mark, api.factory, name)
    return VpnState(name, enable, wcc.address, wcc.pubkey, pending=True)


async def _resolve_clash(
    api: FactoryClient,
    name: str,
    wcc: WireguardClient,
    server: WireguardServer,
    action: str,
    rng: random.Random,
    reserved: set[str],
) -> None:
    """Move `name` off an address another device also holds (two enables racing).

    `reserved`: addresses of the same batch, written or about to be: never picked.
    """
    for _ in range(CLASH_RETRIES):
        ips = await api.wireguard_ips()
        if not any(ip.ip == wcc.address and ip.name != name for ip in ips):
            return
        used = {ip.ip for ip in ips} | reserved
        # Two racing fiotrays would both pick the same "first free" again: spread out instead.
        candidates = []
        for _ in range(16):
            candidate = allocate_address(server.server_address, used)
            candidates.append(candidate)
            used.add(candidate)
        previous, wcc.address = wcc.address, rng.choice(candidates)
        reserved.add(wcc.address)
        log.warning(
            "VPN address %s of %s is also used by another device; moving it to %s",
            previous,
            name,
            wcc.address,
        )
        await api.patch_device_config(name, REASON.format(action), [_client_config_file(wcc)])
    raise VpnError(
        f"{name} was enabled with {wcc.address}, but other devices kept taking its address; "
        "check `fiotray devices` and try again."
    )


async def list_rows(
    api: FactoryClient,
    *,
    pending: PendingStore | None = None,
    on_page: Any = None,
    previous: DeviceRows | None = None,
) -> DeviceRows:
    """Every device with its VPN columns: the device list and one wireguard-ips call.

    `previous`, the list shown now: each row that has not changed since is returned as
    the very object it holds, so a refresh keeps what is already in memory.
    """
    old = previous.records if previous is not None else ()
    records, vpn = await asyncio.gather(
        api.list_device_records(on_page=on_page, previous=old), api.vpn_columns()
    )
    still_pending = await _check_pending(api, pending) if pending is not None else set()
    # 50,000 rows are ~20 ms of Python: on a worker thread the event loop gets its turns.
    return DeviceRows(await asyncio.to_thread(_join, records, vpn, still_pending, old))


def _join(
    records: list[ListedRecord],
    vpn: dict[str, tuple[bool, str]],
    pending: set[str],
    previous: Sequence[RowRecord],
) -> tuple[RowRecord, ...]:
    """The rows: each record with its VPN columns, or the previous row if it is the same.

    Empties `records`, freeing each on this thread as it goes rather than all at once
    on the event loop's when the list would go.
    """
    before = {r[0]: r for r in previous}
    no_vpn = (False, "")
    rows: list[RowRecord] = []
    records.reverse()
    while records:
        r = records.pop()
        name = r[0]
        row: RowRecord = (*r, *vpn.get(name, no_vpn), name in pending)
        old = before.get(name)
        rows.append(old if old == row else row)
    return tuple(rows)


async def _check_pending(api: FactoryClient, store: PendingStore) -> set[str]:
    """Of the devices this app changed, those that have not applied the change yet."""
    names = await asyncio.to_thread(store.names, api.factory)
    if not names:
        return set()
    limiter = asyncio.Semaphore(PENDING_CONCURRENCY)

    async def check(name: str) -> tuple[str, bool | None]:
        async with limiter:
            try:
                return name, vpn_pending(await api.device_config(name))
            except FiotrayError as exc:  # a vanished device must not break the list
                log.info("cannot check pending VPN change of %s: %s", name, exc)
                return name, None

    results = await asyncio.gather(*(check(n) for n in names))
    done = [n for n, is_pending in results if is_pending is False]
    if done:
        await asyncio.to_thread(store.clear, api.factory, done)
    return {n for n, is_pending in results if is_pending}


Pending = dict[str, dict[str, float]]  # factory -> device -> when this app changed it


class PendingStore:
    """Devices whose VPN change this app wrote and the device has not applied yet.

    Kept so the list can show "pending" with a config read for just these
    devices instead of one per device. Not secret; lives in the XDG state dir.
    Losing it only costs that hint: a failure is logged, never raised.
    """

    MAX_AGE = 7 * 24 * 3600

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or Path(platformdirs.user_state_dir("fiotray")) / "pending-vpn.json"
        self._file: JsonFile[Pending] = JsonFile(
            self.path,
            parse=self._parse,
            dump=lambda data: {f: d for f, d in data.items() if d},
            default=dict,
            invalid=self._invalid,
        )

    def _parse(self, data: Any) -> Pending:
        if not isinstance(data, dict):
            return {}
        now = time.time()
        return {
            str(f): {
                str(n): float(t)
                for n, t in devs.items()
                if isinstance(t, int | float) and now - t < self.MAX_AGE
            }
            for f, devs in data.items()
            if isinstance(devs, dict)
        }

    def _invalid(self, reason: str) -> Pending:
        log.warning("ignoring unreadable %s: %s", self.path, reason)
        return {}

    def _update(self, change: Callable[[Pending], None]) -> None:
        def apply(data: Pending) -> Pending:
            change(data)
            return data

        try:
            self._file.update(apply)
        except FiotrayError as exc:  # losing a hint is fine; failing the enable is not
            log.warning("%s", exc)

    def mark(self, factory: str, device: str) -> None:
        def change(data: Pending) -> None:
            data.setdefault(factory, {})[device] = time.time()

        self._update(change)

    def names(self, factory: str) -> list[str]:
        try:
            return sorted(self._file.read().get(factory, {}))
        except FiotrayError as exc:
            log.warning("%s", exc)
            return []

    def clear(self, factory: str, devices: list[str]) -> None:
        def change(data: Pending) -> None:
            for name in devices:
                data.get(factory, {}).pop(name, None)

        self._update(change)


__all__ = [
    "DeviceRow",
    "DeviceRows",
    "PendingStore",
    "VpnState",
    "device_vpn",
    "factory_server",
    "list_rows",
    "set_vpn",
    "validate_device_name",
    "vpn_pending",
]
