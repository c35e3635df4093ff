"""A fake FoundriesFactory API server, faithful to /work/shared/foundries-api.md.

It serves the parts of the REST API and the OAuth2 token endpoint that fiotray
speaks, over real HTTP(S) on loopback, so the client code under test runs the
same sockets, TLS verification, keep-alive and error paths as in production.
The test suite, the benchmark (10,000 devices behind 50 ms of latency) and the
app's demo mode all use it, which is why it is stdlib + ``cryptography`` only.

Everything the handler threads touch lives in :class:`FakeFactory` and is
accessed under ``FakeFactory.lock``; :class:`FakeApiServer` adds the network
behaviour (latency, scripted faults, rate limiting, request recording).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import dataclasses
import datetime as dt
import enum
import fnmatch
import hashlib
import hmac
import ipaddress
import json
import random
import re
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
import uuid as uuidlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

if TYPE_CHECKING:
    import subprocess

    from fiotray.demo.tlsca import TlsFiles, make_tls_files


def __getattr__(name: str) -> Any:
    # The TLS helpers load cryptography's X.509 (~2 MB): the demo serves plain HTTP and
    # never needs them, so they come from tlsca only when asked for.
    if name in ("TlsFiles", "make_tls_files"):
        from fiotray.demo import tlsca

        return getattr(tlsca, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ALLOWED_LIMITS",
    "ConfigEntry",
    "ConfigFile",
    "FakeApiServer",
    "FakeDevice",
    "FakeFactory",
    "RecordedRequest",
    "TlsFiles",
    "main",
    "make_tls_files",
    "start_process",
]

ALLOWED_LIMITS = (10, 20, 30, 40, 50, 100, 200, 500, 1000)
DEFAULT_LIMIT = 500
FAKE_USER = "fake-user"
WG_CLIENT_FILE = "wireguard-client"
WG_SERVER_FILE = "wireguard-server"
VPN_HANDLER = "/usr/share/fioconfig/handlers/factory-config-vpn"
# Bodies beyond this are refused: nothing the client sends is near it, and a
# runaway client must not eat the memory of the test process.
_MAX_BODY = 8 * 1024 * 1024
# SubjectPublicKeyInfo header of an uncompressed P-256 key, like the device
# certificate keys that the real service reports in "public-key".
_P256_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d03010703420004")

JsonDict = dict[str, Any]


def rfc3339(ts: float) -> str:
    """UTC timestamp in the form the service uses: ``2026-11-25T12:00:00+00:00``."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def _parse_rfc3339(text: str) -> float | None:
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def random_wg_key(rng: random.Random | None = None) -> str:
    """A valid-looking WireGuard public key: standard base64 of 32 bytes."""
    raw = rng.randbytes(32) if rng is not None else secrets.token_bytes(32)
    return base64.b64encode(raw).decode("ascii")


def parse_kv(text: str) -> dict[str, str]:
    """Parse a WireGuard config file the way fioctl does (first ``=``, trimmed)."""
    result: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            result[key.strip()] = value.strip()
    return result


def _wg_client_value(pubkey: str, address: str | None, enabled: bool) -> str:
    # Exact fioctl layout, so clients comparing or parsing text see what they
    # would see on a real factory.
    value = f"address={address}\npubkey={pubkey}" if address else f"pubkey={pubkey}"
    if address and not enabled:
        value += "\nenabled=0"
    return value


@dataclass
class ConfigFile:
    name: str
    value: str
    unencrypted: bool = True
    on_changed: list[str] = field(default_factory=list)

    def to_json(self) -> JsonDict:
        return {
            "name": self.name,
            "value": self.value,
            "unencrypted": self.unencrypted,
            "on-changed": list(self.on_changed),
        }

    def copy(self) -> ConfigFile:
        return dataclasses.replace(self, on_changed=list(self.on_changed))


@dataclass
class ConfigEntry:
    created_at: str
    applied_at: str
    created_by: str
    reason: str
    files: list[ConfigFile]

    def to_json(self) -> JsonDict:
        return {
            "created-at": self.created_at,
            "applied-at": self.applied_at,
            "created-by": self.created_by,
            "reason": self.reason,
            "files": [f.to_json() for f in self.files],
        }


def _merge_files(previous: Iterable[ConfigFile], changed: Iterable[ConfigFile]) -> list[ConfigFile]:
    """Files of the previous entry with ``changed`` replacing/added by name (order kept)."""
    merged = [f.copy() for f in previous]
    index = {f.name: i for i, f in enumerate(merged)}
    for f in changed:
        if f.name in index:
            merged[index[f.name]] = f.copy()
        else:
            index[f.name] = len(merged)
            merged.append(f.copy())
    return merged


def _current_file(entries: Iterable[ConfigEntry], file_name: str) -> str | None:
    for entry in entries:
        for f in entry.files:
            if f.name == file_name:
                return f.value
    return None


def _fake_cert_pubkey(device_uuid: str) -> str:
    # Deterministic per device and cheap (10,000 devices): a PEM-shaped P-256
    # key. Not a valid curve point, which is fine: nobody verifies with it, and
    # it must never be mistaken for the WireGuard key.
    der = _P256_SPKI_PREFIX + hashlib.sha512(device_uuid.encode()).digest()
    b64 = base64.b64encode(der).decode("ascii")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n"


