"""Typed views of FoundriesFactory API replies.

The API is a network service: every reply is checked here, once, and turned
into frozen dataclasses. A reply of the wrong shape raises ApiError naming
what was wrong, never a KeyError or TypeError deep inside the app.

Every string a person may be shown (names, targets, groups, tags, owners, reasons,
addresses) goes through `safe_text` here, where it enters (a device's public key, a PEM
shown nowhere, is data and stays as sent): a control or bidi character
sent by the server comes out as a visible escape in the CLI, the tray and the windows
alike, and no front end has to remember to do it. Config file contents are data, not
text to show: they stay as sent (their parser, `wgfiles.parse_lines`, cleans each value).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fiotray.core.errors import ApiError
from fiotray.core.format import safe_text

# fioctl's default for `devices list --offline-threshold` (hours).
ONLINE_THRESHOLD = timedelta(hours=4)

_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(value: object) -> datetime | None:
    """RFC 3339 as the service sends it; empty or unparsable gives None."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = _FRACTION.sub(r"\1", value.strip())  # Go writes nanoseconds; datetime takes micro.
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _str(d: dict[str, Any], key: str, default: str = "") -> str:
    value = d.get(key)
    return safe_text(value) if isinstance(value, str) else default


def _raw(d: dict[str, Any], key: str) -> str:
    value = d.get(key)
    return value if isinstance(value, str) else ""


def _opt(value: object) -> str | None:
    return safe_text(value) if isinstance(value, str) else None


def _bool(d: dict[str, Any], key: str) -> bool | None:
    value = d.get(key)
    return value if isinstance(value, bool) else None


