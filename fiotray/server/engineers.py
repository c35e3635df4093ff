"""Engineers' laptops admitted as peers: kept on the server, apart from device peers.

An engineer has a name, a WireGuard public key and a VPN address from the engineers'
range (`fiotray.core.wgconf.engineer_addresses`): out of reach of fioctl's allocator, so
a device can never be handed it. The file is root-only (0600 in a 0700 directory).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from fiotray.core import wgconf
from fiotray.core.errors import FiotrayError, SetupError
from fiotray.core.store import JsonFile
from fiotray.wg.config import is_key_shape

DEFAULT_PATH = Path("/var/lib/fiotray-server/engineers.json")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
Source = Literal["admin", "self"]  # added with `peers add`, or asked for by the laptop


class EngineerError(FiotrayError):
    default_code = "engineer"


@dataclass(frozen=True)
class Engineer:
    name: str
    public_key: str
    address: str
    source: Source = "admin"


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise EngineerError(
            f"Engineer name {name[:40]!r} must be 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    return name


def check_public_key(key: str) -> str:
    """A WireGuard public key (base64 of 32 bytes), by the helper's own rule."""
    if not is_key_shape(key):
        raise EngineerError("That is not a WireGuard public key (44 characters of base64).")
    return key


@dataclass(frozen=True)
class _Saved:
    engineers: dict[str, Engineer]  # admitted by the admin, by name
    # Self-service laptops the admin revoked: public key -> name. Their requests stay in
    # the factory's config, so the key is refused at every sync until the admin adds it.
    revoked: dict[str, str]


class EngineerStore:
    def __init__(self, path: Path = DEFAULT_PATH) -> None:
        self.path = path
        self._file: JsonFile[_Saved] = JsonFile(
            path,
            parse=self._parse,
            dump=lambda saved: {
                "version": 1,
                "engineers": {n: _entry(e) for n, e in sorted(saved.engineers.items())},
                "revoked": dict(sorted(saved.revoked.items())),
            },
            default=lambda: _Saved({}, {}),
            invalid=self._invalid,
            error=SetupError,
        )

    def _invalid(self, reason: str) -> _Saved:
        raise SetupError(f"The engineers file {self.path} is unusable: {reason}; fix or remove it.")

    def _parse(self, data: Any) -> _Saved:
        entries = data.get("engineers") if isinstance(data, dict) else None
        revoked = data.get("revoked", {}) if isinstance(data, dict) else None
        if not isinstance(entries, dict) or not isinstance(revoked, dict):
            return self._invalid("no engineers table")
        out = {}
        for name, entry in entries.items():
            try:
                e = Engineer(name=name, **entry)
                check_name(e.name)
                check_public_key(e.public_key)
            except (TypeError, FiotrayError):
                return self._invalid(f"a bad entry {str(name)[:40]!r}")
            out[name] = e
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in revoked.items()):
            return self._invalid("a bad revoked entry")
        return _Saved(out, revoked)

    def list(self) -> list[Engineer]:
        """The engineers the admin admitted."""
        return sorted(self._file.read().engineers.values(), key=lambda e: e.name)

    def revoked(self) -> dict[str, str]:
        """Public key -> name of every self-service laptop the admin revoked."""
        return dict(self._file.read().revoked)

    def add(
        self,
        name: str,
        public_key: str,
        *,
        server_address: str,
        address: str | None = None,
        devices: Iterable[tuple[str, str]] = (),
        source: Source = "admin",
    ) -> Engineer:
        """Admit an engineer; `devices`: (address, public key) of every device peer, which
        an engineer may never take. Nothing is saved when anything collides."""
        check_name(name)
        check_public_key(public_key)
        taken_by_devices = {ip for ip, _key in devices}
        device_keys = {key for _ip, key in devices}
        if public_key in device_keys:
            raise EngineerError(f"{public_key} is a device's public key.", code="collision")
        if address is not None and not wgconf.is_engineer_address(address, server_address):
            raise EngineerError(
                f"{address[:40]} is not in the engineers' range: it must be in the VPN "
                f"network {wgconf.vpn_subnet(server_address)} and out of the range fioctl "
                "hands to devices (e.g. "
                f"{wgconf.engineer_addresses(server_address)[0]}).",
                code="collision",
            )

        def change(saved: _Saved) -> _Saved:
            engineers = saved.engineers
            if name in engineers:
                raise EngineerError(f"An engineer named {name} exists already.", code="exists")
            others = {e.address: e for e in engineers.values()}
            if any(e.public_key == public_key for e in engineers.values()):
                raise EngineerError("Another engineer has that public key.", code="collision")
            chosen = address
            if chosen is None:
                taken = taken_by_devices | set(others)
                chosen = next(
                    (a for a in wgconf.engineer_addresses(server_address) if a not in taken), None
                )
                if chosen is None:
                    raise EngineerError("No free address is left in the engineers' range.")
            elif chosen in others:
                raise EngineerError(
                    f"{chosen} belongs to engineer {others[chosen].name}.", code="collision"
                )
            elif chosen in taken_by_devices:
                raise EngineerError(f"{chosen} belongs to a device.", code="collision")
            revoked = {k: n for k, n in saved.revoked.items() if k != public_key}
            return _Saved({**engineers, name: Engineer(name, public_key, chosen, source)}, revoked)

        return self._file.update(change).engineers[name]

    def remove(self, name: str, *, requested: Iterable[Engineer] = ()) -> Engineer:
        """Revoke an engineer: one the admin added is forgotten; a self-service one (among
        `requested`, the laptops asking through the factory) is refused from now on."""
        gone: list[Engineer] = []
        asking = {e.name: e for e in requested}

        def change(saved: _Saved) -> _Saved:
            if name in saved.engineers:
                gone.append(saved.engineers[name])
                rest = {n: e for n, e in saved.engineers.items() if n != name}
                return _Saved(rest, saved.revoked)
            if name in asking:
                gone.append(asking[name])
                return _Saved(saved.engineers, {**saved.revoked, asking[name].public_key: name})
            raise EngineerError(f"No engineer named {name[:40]!r}.", code="not-found")

        self._file.update(change)
        return gone[0]


def _entry(e: Engineer) -> dict[str, str]:
    entry = asdict(e)
    del entry["name"]
    return entry
