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


class EngineerStore:
    def __init__(self, path: Path = DEFAULT_PATH) -> None:
        self.path = path
        self._file: JsonFile[dict[str, Engineer]] = JsonFile(
            path,
            parse=self._parse,
            dump=lambda engineers: {
                "version": 1,
                "engineers": {n: _entry(e) for n, e in sorted(engineers.items())},
            },
            default=dict,
            invalid=self._invalid,
            error=SetupError,
        )

    def _invalid(self, reason: str) -> dict[str, Engineer]:
        raise SetupError(f"The engineers file {self.path} is unusable: {reason}; fix or remove it.")

    def _parse(self, data: Any) -> dict[str, Engineer]:
        entries = data.get("engineers") if isinstance(data, dict) else None
        if not isinstance(entries, dict):
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
        return out

    def list(self) -> list[Engineer]:
        return sorted(self._file.read().values(), key=lambda e: e.name)

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

        def change(engineers: dict[str, Engineer]) -> dict[str, Engineer]:
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
            return {**engineers, name: Engineer(name, public_key, chosen, source)}

        return self._file.update(change)[name]

    def remove(self, name: str) -> Engineer:
        gone: list[Engineer] = []

        def change(engineers: dict[str, Engineer]) -> dict[str, Engineer]:
            if name not in engineers:
                raise EngineerError(f"No engineer named {name[:40]!r}.", code="not-found")
            gone.append(engineers[name])
            return {n: e for n, e in engineers.items() if n != name}

        self._file.update(change)
        return gone[0]


def _entry(e: Engineer) -> dict[str, str]:
    entry = asdict(e)
    del entry["name"]
    return entry