def require_dict(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ApiError(f"The server sent a malformed {what}: expected an object.")
    return value


def require_list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ApiError(f"The server sent a malformed {what}: expected a list.")
    return value


@dataclass(frozen=True, slots=True)
class Device:
    name: str
    uuid: str
    owner: str
    factory: str
    group: str | None
    last_seen: datetime | None
    target: str
    status: str
    up_to_date: bool | None
    tag: str
    ostree_hash: str
    lmp_ver: str
    docker_apps: tuple[str, ...]
    current_update: str
    is_prod: bool
    is_wave: bool
    public_key: str
    hostname: str | None
    local_ipv4: str | None
    mac: str | None

    @classmethod
    def from_json(cls, raw: object) -> Device:
        d = require_dict(raw, "device entry")
        name = _device_name(d)
        apps = d.get("docker-apps")
        net = d.get("network-info")
        net = net if isinstance(net, dict) else {}
        group = d.get("device-group")
        return cls(
            name=name,
            uuid=_str(d, "uuid"),
            owner=_str(d, "owner"),
            factory=_str(d, "factory"),
            group=safe_text(group) if isinstance(group, str) and group else None,
            last_seen=parse_time(d.get("last-seen")),
            target=_str(d, "target-name"),
            status=_str(d, "status"),
            up_to_date=_bool(d, "up-to-date"),
            tag=_str(d, "tag"),
            ostree_hash=_str(d, "ostree-hash"),
            lmp_ver=_str(d, "lmp-ver"),
            docker_apps=tuple(safe_text(a) for a in apps if isinstance(a, str))
            if isinstance(apps, list)
            else (),
            current_update=_str(d, "current-update"),
            is_prod=d.get("is-prod") is True,
            is_wave=d.get("is-wave") is True,
            # A PEM, line breaks and all: data (shown nowhere), kept as sent.
            public_key=_raw(d, "public-key"),
            hostname=_opt(net.get("hostname")),
            local_ipv4=_opt(net.get("local_ipv4")),
            mac=_opt(net.get("mac")),
        )

    def online(self, now: datetime | None = None, threshold: timedelta = ONLINE_THRESHOLD) -> bool:
        return seen_recently(self.last_seen, now, threshold)


def seen_recently(
    last_seen: datetime | None, now: datetime | None = None, threshold: timedelta = ONLINE_THRESHOLD
) -> bool:
    """Online: seen by the service within `threshold` (for Device and ListedDevice alike)."""
    if last_seen is None:
        return False
    return (now or datetime.now(UTC)) - last_seen <= threshold


def _device_name(entry: dict[str, Any]) -> str:
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise ApiError("The server sent a device without a name.")
    # A name with a control character is refused by every action (validate_device_name);
    # escaped, it can still be listed without reaching the terminal raw.
    return safe_text(name)


# A device of the list as a plain tuple, in ListedDevice's field order: name, uuid, owner,
# group, last seen (POSIX seconds), target, status, tag, is_prod. A tuple of strings and
# numbers is untracked by the garbage collector once it survives one collection, so 50,000
# of them add nothing to a full collection; 50,000 objects with slots add ~50 ms to each.
ListedRecord = tuple[str, str, str, str | None, float | None, str, str, str, bool]
LISTED_FIELDS = 9


def listed_record(raw: object) -> ListedRecord:
    """The list's fields of one device entry, checked as `Device.from_json` checks them.

    Only what the device list shows or prints is kept: the rest of an entry (keys,
    hashes, network info) is most of its size and nothing there reads it. Values that
    repeat across a factory (owner, group, target, status, tag) share one string.
    """
    entry = require_dict(raw, "device entry")
    get = entry.get
    name = _device_name(entry)
    uuid, owner, group = get("uuid"), get("owner"), get("device-group")
    target, status, tag = get("target-name"), get("status"), get("tag")
    seen = parse_time(get("last-seen"))
    return (
        name,
        safe_text(uuid) if isinstance(uuid, str) else "",
        sys.intern(safe_text(owner)) if isinstance(owner, str) else "",
        sys.intern(safe_text(group)) if isinstance(group, str) and group else None,
        None if seen is None else seen.timestamp(),
        sys.intern(safe_text(target)) if isinstance(target, str) else "",
        sys.intern(safe_text(status)) if isinstance(status, str) else "",
        sys.intern(safe_text(tag)) if isinstance(tag, str) else "",
        get("is-prod") is True,
    )


@dataclass(frozen=True, slots=True)
class ListedDevice:
    """A device as the list keeps it: `Device`'s fields that the list shows or prints.

    Made from a `ListedRecord` when asked for (`ListedDevice(*record)`); the list
    itself holds only the records.
    """

    name: str
    uuid: str
    owner: str
    group: str | None
    seen: float | None  # last seen, POSIX seconds
    target: str
    status: str
    tag: str
    is_prod: bool

    @property
    def last_seen(self) -> datetime | None:
        return None if self.seen is None else datetime.fromtimestamp(self.seen, UTC)

    def online(self, now: datetime | None = None, threshold: timedelta = ONLINE_THRESHOLD) -> bool:
        return seen_recently(self.last_seen, now, threshold)


def record_of(device: Device | ListedDevice) -> ListedRecord:
    """The list's record of a device, whichever form it comes in."""
    seen = device.last_seen
    return (
        device.name,
        device.uuid,
        device.owner,
        device.group,
        None if seen is None else seen.timestamp(),
        device.target,
        device.status,
        device.tag,
        device.is_prod,
    )


@dataclass(frozen=True, slots=True)
class ConfigFile:
    name: str
    value: str
    unencrypted: bool
    on_changed: tuple[str, ...]

    @classmethod
    def from_json(cls, raw: object) -> ConfigFile:
        d = require_dict(raw, "config file")
        name, value = d.get("name"), d.get("value")
        if not isinstance(name, str) or not isinstance(value, str):
            raise ApiError("The server sent a config file without a name or value.")
        hooks = d.get("on-changed")
        return cls(
            name=name,
            value=value,
            unencrypted=d.get("unencrypted") is True,
            on_changed=tuple(h for h in hooks if isinstance(h, str))
            if isinstance(hooks, list)
            else (),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "unencrypted": self.unencrypted,
            "on-changed": list(self.on_changed),
        }


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    created_at: str
    applied_at: str
    created_by: str
    reason: str
    files: tuple[ConfigFile, ...]

    @classmethod
    def from_json(cls, raw: object) -> ConfigEntry:
        d = require_dict(raw, "config entry")
        return cls(
            created_at=_str(d, "created-at"),
            applied_at=_str(d, "applied-at"),
            created_by=_str(d, "created-by"),
            reason=_str(d, "reason"),
            files=tuple(ConfigFile.from_json(f) for f in require_list(d.get("files"), "config")),
        )

    def file(self, name: str) -> ConfigFile | None:
        return next((f for f in self.files if f.name == name), None)


def current_file(entries: list[ConfigEntry], name: str) -> tuple[int, ConfigFile] | None:
    """The newest entry holding file `name` (entries come newest first) and that file."""
    for index, entry in enumerate(entries):
        found = entry.file(name)
        if found is not None:
            return index, found
    return None


@dataclass(frozen=True, slots=True)
class WireguardIp:
    name: str
    ip: str
    enabled: bool
    pubkey: str

    @classmethod
    def from_json(cls, raw: object) -> WireguardIp:
        return cls(*wireguard_ip_fields(raw))


def wireguard_ip_fields(raw: object) -> tuple[str, str, bool, str]:
    """A wireguard-ips entry, checked: name, ip, enabled, pubkey."""
    d = require_dict(raw, "wireguard-ips entry")
    name, ip = d.get("name"), d.get("ip")
    if not isinstance(name, str) or not isinstance(ip, str):
        raise ApiError("The server sent a wireguard-ips entry without a name or ip.")
    enabled = d.get("enabled")
    # Absent means enabled, as in the config file itself.
    return (
        safe_text(name),
        safe_text(ip),
        enabled is not False and enabled not in (0, "0", "false"),
        _str(d, "pubkey"),
    )
