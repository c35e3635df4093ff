"""The daemon loop: every interval, the factory's VPN-enabled devices and the engineers
become the interface's peers, one `wg set` per changed peer.

It never bounces the interface and never exits on a failure: an API error, a timeout or
a failed `wg` step is logged and recorded (status.json), the peers stay as they are (the
last good set), and the next try comes sooner (capped backoff) until the API answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from fiotray.core import devices as core_devices
from fiotray.core import wgconf
from fiotray.core.errors import AuthError, FiotrayError, SetupError
from fiotray.core.files import write_private
from fiotray.core.wgfiles import engineer_requests
from fiotray.server import hosts
from fiotray.server.engineers import Engineer, EngineerStore
from fiotray.server.interface import WgInterface
from fiotray.server.peers import Refused, requested_engineers, wanted_peers
from fiotray.server.setup import (
    ServerSettings,
    bring_up,
    check_key_matches,
    read_private_key,
)
from fiotray.server.sync import CurrentPeer, plan

log = logging.getLogger("fiotray-server")
# After a failure the next try comes after 5 s, then twice as long each time, up to the
# interval: an outage is noticed over quickly, and a long one costs few requests.
FIRST_RETRY = 5.0


@dataclass
class SyncReport:
    at: float
    added: list[str] = field(default_factory=list)  # names
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # public keys
    refused: list[dict[str, str]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    peers: int = 0
    # The self-service laptops admitted at this sync (name, public key, address).
    requested: list[dict[str, str]] = field(default_factory=list)


def manages(peer: CurrentPeer, server_address: str, subnet: IPv4Network) -> bool:
    """A peer holding exactly one address of the VPN network (`subnet`) is the server's own
    (a device or an engineer: their peers come and go with the API and the engineers'
    store); any other peer was set up by hand and is left alone."""
    if len(peer.allowed_ips) != 1 or not peer.allowed_ips[0].endswith("/32"):
        return False
    try:
        address = IPv4Address(peer.allowed_ips[0].removesuffix("/32"))
    except ValueError:
        return False
    return str(address) != server_address and address in subnet


class Daemon:
    def __init__(
        self,
        *,
        factory: str,
        api: Any,  # fiotray.core.api.FactoryClient (its timeouts and retries apply)
        interface: WgInterface,
        engineers: EngineerStore,
        state_dir: Path,
        hosts_file: Path | None = Path("/etc/hosts"),
        interval: float = 300.0,
        self_service: bool = False,
        key_file: Path | None = None,
    ) -> None:
        self.factory = factory
        self.api = api
        self.interface = interface
        self.engineers = engineers
        self.state_path = state_dir / "status.json"
        self.hosts_file = hosts_file
        self.interval = interval
        self.self_service = self_service
        self.key_file = key_file
        self.settings_path = state_dir / "server.json"
        self.state_dir = state_dir
        self.last_sync: SyncReport | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None

    async def _server_settings(self) -> ServerSettings:
        """The factory's `wireguard-server` file (kept for the next boot), or the copy
        kept when the API does not answer."""
        try:
            settings = ServerSettings.from_factory(await core_devices.factory_server(self.api))
        except FiotrayError as exc:
            kept = await asyncio.to_thread(ServerSettings.load, self.settings_path)
            if kept is None:
                raise
            log.warning("the factory's server file is out of reach (%s): using the kept copy", exc)
            return kept
        await asyncio.to_thread(settings.save, self.settings_path)
        return settings

    async def ensure_interface(self) -> None:
        """Bring the interface up when it is not there (a boot, or an admin's wg-quick
        down); one that is there is used as it is."""
        if self.interface.exists():
            return
        if self.key_file is None:
            raise SetupError(
                f"{self.interface.name} is not up and there is no key to bring it up with "
                "(--privatekey FILE)."
            )
        key_file = self.key_file
        key = await asyncio.to_thread(read_private_key, key_file)
        settings = await self._server_settings()
        await asyncio.to_thread(check_key_matches, key, settings)
        await asyncio.to_thread(bring_up, self.interface, settings, key_file, self.state_dir)

    async def sync_once(self) -> SyncReport:
        await self.ensure_interface()
        devices = await self.api.wireguard_ips()
        admin = await asyncio.to_thread(self.engineers.list)
        intf = self.interface
        server_address = await asyncio.to_thread(intf.server_address)
        requested: list[Engineer] = []
        refused_requests: list[Refused] = []
        if self.self_service:
            files = await self.api.factory_config_files()
            requested, refused_requests = requested_engineers(
                engineer_requests((f.name, f.value) for f in files),
                server_address,
                admin=admin,
                revoked=await asyncio.to_thread(self.engineers.revoked),
            )
        current = await asyncio.to_thread(intf.peers)
        wanted, refused = wanted_peers(
            devices, [*admin, *requested], server_address, admitted=current.keys()
        )
        refused = refused_requests + refused
        # Once per sync, not per peer: tens of thousands of peers on a large factory.
        subnet = wgconf.vpn_subnet(server_address)
        managed = {k for k, p in current.items() if manages(p, server_address, subnet)}
        steps = plan(wanted, current, managed=managed)
        await asyncio.to_thread(intf.ensure_route, str(subnet))
        failed = await asyncio.to_thread(intf.apply, steps) if not steps.empty else []
        for r in refused:
            log.warning("%s %s refused: %s", r.kind, r.name, r.reason)
        if not steps.empty:
            log.info(
                "peers: %d added, %d changed, %d removed",
                len(steps.add),
                len(steps.change),
                len(steps.remove),
            )
        hosts_error = None
        if self.hosts_file is not None:
            entries = [(p.address, p.name) for p in wanted.values()]
            try:
                await asyncio.to_thread(hosts.update, self.hosts_file, self.factory, entries)
            except FiotrayError as exc:  # the peers are right; names are a convenience
                log.warning("%s", exc)
                hosts_error = str(exc)
        return SyncReport(
            at=time.time(),
            added=[p.name for p in steps.add],
            changed=[p.name for p in steps.change],
            removed=list(steps.remove),
            refused=[asdict(r) for r in refused],
            failed=failed + ([hosts_error] if hosts_error else []),
            peers=len(wanted),
            requested=[
                {"name": e.name, "public_key": e.public_key, "address": e.address}
                for e in requested
                if e.public_key in wanted and wanted[e.public_key].name == e.name
            ],
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Sync until `stop` is set; failures are recorded, never fatal."""
        retry = FIRST_RETRY
        while not stop.is_set():
            try:
                self.last_sync = await self.sync_once()
                self.last_error = None
                wait = self.interval
                retry = FIRST_RETRY
            except AuthError:
                # The core's sentence points at `fiotray login`, the laptop's remedy.
                self._failed("the factory API refused the server's token: check the token file")
                wait, retry = min(retry, self.interval), min(retry * 2, self.interval)
            except FiotrayError as exc:
                self._failed(str(exc))
                wait, retry = min(retry, self.interval), min(retry * 2, self.interval)
            except Exception as exc:
                log.exception("sync failed unexpectedly")
                self._failed(f"unexpected {type(exc).__name__}")
                wait, retry = min(retry, self.interval), min(retry * 2, self.interval)
            await asyncio.to_thread(self._record)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)

    def _failed(self, message: str) -> None:
        log.warning("sync failed, the peers stay as they are: %s", message)
        self.last_error, self.last_error_at = message, time.time()

    def _record(self) -> None:
        state = {
            "factory": self.factory,
            "interface": self.interface.name,
            "last_sync": asdict(self.last_sync) if self.last_sync else None,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }
        try:
            write_private(self.state_path, json.dumps(state, indent=2) + "\n")
        except FiotrayError as exc:
            log.warning("%s", exc)