@dataclass
class FakeDevice:
    name: str
    uuid: str
    owner: str
    group: str | None
    target: str
    tag: str
    last_seen: dt.datetime | None
    is_prod: bool = False
    ostree_hash: str = ""
    lmp_ver: str = ""
    docker_apps: list[str] = field(default_factory=list)
    up_to_date: bool = True
    status: str = "OK"
    hostname: str | None = None
    local_ipv4: str | None = None
    mac: str | None = None
    configs: list[ConfigEntry] = field(default_factory=list)
    # Serialized list JSON, so a 500-device page is a join of cached bytes.
    # Assigning any attribute drops it (see __setattr__); mutating a list
    # field in place (docker_apps.append) does not: assign a new list instead.
    _json_cache: tuple[str, bytes] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)
        if name != "_json_cache":
            object.__setattr__(self, "_json_cache", None)

    def to_json(self, factory: str) -> JsonDict:
        last_seen = ""
        if self.last_seen is not None:
            seen = self.last_seen
            if seen.tzinfo is None:
                seen = seen.replace(tzinfo=dt.UTC)
            last_seen = seen.astimezone(dt.UTC).isoformat(timespec="seconds")
        data: JsonDict = {
            "name": self.name,
            "uuid": self.uuid,
            "owner": self.owner,
            "factory": factory,
            "device-group": self.group,
            "last-seen": last_seen,
            "target-name": self.target,
            "status": self.status,
            "up-to-date": self.up_to_date,
            "tag": self.tag,
            "ostree-hash": self.ostree_hash,
            "lmp-ver": self.lmp_ver,
            "docker-apps": list(self.docker_apps),
            "current-update": "",
            "is-prod": self.is_prod,
            "is-wave": False,
            "public-key": _fake_cert_pubkey(self.uuid),
        }
        if self.hostname is not None:
            data["network-info"] = {
                "hostname": self.hostname,
                "local_ipv4": self.local_ipv4,
                "mac": self.mac,
            }
        return data

    def json_bytes(self, factory: str) -> bytes:
        cache = self._json_cache
        if cache is not None and cache[0] == factory:
            return cache[1]
        data = json.dumps(self.to_json(factory)).encode()
        object.__setattr__(self, "_json_cache", (factory, data))
        return data


class _DeviceDict(dict[str, FakeDevice]):
    """A dict that counts its mutations, so the sorted name list can be cached."""

    version: int = 0

    def _bump(self) -> None:
        self.version += 1

    def __setitem__(self, key: str, value: FakeDevice) -> None:
        super().__setitem__(key, value)
        self._bump()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._bump()

    def __ior__(self, other: Any) -> _DeviceDict:  # type: ignore[override]
        super().__ior__(other)
        self._bump()
        return self

    def pop(self, *args: Any) -> Any:
        self._bump()
        return super().pop(*args)

    def popitem(self) -> tuple[str, FakeDevice]:
        self._bump()
        return super().popitem()

    def clear(self) -> None:
        super().clear()
        self._bump()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._bump()

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._bump()
        return super().setdefault(key, default)


class _Default(enum.Enum):
    RANDOM = "random"


@dataclass
class _AccessToken:
    scopes: tuple[str, ...]
    created: float
    expires_in: float


@dataclass
class _RefreshToken:
    client_id: str
    access_token: str


@dataclass
class _OAuthClient:
    secret: str | None  # None: a public client (authorization code; refresh needs no secret)
    scopes: tuple[str, ...]


_WORDS_A = (
    "amber", "brisk", "calm", "dusty", "eager", "fuzzy", "gentle", "hollow", "icy", "jolly",
    "keen", "lucky", "misty", "noble", "olive", "proud", "quiet", "rusty", "sunny", "tidy",
)  # fmt: skip
_WORDS_B = (
    "otter", "falcon", "maple", "harbor", "comet", "meadow", "pebble", "cedar", "lantern",
    "river", "summit", "willow", "badger", "canyon", "ember", "glacier", "heron", "juniper",
)  # fmt: skip
_APPS = ("shellhttpd", "fiotest", "mosquitto", "nginx", "grafana")


# A device not seen for this long is offline: its agent does not check in to apply changes.
OFFLINE_NO_APPLY = 3600.0


