"""Everything a front end works with, in one object: the user's own, or the demo's.

The CLI, the GUI backend (and the MCP server) each hold one `Services` and pass it
to `fiotray.ops`. `user_services()` opens the user's stores and keyring;
`demo_services()` builds the embedded demo factory with stores in a temporary
directory and an in-memory keyring, so nothing a demo does reaches the user's files
or keyring; only its simulated tunnel's state is shared, in the user's runtime
directory, by every demo process (the tray's and the CLI's `--demo`).

Heavy modules (httpx, keyring, cryptography, the fake API) are imported on first
use: the tray builds its services before its icon shows.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fiotray.core.factories import Factory, FactoryStore
from fiotray.core.settings import SettingsStore
from fiotray.core.tunnels import TunnelController, TunnelStore

if TYPE_CHECKING:
    from fiotray.core.api import FactoryClient
    from fiotray.core.devices import PendingStore
    from fiotray.core.secrets import SecretStore
    from fiotray.demo.factory import DemoSession

log = logging.getLogger(__name__)


@dataclass
class Services:
    factories: FactoryStore
    tunnels: TunnelStore
    settings: SettingsStore
    secrets: SecretStore
    controller: TunnelController
    pending_store: PendingStore | None = None  # None: the user's own, opened on first use
    demo: DemoSession | None = None
    # The demo started because nothing was set up (the GUI without --demo): start at
    # login applies and its preferences come along. In either demo, what the user signs
    # in to or imports is theirs, saved to their own stores, and the app leaves the demo.
    auto_demo: bool = False
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    _clients: dict[str, FactoryClient] = field(default_factory=dict, repr=False)

    @property
    def is_demo(self) -> bool:
        return self.demo is not None

    def pending(self) -> PendingStore:
        """VPN changes the devices have not applied yet."""
        if self.pending_store is None:
            from fiotray.core.devices import PendingStore

            self.pending_store = PendingStore()
        return self.pending_store

    def factory(self, name: str | None = None) -> Factory:
        """A signed-in factory by name; None: the only or the default one."""
        return self.factories.get(name)

    async def client(self, factory: str | None = None) -> FactoryClient:
        """A signed-in API client for the factory, kept until `forget_client` or `aclose`."""
        signed_in = self.factory(factory)
        name = signed_in.factory
        if name not in self._clients:
            await self.demo_up()
            # Off the loop: the first time, importing httpx and the API modules and
            # reading the CA bundle take ~100 ms.
            verify = await asyncio.to_thread(_client_tls, signed_in)
            from fiotray.core.session import open_factory

            client = await open_factory(signed_in, self.secrets, verify=verify)
            if name in self._clients:  # another caller was quicker
                await client.aclose()
            else:
                self._clients[name] = client
        return self._clients[name]

    async def forget_client(self, factory: str) -> None:
        """Drop the factory's client: its credentials changed or were refused."""
        client = self._clients.pop(factory, None)
        if client is not None:
            await client.aclose()

    async def demo_up(self) -> None:
        """The demo's fake API serving before anything talks to it (it starts on first use)."""
        demo = self.demo
        if demo is not None and not demo.started:
            # Off the loop: the fake API's modules and its factory of devices.
            await asyncio.to_thread(lambda: demo.server)

    async def aclose(self) -> None:
        """Close the API clients and remove what the services made (the demo's temp dir)."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()
        self.close()

    def close(self) -> None:
        cleanups, self.cleanups = self.cleanups, []
        for cleanup in cleanups:
            cleanup()


def _client_tls(factory: Factory) -> Any:
    """The TLS context of the factory's client, which talks to its API and, signed in with
    OAuth2, to its token endpoint (a CA bundle is read only when one of them is https)."""
    # Imported here, off the loop: what open_factory then uses, the API client and the
    # sign-in code (core.session imports them only when a factory is opened).
    from fiotray.core import api, auth, session  # noqa: F401

    urls = [factory.api_url, *([factory.oauth_url] if factory.auth == "oauth" else [])]
    return api.tls_context_for(urls)


def user_services(config_dir: Path | None = None) -> Services:
    """The user's factories, tunnels, settings and keyring."""
    # Neither keyring nor the devices code is loaded here: the tray starts without them.
    from fiotray.core.secrets import SecretStore

    tunnels = TunnelStore(config_dir)
    secrets = SecretStore(index=tunnels.config_dir / "keyring-entries.json")
    return Services(
        factories=FactoryStore(config_dir),
        tunnels=tunnels,
        settings=SettingsStore(config_dir),
        secrets=secrets,
        controller=TunnelController(tunnels, secrets),
    )


DEMO_ADDRESS = "10.42.42.250"  # the laptop's address on the demo factory's VPN


def demo_services(
    devices: int | None = None, *, latency: float = 0.0, sys_net: Path | None = None
) -> Services:
    """The embedded fake factory, a simulated tunnel, nothing saved outside a temp dir.

    The fake API starts when something first talks to it (`Services.client`), so a demo
    tray idling in the background costs about what the real one does. `sys_net`: where
    the simulated interfaces live; by default the one place every demo process of this
    user shares (`fiotray.demo.tunnel.demo_net_dir`).
    """
    from fiotray.core import wgconf
    from fiotray.core.devices import PendingStore
    from fiotray.core.secrets import tunnel_key
    from fiotray.core.tunnels import Tunnel
    from fiotray.core.wgfiles import WireguardServer
    from fiotray.demo import factory as demo
    from fiotray.demo.tunnel import SimulatedHelper, demo_net_dir

    if sys_net is None:
        sys_net = demo_net_dir()  # first: a refused directory leaves no temp dir behind
    scratch = tempfile.TemporaryDirectory(prefix="fiotray-demo-")
    root = Path(scratch.name)
    session = demo.DemoSession(devices or demo.DEMO_DEVICES, latency=latency)
    factories = FactoryStore(root / "config")
    factories.save(session.factory, make_default=True)
    tunnels = TunnelStore(root / "config")
    # What the demo factory's wireguard-server file says (fiotray.demo.factory).
    wg_server = WireguardServer(
        endpoint=demo.DEMO_SERVER_ENDPOINT,
        server_address=demo.DEMO_SERVER_ADDRESS,
        pubkey=demo.DEMO_SERVER_PUBLIC_KEY,
    )
    tunnels.save(
        Tunnel(
            name=session.factory.factory,
            kind="foundries",
            interface="fiodemo",
            template=wgconf.foundries_template(wg_server, DEMO_ADDRESS),
            public_key=demo.DEMO_LAPTOP_PUBLIC_KEY,
            endpoint=wg_server.endpoint,
            factory=session.factory.factory,
            address=DEMO_ADDRESS,
            server_address=wg_server.server_address,
        )
    )
    session.secrets.set(tunnel_key(session.factory.factory), demo.DEMO_LAPTOP_PRIVATE_KEY)
    controller = TunnelController(
        tunnels, session.secrets, SimulatedHelper(sys_net), sys_net=sys_net
    )
    return Services(
        factories=factories,
        tunnels=tunnels,
        settings=SettingsStore(root / "config"),
        secrets=session.secrets,
        controller=controller,
        pending_store=PendingStore(root / "state" / "pending-vpn.json"),
        demo=session,
        cleanups=[session.close, scratch.cleanup],
    )