class FakeFactory:
    """The state of one fake factory: devices, configs, credentials."""

    token_ttl: float = 3600.0
    auto_apply_after: float | None = None
    # When True, refreshing also kills the access token issued with the old
    # refresh token (django-oauth-toolkit does this); off by default so a
    # request in flight with the old token is not failed.
    revoke_access_on_refresh: bool = False

    def __init__(self, name: str = "demo-factory") -> None:
        self.name = name
        self._devices = _DeviceDict()
        self.factory_configs: list[ConfigEntry] = []
        self.issued_tokens: list[str] = []
        # Reentrant so public helpers may call each other; handler threads and
        # test code both take it around every state access.
        self.lock = threading.RLock()
        # Wall-clock seconds; tests replace it to expire tokens or auto-apply
        # configs without sleeping.
        self.clock: Callable[[], float] = time.time
        self._api_tokens: dict[str, tuple[str, ...]] = {}
        self._access: dict[str, _AccessToken] = {}
        self._refresh: dict[str, _RefreshToken] = {}
        self._clients: dict[str, _OAuthClient] = {}
        self._codes: dict[str, str] = {}  # authorization code -> public client id
        self._sorted_key: tuple[int, int] | None = None
        self._sorted_names: list[str] = []

    # ----- devices ---------------------------------------------------------

    @property
    def devices(self) -> dict[str, FakeDevice]:
        return self._devices

    @devices.setter
    def devices(self, value: dict[str, FakeDevice]) -> None:
        self._devices = _DeviceDict(value)

    def sorted_names(self) -> list[str]:
        key = (id(self._devices), self._devices.version)
        if key != self._sorted_key:
            self._sorted_names = sorted(self._devices)
            self._sorted_key = key
        return self._sorted_names

    def _now(self) -> str:
        return rfc3339(self.clock())

    def add_device(
        self,
        name: str,
        *,
        wg_pubkey: str | Literal[_Default.RANDOM] | None = _Default.RANDOM,
        vpn_address: str | None = None,
        vpn_enabled: bool = True,
        online: bool = True,
        group: str | None = None,
        target: str = "",
        tag: str = "main",
        applied: bool = True,
        extra_files: list[ConfigFile] | None = None,
    ) -> FakeDevice:
        if wg_pubkey is _Default.RANDOM:
            wg_pubkey = random_wg_key()
        now = self.clock()
        seen_at = now if online else now - 30 * 86400
        device = FakeDevice(
            name=name,
            uuid=str(uuidlib.uuid4()),
            owner=FAKE_USER,
            group=group,
            target=target,
            tag=tag,
            last_seen=dt.datetime.fromtimestamp(seen_at, dt.UTC),
        )
        files: list[ConfigFile] = []
        if wg_pubkey is not None:
            files.append(
                ConfigFile(
                    WG_CLIENT_FILE,
                    _wg_client_value(wg_pubkey, vpn_address, vpn_enabled),
                    True,
                    [VPN_HANDLER],
                )
            )
        files.extend(f.copy() for f in extra_files or ())
        if files:
            created = rfc3339(now)
            device.configs.append(
                ConfigEntry(
                    created_at=created,
                    applied_at=created if applied else "",
                    created_by=FAKE_USER,
                    reason="Device registered its VPN key" if wg_pubkey else "Initial config",
                    files=files,
                )
            )
        with self.lock:
            self._devices[name] = device
        return device

    def populate(self, count: int, *, seed: int = 0) -> None:
        """Add ``count`` varied devices; the same seed gives the same factory."""
        rng = random.Random(seed)
        with self.lock:
            used = {ip["ip"] for ip in self.wireguard_ips()}
            start = len(self._devices)
            now = self.clock()
            width = max(4, len(str(start + count - 1)))
            next_ip = int(ipaddress.IPv4Address("10.42.42.2"))
            for i in range(start, start + count):
                name = f"{rng.choice(_WORDS_A)}-{rng.choice(_WORDS_B)}-{i:0{width}d}"
                roll = rng.random()
                if roll < 0.70:
                    last_seen: float | None = now - rng.uniform(5, 600)
                elif roll < 0.73:
                    last_seen = None
                else:
                    last_seen = now - rng.uniform(2 * 86400, 90 * 86400)
                has_key = rng.random() >= 0.10
                vpn_roll = rng.random()
                address: str | None = None
                if has_key and vpn_roll < 0.35:
                    while next_ip & 0xFF == 0 or str(ipaddress.IPv4Address(next_ip)) in used:
                        next_ip += 1
                    address = str(ipaddress.IPv4Address(next_ip))
                    used.add(address)
                    next_ip += 1
                tag = rng.choice(("main", "devel"))
                device = self.add_device(
                    name,
                    wg_pubkey=random_wg_key(rng) if has_key else None,
                    vpn_address=address,
                    # ~30% enabled, ~5% disabled but keeping their address.
                    vpn_enabled=vpn_roll < 0.30,
                    group=rng.choice(("lab", "field", "qa", None)),
                    target=f"{tag}-lmp-{rng.randint(40, 60)}",
                    tag=tag,
                    applied=rng.random() >= 0.04,
                )
                device.uuid = str(uuidlib.UUID(int=rng.getrandbits(128), version=4))
                device.last_seen = (
                    None if last_seen is None else dt.datetime.fromtimestamp(last_seen, dt.UTC)
                )
                device.is_prod = rng.random() < 0.2
                device.up_to_date = rng.random() < 0.9
                device.ostree_hash = rng.randbytes(32).hex()
                device.lmp_ver = str(rng.randint(88, 95))
                device.docker_apps = sorted(rng.sample(_APPS, rng.randint(0, 3)))
                if last_seen is not None and rng.random() < 0.85:
                    device.hostname = name
                    device.local_ipv4 = f"192.168.{(i // 250) % 256}.{i % 250 + 2}"
                    device.mac = ":".join(f"{b:02x}" for b in b"\x02" + rng.randbytes(5))

    # ----- configs ---------------------------------------------------------

    def current_file(self, device: str, file_name: str) -> str | None:
        with self.lock:
            return _current_file(self._devices[device].configs, file_name)

    def apply_pending(self, device: str | None = None) -> None:
        with self.lock:
            now = self._now()
            targets = [self._devices[device]] if device is not None else self._devices.values()
            for dev in targets:
                for entry in dev.configs:
                    if not entry.applied_at:
                        entry.applied_at = now

    def settle(self, device: FakeDevice) -> None:
        """Mark configs applied whose auto-apply delay has passed (lock held by caller)."""
        if self.auto_apply_after is None:
            return
        now = self.clock()
        seen = device.last_seen.timestamp() if device.last_seen is not None else None
        if seen is None or now - seen > OFFLINE_NO_APPLY:
            return  # an offline device does not check in, so it applies nothing
        for entry in device.configs:
            if entry.applied_at:
                continue
            created = _parse_rfc3339(entry.created_at)
            if created is not None and now >= created + self.auto_apply_after:
                entry.applied_at = rfc3339(created + self.auto_apply_after)

    def patch_config(
        self, entries: list[ConfigEntry], reason: str, files: list[ConfigFile]
    ) -> ConfigEntry:
        """Insert a new newest entry in ``entries`` merging ``files`` (lock held by caller)."""
        previous = entries[0].files if entries else []
        entry = ConfigEntry(
            created_at=self._now(),
            applied_at="",
            created_by=FAKE_USER,
            reason=reason,
            files=_merge_files(previous, files),
        )
        entries.insert(0, entry)
        return entry

    def set_wireguard_server(
        self,
        *,
        endpoint: str = "vpn.example.test:5555",
        server_address: str = "10.42.42.1",
        pubkey: str | Literal[_Default.RANDOM] = _Default.RANDOM,
        enabled: bool = True,
    ) -> None:
        if pubkey is _Default.RANDOM:
            pubkey = random_wg_key()
        value = f"endpoint={endpoint}\nserver_address={server_address}\npubkey={pubkey}"
        if not enabled:
            value += "\nenabled=0"
        with self.lock:
            self.patch_config(
                self.factory_configs,
                "Set Wireguard server configuration",
                [ConfigFile(WG_SERVER_FILE, value, True, [VPN_HANDLER])],
            )

    def remove_wireguard_server(self) -> None:
        # The API cannot delete a file (PATCH merges), so the fake rewrites
        # history: otherwise an older entry would still provide the file.
        with self.lock:
            for entry in self.factory_configs:
                entry.files = [f for f in entry.files if f.name != WG_SERVER_FILE]
            self.factory_configs = [e for e in self.factory_configs if e.files]

    def wireguard_ips(self) -> list[JsonDict]:
        with self.lock:
            result: list[JsonDict] = []
            for name in self.sorted_names():
                value = _current_file(self._devices[name].configs, WG_CLIENT_FILE)
                if value is None:
                    continue
                kv = parse_kv(value)
                if not kv.get("address"):
                    continue
                result.append(
                    {
                        "name": name,
                        "ip": kv["address"],
                        "enabled": kv.get("enabled") != "0",
                        "pubkey": kv.get("pubkey", ""),
                    }
                )
            return result

    # ----- credentials -----------------------------------------------------

    def _default_scopes(self) -> tuple[str, ...]:
        return (f"{self.name}:devices:read-update",)

    def add_api_token(self, token: str, scopes: tuple[str, ...] | None = None) -> None:
        with self.lock:
            self._api_tokens[token] = (
                tuple(scopes) if scopes is not None else self._default_scopes()
            )

    def add_oauth_client(
        self, client_id: str, client_secret: str, scopes: tuple[str, ...] | None = None
    ) -> None:
        with self.lock:
            self._clients[client_id] = _OAuthClient(
                client_secret, tuple(scopes) if scopes is not None else self._default_scopes()
            )

    def add_public_client(self, client_id: str, scopes: tuple[str, ...] | None = None) -> None:
        """A client without a secret, as factory-wireguard-server's: a person authorizes it
        and pastes the code (`authorization_code`); its refresh tokens need no secret."""
        with self.lock:
            self._clients[client_id] = _OAuthClient(
                None, tuple(scopes) if scopes is not None else self._default_scopes()
            )

    def authorization_code(self, client_id: str) -> str:
        """What the person would paste after authorizing `client_id` (one use)."""
        with self.lock:
            code = secrets.token_urlsafe(16)
            self._codes[code] = client_id
            return code

    def revoke(self, token: str) -> None:
        with self.lock:
            self._api_tokens.pop(token, None)
            self._access.pop(token, None)
            self._refresh.pop(token, None)

    def authenticate(self, headers: dict[str, str]) -> tuple[str, ...] | str:
        """Scopes of the request's credentials, or the 401 message (lock held by caller)."""
        osf = headers.get("osf-token")
        if osf is not None:
            scopes = self._api_tokens.get(osf.strip())
            return scopes if scopes is not None else "Invalid token."
        auth = headers.get("authorization")
        if auth is None:
            return "Authentication credentials were not provided."
        kind, _, credential = auth.strip().partition(" ")
        if kind.lower() != "bearer" or not credential.strip():
            return "Invalid token header."
        credential = credential.strip()
        candidates = [credential]
        # fioctl base64-encodes the access token; the raw form is accepted too.
        with contextlib.suppress(binascii.Error, UnicodeDecodeError):
            candidates.insert(0, base64.b64decode(credential, validate=True).decode("utf-8"))
        for candidate in candidates:
            token = self._access.get(candidate)
            if token is None:
                continue
            if self.clock() - token.created > token.expires_in:
                return "Token expired"
            return token.scopes
        return "Invalid token."

    def oauth_token(
        self, form: dict[str, str], basic: tuple[str, str] | None
    ) -> tuple[int, JsonDict]:
        """Answer of ``POST /oauth/token/`` (lock held by caller)."""
        grant = form.get("grant_type", "")
        if grant not in ("client_credentials", "refresh_token", "authorization_code"):
            return 400, {"error": "unsupported_grant_type"}
        client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
        if grant == "refresh_token" and not client_id:
            # A public client refreshes with the refresh token alone.
            record = self._refresh.get(form.get("refresh_token", ""))
            client_id = record.client_id if record is not None else ""
        client = self._clients.get(client_id)
        if client is None:
            return 401, {"error": "invalid_client"}
        if client.secret is None:
            if grant == "client_credentials" or secret:
                return 401, {"error": "invalid_client"}
        elif not hmac.compare_digest(secret.encode(), client.secret.encode()):
            return 401, {"error": "invalid_client"}
        used_code = self._codes.pop(form.get("code", ""), None)
        if grant == "authorization_code" and (client.secret is not None or used_code != client_id):
            return 400, {"error": "invalid_grant", "error_description": "Invalid code."}
        if grant == "refresh_token":
            old = form.get("refresh_token", "")
            record = self._refresh.get(old)
            if record is None or record.client_id != client_id:
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "Invalid, expired or already used refresh token.",
                }
            del self._refresh[old]
            if self.revoke_access_on_refresh:
                self._access.pop(record.access_token, None)
        access = secrets.token_urlsafe(32)
        refresh = secrets.token_urlsafe(32)
        self._access[access] = _AccessToken(client.scopes, self.clock(), float(self.token_ttl))
        self._refresh[refresh] = _RefreshToken(client_id, access)
        self.issued_tokens += [access, refresh]
        return 200, {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "bearer",
            "expires_in": float(self.token_ttl),
            "scope": " ".join(client.scopes),
            "orgs": [{"name": self.name}],
        }


# ----- HTTP server -------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    # 0 when an injected fault dropped the connection without answering.
    status: int


@dataclass
class _Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    body: bytes
    headers: dict[str, str]
    remaining: int
    delay: float
    drop: bool


@dataclass
class _Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _json_bytes(obj: object) -> bytes:
    return json.dumps(obj).encode()


def _msg(status: int, message: str) -> _Answer:
    return _Answer(status, _json_bytes({"msg": message}))


def _retry_after_text(value: float) -> str:
    # Whole seconds as HTTP says ("1"); fractions kept ("0.05") so tests of
    # retry logic do not have to wait a full second.
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class _BadRequest(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are separate writes; with Nagle on, loopback keep-alive
    # requests stall ~40 ms on the client's delayed ACK.
    disable_nagle_algorithm = True
    server: _HttpServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Malformed request lines etc.: JSON like every other answer.
        body = _json_bytes({"msg": message or self.responses.get(code, ("Error",))[0]})
        self.close_connection = True
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            pass

    def _dispatch(self) -> None:
        self.server.owner._serve(self)

    do_GET = do_PATCH = do_POST = do_PUT = do_DELETE = _dispatch


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    # Idle keep-alive connections must not make stop() wait for clients.
    block_on_close = False
    # Many clients (the benchmark) connect at once; the default backlog of 5
    # would make them wait for SYN retries.
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], owner: FakeApiServer, sock: socket.socket | None = None
    ) -> None:
        self.owner = owner
        super().__init__(address, _Handler, bind_and_activate=sock is None)
        if sock is not None:
            # Already bound and listening (see FakeApiServer's `sock`): serve that one.
            self.socket.close()
            self.socket = sock
            self.server_address = sock.getsockname()

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the connection's own thread, so a
        # slow or failing handshake cannot block the accept loop.
        conn = request
        context = self.owner._ssl_context
        if context is not None:
            request.settimeout(10)
            try:
                conn = context.wrap_socket(request, server_side=True)
            except OSError:
                return
            conn.settimeout(None)
        self.owner._track(conn, True)
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            self.owner._track(conn, False)
            if conn is not request:
                conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return  # a client hung up or failed TLS: not the fake's problem
        self.owner.handler_errors.append(traceback.format_exc())


class FakeApiServer:
    """Serves a :class:`FakeFactory` over HTTP(S) on a background daemon thread."""

    def __init__(
        self,
        factory: FakeFactory,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: TlsFiles | None = None,
        latency: float = 0.0,
        error_rate: float = 0.0,
        rate_limit_every: int = 0,
        retry_after: float = 1.0,
        seed: int = 0,
        sock: socket.socket | None = None,
    ) -> None:
        """`sock`: a listening TCP socket to serve instead of binding one (its address is
        known, and clients can connect, before the server starts; plain HTTP only)."""
        self.factory = factory
        self.host = host
        self.port = port
        self._sock = sock
        self.tls = tls
        self.latency = latency
        self.error_rate = error_rate
        self.rate_limit_every = rate_limit_every
        self.retry_after = retry_after
        self.next_base: str | None = None
        self.requests: list[RecordedRequest] = []
        # Tracebacks of exceptions in the fake itself (a bug): tests may assert empty.
        self.handler_errors: list[str] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._counter = 0
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._url: str | None = None

    # ----- lifecycle ---------------------------------------------------------

    def start(self) -> FakeApiServer:
        if self._httpd is not None:
            raise RuntimeError("FakeApiServer already started")
        self._stopping.clear()
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.tls.server_cert, self.tls.server_key)
            self._ssl_context = context
        if self._sock is not None and self.tls is not None:
            raise ValueError("a pre-bound socket serves plain HTTP only")
        sock, self._sock = self._sock, None
        if sock is not None:
            self.host = sock.getsockname()[0]
        self._httpd = _HttpServer((self.host, self.port), self, sock)
        self.port = self._httpd.server_address[1]
        url_host = "localhost" if self.tls is not None else self.host
        scheme = "https" if self.tls is not None else "http"
        self._url = f"{scheme}://{url_host}:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fakeapi-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            # Wakes handler threads blocked reading an idle keep-alive connection.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("FakeApiServer not started")
        return self._url

    @property
    def api_url(self) -> str:
        return self.url

    @property
    def oauth_url(self) -> str:
        return self.url + "/oauth"

    # ----- test controls -------------------------------------------------------

    def inject(
        self,
        method: str,
        path_regex: str,
        *,
        status: int = 500,
        body: bytes | str | dict[str, Any] | list[Any] = b'{"msg": "injected failure"}',
        headers: dict[str, str] | None = None,
        times: int = 1,
        delay: float = 0.0,
        drop: bool = False,
    ) -> None:
        """Answer the next ``times`` matching requests with this instead ("*" = any method)."""
        if isinstance(body, dict | list):
            raw = _json_bytes(body)
        elif isinstance(body, str):
            raw = body.encode()
        else:
            raw = bytes(body)
        fault = _Fault(
            method.upper(),
            re.compile(path_regex),
            status,
            raw,
            dict(headers or {}),
            times,
            delay,
            drop,
        )
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        """Forget every injected failure not used up yet."""
        with self._lock:
            self._faults.clear()

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # ----- internals -------------------------------------------------------------

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method in ("*", method) and fault.pattern.search(path):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    @staticmethod
    def _read_body(h: _Handler) -> bytes:
        if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size_line = h.rfile.readline(1024)
                try:
                    size = int(size_line.split(b";")[0].strip(), 16)
                except ValueError as exc:
                    raise _BadRequest("bad chunk size") from exc
                if size == 0:
                    while h.rfile.readline(1024).strip():  # trailers
                        pass
                    return b"".join(chunks)
                total += size
                if total > _MAX_BODY:
                    raise _BadRequest("body too large")
                chunks.append(h.rfile.read(size))
                h.rfile.readline(8)
        length_text = h.headers.get("Content-Length")
        if not length_text:
            return b""
        try:
            length = int(length_text)
        except ValueError as exc:
            raise _BadRequest("bad Content-Length") from exc
        if length < 0 or length > _MAX_BODY:
            raise _BadRequest("bad Content-Length")
        return h.rfile.read(length)

    def _serve(self, h: _Handler) -> None:
        if self.latency > 0:
            self._stopping.wait(self.latency)
        method = h.command
        split = urlsplit(h.path)
        path = split.path
        pairs = parse_qsl(split.query, keep_blank_values=True)
        query = dict(pairs)
        headers = {k.lower(): v for k, v in h.headers.items()}
        try:
            body = self._read_body(h)
        except _BadRequest as exc:
            h.close_connection = True
            answer = _Answer(400, _json_bytes({"msg": str(exc)}), {"Connection": "close"})
            self._record(RecordedRequest(method, path, query, headers, b"", answer.status))
            self._send(h, answer)
            return

        fault = self._take_fault(method, path)
        if fault is not None:
            if fault.delay > 0:
                self._stopping.wait(fault.delay)
            if fault.drop:
                h.close_connection = True
                self._record(RecordedRequest(method, path, query, headers, body, 0))
                return
            answer = _Answer(fault.status, fault.body, dict(fault.headers))
        else:
            try:
                answer = self._answer(method, path, pairs, query, headers, body)
            except Exception:
                self.handler_errors.append(traceback.format_exc())
                answer = _msg(500, "Internal error in the fake API")
        # Recorded just before the answer leaves, so a client that has its
        # response can rely on finding the request in ``requests``.
        self._record(RecordedRequest(method, path, query, headers, body, answer.status))
        self._send(h, answer)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    @staticmethod
    def _send(h: _Handler, answer: _Answer) -> None:
        try:
            h.send_response(answer.status)
            names = {k.lower() for k in answer.headers}
            if "content-type" not in names:
                h.send_header("Content-Type", "application/json")
            if "content-length" not in names:
                h.send_header("Content-Length", str(len(answer.body)))
            for key, value in answer.headers.items():
                h.send_header(key, value)
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(answer.body)
        except OSError:
            h.close_connection = True

    # ----- the API ---------------------------------------------------------------

    def _answer(
        self,
        method: str,
        path: str,
        pairs: list[tuple[str, str]],
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
    ) -> _Answer:
        with self._lock:
            self._counter += 1
            count = self._counter
            fail = method in ("GET", "PATCH") and self.error_rate > 0
            fail = fail and self._rng.random() < self.error_rate
        if self.rate_limit_every > 0 and count % self.rate_limit_every == 0:
            return _Answer(
                429,
                _json_bytes({"message": "Too many requests"}),
                {"Retry-After": _retry_after_text(self.retry_after)},
            )
        if fail:
            return _msg(503, "Service temporarily unavailable")

        # Django/DRF routes end with "/"; a client that forgets it gets a
        # redirect (GET) or an error (PATCH) from the real service.
        if not path.endswith("/"):
            return _msg(404, "Not found.")
        parts = [unquote(p) for p in path.strip("/").split("/")]

        if parts == ["oauth", "token"]:
            if method != "POST":
                return _Answer(405, _json_bytes({"msg": "Method not allowed"}), {"Allow": "POST"})
            return self._oauth(headers, body)
        if not parts or parts[0] != "ota":
            return _msg(404, "Not found.")

        route: str | None = None
        allowed: tuple[str, ...] = ("GET",)
        factory_name: str | None = query.get("factory")
        device_name: str | None = None
        match parts:
            case ["ota", "devices"]:
                route = "devices"
            case ["ota", "devices", name]:
                route, device_name = "device", name
            case ["ota", "devices", name, "config"]:
                route, device_name, allowed = "device-config", name, ("GET", "PATCH")
            case ["ota", "factories", fname, "config"]:
                route, factory_name, allowed = "factory-config", fname, ("GET", "PATCH")
            case ["ota", "factories", fname, "wireguard-ips"]:
                route, factory_name = "wireguard-ips", fname
        if route is None:
            return _msg(404, "Not found.")
        if method not in allowed:
            return _Answer(
                405, _json_bytes({"msg": "Method not allowed"}), {"Allow": ", ".join(allowed)}
            )

        factory = self.factory
        with factory.lock:
            scopes = factory.authenticate(headers)
            if isinstance(scopes, str):
                return _msg(401, scopes)
            if factory_name is None:
                return _Answer(400, _json_bytes({"errors": {"factory": "This field is required."}}))
            if factory_name != factory.name:
                return _msg(404, "Factory not found")
            write_scope = f"{factory.name}:devices:read-update"
            needed = (write_scope,) if method == "PATCH" else (f"{factory.name}:devices:read",)
            if not any(s in scopes for s in (*needed, write_scope)):
                return _msg(403, f"Token lacks the scope {needed[0]}")

            if route == "devices":
                return self._device_list(path, pairs, query)
            if route == "factory-config":
                if method == "PATCH":
                    return self._patch(factory.factory_configs, body)
                return self._config_page(factory.factory_configs)
            if route == "wireguard-ips":
                return _Answer(200, _json_bytes(factory.wireguard_ips()))

            assert device_name is not None
            device = self._find_device(device_name, query.get("by-uuid", "") in ("1", "true"))
            if device is None:
                return _msg(404, "Device not found")
            if route == "device":
                return _Answer(200, device.json_bytes(factory.name))
            if method == "PATCH":
                return self._patch(device.configs, body)
            factory.settle(device)
            return self._config_page(device.configs)

    def _find_device(self, key: str, by_uuid: bool) -> FakeDevice | None:
        devices = self.factory.devices
        if not by_uuid:
            return devices.get(key)
        return next((d for d in devices.values() if d.uuid == key), None)

    def _device_list(
        self, path: str, pairs: list[tuple[str, str]], query: dict[str, str]
    ) -> _Answer:
        factory = self.factory
        limit_text = query.get("limit", str(DEFAULT_LIMIT))
        if not limit_text.isdigit() or int(limit_text) not in ALLOWED_LIMITS:
            choices = ", ".join(str(n) for n in ALLOWED_LIMITS)
            return _Answer(
                400,
                _json_bytes({"errors": {"limit": f"Select a valid choice: one of {choices}."}}),
            )
        limit = int(limit_text)
        page_text = query.get("page", "1")
        if not page_text.isdigit() or int(page_text) < 1:
            return _msg(404, "Invalid page.")
        page = int(page_text)

        names = factory.sorted_names()
        glob = query.get("name")
        if glob:
            matcher = re.compile(fnmatch.translate(glob)).match
            names = [n for n in names if matcher(n)]
        prod = query.get("prod")
        if prod in ("0", "1"):
            devices = factory.devices
            names = [n for n in names if devices[n].is_prod == (prod == "1")]
        total = len(names)
        start = (page - 1) * limit
        if page > 1 and start >= total:
            return _msg(404, "Invalid page.")
        window = names[start : start + limit]
        next_url: str | None = None
        if start + limit < total:
            next_pairs = [(k, v) for k, v in pairs if k != "page"] + [("page", str(page + 1))]
            next_url = f"{self.next_base or self.url}{path}?{urlencode(next_pairs)}"
        devices = factory.devices
        body = b"".join(
            (
                b'{"devices": [',
                b", ".join(devices[n].json_bytes(factory.name) for n in window),
                b'], "total": ',
                str(total).encode(),
                b', "next": ',
                _json_bytes(next_url),
                b"}",
            )
        )
        return _Answer(200, body)

    @staticmethod
    def _config_page(entries: list[ConfigEntry]) -> _Answer:
        return _Answer(
            200,
            _json_bytes(
                {"config": [e.to_json() for e in entries], "total": len(entries), "next": None}
            ),
        )

    def _patch(self, entries: list[ConfigEntry], body: bytes) -> _Answer:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _Answer(400, _json_bytes({"errors": ["Request body is not valid JSON."]}))
        errors: list[str] = []
        files: list[ConfigFile] = []
        if not isinstance(data, dict):
            errors.append("The request body must be a JSON object.")
            data = {}
        reason = data.get("reason")
        if not isinstance(reason, str):
            errors.append("reason: a string is required.")
        raw_files = data.get("files")
        if not isinstance(raw_files, list) or not raw_files:
            errors.append("files: a non-empty list is required.")
            raw_files = []
        for i, item in enumerate(raw_files):
            if not isinstance(item, dict):
                errors.append(f"files[{i}]: must be an object.")
                continue
            name, value = item.get("name"), item.get("value")
            unencrypted = item.get("unencrypted", True)
            on_changed = item.get("on-changed", [])
            if not isinstance(name, str) or not name:
                errors.append(f"files[{i}].name: a non-empty string is required.")
            if not isinstance(value, str):
                errors.append(f"files[{i}].value: a string is required.")
            if not isinstance(unencrypted, bool):
                errors.append(f"files[{i}].unencrypted: must be a boolean.")
            if not isinstance(on_changed, list) or not all(isinstance(s, str) for s in on_changed):
                errors.append(f"files[{i}].on-changed: must be a list of strings.")
            if not errors:
                files.append(ConfigFile(str(name), str(value), bool(unencrypted), list(on_changed)))
        if errors:
            return _Answer(400, _json_bytes({"errors": errors}))
        self.factory.patch_config(entries, str(reason), files)
        return _Answer(201, b"{}")

    def _oauth(self, headers: dict[str, str], body: bytes) -> _Answer:
        try:
            form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            return _Answer(400, _json_bytes({"error": "invalid_request"}))
        basic: tuple[str, str] | None = None
        auth = headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            # Go's oauth2 (fioctl) may send client credentials as HTTP Basic.
            try:
                decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return _Answer(401, _json_bytes({"error": "invalid_client"}))
            user, _, password = decoded.partition(":")
            basic = (unquote(user), unquote(password))
        with self.factory.lock:
            status, data = self.factory.oauth_token(form, basic)
        return _Answer(status, _json_bytes(data), {"Cache-Control": "no-store"})


# ----- command line ----------------------------------------------------------------


def start_process(args: Sequence[str]) -> tuple[subprocess.Popen[str], JsonDict]:
    """`python -m fiotray.demo.fakeapi *args` in its own process, once it is serving.

    Returns the process and what it announced on its first line (url, oauth_url,
    factory, ...). A server in its own process, as a real one is elsewhere: in the
    caller's process its threads would compete for the GIL with what is measured.
    """
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, "-m", "fiotray.demo.fakeapi", *args], stdout=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the fake API did not start (exit {proc.returncode})")
    return proc, json.loads(line)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fiotray.demo.fakeapi",
        description="Serve a fake FoundriesFactory API until SIGTERM/SIGINT.",
    )
    parser.add_argument("--factory", default="demo-factory")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls", metavar="DIR", help="create a throwaway CA in DIR and serve HTTPS")
    parser.add_argument("--api-token")
    parser.add_argument("--client-id")
    parser.add_argument("--client-secret")
    parser.add_argument("--token-ttl", type=float, default=3600.0)
    parser.add_argument("--auto-apply", type=float, default=None, metavar="SECS")
    parser.add_argument(
        "--no-vpn-server", action="store_true", help="no wireguard-server in the factory config"
    )
    args = parser.parse_args(argv)
    if bool(args.client_id) != bool(args.client_secret):
        parser.error("--client-id and --client-secret go together")

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    # Installed before the JSON line is printed, so a caller may signal as
    # soon as it has read it.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    factory = FakeFactory(args.factory)
    factory.token_ttl = args.token_ttl
    factory.auto_apply_after = args.auto_apply
    factory.populate(args.devices, seed=args.seed)
    if not args.no_vpn_server:
        factory.set_wireguard_server()
    if args.api_token:
        factory.add_api_token(args.api_token)
    if args.client_id:
        factory.add_oauth_client(args.client_id, args.client_secret)
    from fiotray.demo.tlsca import make_tls_files

    tls = make_tls_files(Path(args.tls)) if args.tls else None

    with FakeApiServer(
        factory, host=args.host, port=args.port, tls=tls, latency=args.latency, seed=args.seed
    ) as server:
        info: dict[str, str] = {
            "url": server.url,
            "oauth_url": server.oauth_url,
            "factory": factory.name,
        }
        if tls is not None:
            info["ca_cert"] = str(tls.ca_cert)
        print(json.dumps(info), flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
