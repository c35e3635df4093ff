"""The GUI's one door to the core.

Widgets never touch HTTP, the keyring or subprocesses: they call a Backend
coroutine through `Backend.spawn` (or await it from an async slot) and listen
to its signals. Every coroutine runs on the one qasync event loop; keyring
calls go to a thread inside the core. Heavy modules (httpx, keyring,
cryptography) are imported on first use so the tray appears fast.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from PySide6.QtCore import QObject, Signal

from fiotray.core.errors import AuthError, FiotrayError, NotFoundError
from fiotray.core.factories import Factory, FactoryStore
from fiotray.core.settings import Settings, SettingsStore
from fiotray.core.tunnels import State, Tunnel, TunnelController, TunnelStatus, TunnelStore

if TYPE_CHECKING:
    from fiotray.core.devices import DeviceRows, PendingStore, VpnState
    from fiotray.core.secrets import SecretStore

log = logging.getLogger(__name__)
T = TypeVar("T")
P = ParamSpec("P")
# How long a quit waits for changes in progress (a PATCH, a tunnel going up or down, a
# sign-in being saved) before it cancels them.
QUIT_GRACE = 10.0


def finishes_before_quit(
    method: Callable[Concatenate[Backend, P], Awaitable[T]],
) -> Callable[Concatenate[Backend, P], Coroutine[Any, Any, T]]:
    """A change the user asked for: a quit lets it finish instead of cutting it off."""

    @functools.wraps(method)
    async def run(self: Backend, *args: P.args, **kwargs: P.kwargs) -> T:
        task = asyncio.current_task()
        if task is not None:
            self._changes[task] += 1
        try:
            return await method(self, *args, **kwargs)
        finally:
            if task is not None:
                self._changes[task] -= 1
                if self._changes[task] <= 0:
                    del self._changes[task]

    return run


WEB_APP = "https://app.foundries.io"


@dataclass
class Services:
    """Everything the app works with; the demo swaps in its own."""

    profiles: FactoryStore
    tunnels: TunnelStore
    settings: SettingsStore
    secrets: SecretStore
    controller: TunnelController
    pending: PendingStore | None = None  # None: the user's own, opened on first use
    demo: Any = None  # fiotray.demo.factory.DemoSession
    # The demo started because nothing was set up (not --demo): what the user signs in
    # to or imports then is theirs, saved for real, and the app leaves the demo.
    auto_demo: bool = False
    cleanups: list[Callable[[], None]] = field(default_factory=list)


def real_services() -> Services:
    # Neither keyring nor the devices code is loaded here: the tray starts without them.
    from fiotray.core.secrets import SecretStore

    tunnels = TunnelStore()
    secrets = SecretStore()
    return Services(
        profiles=FactoryStore(),
        tunnels=tunnels,
        settings=SettingsStore(),
        secrets=secrets,
        controller=TunnelController(tunnels, secrets),
    )


def demo_services(devices: int | None = None) -> Services:
    """The embedded fake factory, a simulated tunnel, nothing saved outside a temp dir.

    The fake API starts when the app first talks to it (Backend.client), so a demo tray
    idling in the background costs about what the real one does.
    """
    from fiotray.core import wgconf
    from fiotray.core.devices import PendingStore
    from fiotray.core.secrets import tunnel_key
    from fiotray.core.wgfiles import WireguardServer
    from fiotray.demo import factory as demo
    from fiotray.demo.tunnel import SimulatedHelper

    scratch = tempfile.TemporaryDirectory(prefix="fiotray-demo-")
    root = Path(scratch.name)
    session = demo.DemoSession(devices or demo.DEMO_DEVICES)
    profiles = FactoryStore(root / "config")
    profiles.save(session.profile, make_default=True)
    tunnels = TunnelStore(root / "config")
    sys_net = root / "sys-class-net"
    sys_net.mkdir()
    # What the demo factory's wireguard-server file says (fiotray.demo.factory).
    wg_server = WireguardServer(
        endpoint=demo.DEMO_SERVER_ENDPOINT,
        server_address=demo.DEMO_SERVER_ADDRESS,
        pubkey=demo.DEMO_SERVER_PUBLIC_KEY,
    )
    tunnels.save(
        Tunnel(
            name=session.profile.factory,
            kind="foundries",
            interface="fiodemo",
            template=wgconf.foundries_template(wg_server, "10.42.42.250"),
            public_key=demo.DEMO_LAPTOP_PUBLIC_KEY,
            endpoint=wg_server.endpoint,
            factory=session.profile.factory,
            address="10.42.42.250",
            server_address=wg_server.server_address,
        )
    )
    session.secrets.set(tunnel_key(session.profile.factory), demo.DEMO_LAPTOP_PRIVATE_KEY)
    controller = TunnelController(
        tunnels, session.secrets, SimulatedHelper(sys_net), sys_net=sys_net
    )
    return Services(
        profiles=profiles,
        tunnels=tunnels,
        settings=SettingsStore(root / "config"),
        secrets=session.secrets,
        controller=controller,
        pending=PendingStore(root / "state" / "pending-vpn.json"),
        demo=session,
        cleanups=[session.close, scratch.cleanup],
    )


def _client_tls() -> Any:
    """The TLS context of a new FactoryClient, and at first the modules it needs.

    On a worker thread: the first time, importing httpx and the core's API modules and
    reading the CA bundle take ~100 ms, which would hold the event loop.
    """
    from fiotray.core import api, session  # noqa: F401 - imported here, off the loop

    return api.ssl_context()


_settled = False


def _settle_after_imports() -> None:
    """Once the device list's modules (window, httpx, core) are in: tidy up after them.

    Empty linecache, as `fiotray.gui.app.forget_module_sources` does at start-up:
    PySide6 leaves there the source of every module imported after it, some 80,000
    lines by now, which every full garbage collection would walk. Then collect once, now,
    while no list is in memory: the imports' objects go to the oldest generation as the
    baseline it is measured against. Otherwise their number sets off a full collection
    in the middle of the first load, holding the event loop for ~25 ms.
    """
    global _settled
    if not _settled:
        import gc
        import linecache

        _settled = True
        linecache.clearcache()
        gc.collect()


class Backend(QObject):
    tunnelChanged = Signal(object)  # TunnelStatus, whenever a tunnel's observed state changes
    profilesChanged = Signal()  # factories or tunnels added or removed
    settingsChanged = Signal()
    devicesProgress = Signal(str, int, int)  # factory, devices loaded so far, total (0: unknown)
    devicesLoaded = Signal(str, object)  # factory, DeviceRows
    devicesFailed = Signal(str, str)  # factory, one sentence
    vpnChanged = Signal(str, object)  # factory, VpnState
    notice = Signal(str, str, str)  # title, message, level: "info" | "warning" | "error"
    # The user set up their own factory or tunnel from an automatic demo: leave the demo.
    leaveDemo = Signal()

    def __init__(self, services: Services, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.services = services
        self._tasks: set[asyncio.Task[Any]] = set()
        self._clients: dict[str, Any] = {}
        self.tunnel_states: dict[str, TunnelStatus] = {}
        self._watches: dict[tuple[str, str], asyncio.Task[Any]] = {}
        self._changes: Counter[asyncio.Task[Any]] = Counter()  # tasks in a change, nesting
        self.quit_grace = QUIT_GRACE
        # tunnel -> (the state the user asked for, when): from the tray, the window or
        # anywhere else, so a change they asked for is never announced as a surprise.
        self.asked: dict[str, tuple[State, float]] = {}
        self.user_services_factory: Callable[[], Services] = real_services
        self._user_services: Services | None = None
        # Seconds between config reads of a device whose VPN change is pending: quick at
        # first (a device online applies within a minute), then every minute until the limit.
        self.pending_poll: tuple[float, ...] = (5.0, 5.0, 10.0, 10.0, 20.0, 30.0, 60.0)
        self.pending_watch_limit = 15 * 60.0
        self._settings = services.settings.load()
        services.controller.subscribe(self._on_tunnel)

    # -- plumbing ----------------------------------------------------------------

    @property
    def demo(self) -> bool:
        return self.services.demo is not None

    def pending(self) -> PendingStore:
        """VPN changes the devices have not applied yet (the store is opened on first use)."""
        if self.services.pending is None:
            from fiotray.core.devices import PendingStore

            self.services.pending = PendingStore()
        return self.services.pending

    def spawn(self, coro: Coroutine[Any, Any, T], *, what: str = "") -> asyncio.Task[T]:
        """Run a coroutine on the loop; a FiotrayError becomes a notice, never a traceback."""
        task = asyncio.ensure_future(self._guard(coro, what))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task  # type: ignore[return-value]

    async def _guard(self, coro: Awaitable[T], what: str) -> T | None:
        try:
            return await coro
        except FiotrayError as exc:
            log.info("%s failed: %s", what or "action", exc)
            title = "Sign-in needed" if isinstance(exc, AuthError) else (what or "fiotray")
            self.notice.emit(title, str(exc), "error")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unexpected error in %s", what or "a background task")
            self.notice.emit(
                what or "fiotray", "Something unexpected failed; see the log.", "error"
            )
        return None

    async def shutdown(self) -> None:
        """Let changes in progress finish, cancel the rest, close clients, stop the demo."""
        me = asyncio.current_task()
        changes = [t for t in self._changes if not t.done() and t is not me]
        if changes:
            log.info("quitting: waiting for %d change(s) in progress", len(changes))
            _, late = await asyncio.wait(changes, timeout=self.quit_grace)
            if late:
                log.warning(
                    "quitting: %d change(s) still running after %.0f s: cancelled",
                    len(late),
                    self.quit_grace,
                )
        tasks = [t for t in self._tasks if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
        for cleanup in self.services.cleanups:
            cleanup()
        self.services.cleanups.clear()

    # -- settings and profiles (cheap, synchronous) -------------------------------

    @property
    def settings(self) -> Settings:
        return self._settings

    def save_settings(self, settings: Settings) -> None:
        from fiotray.core import autostart

        # --demo leaves start at login alone; the automatic demo is the app itself.
        real = not self.demo or self.services.auto_demo
        if settings.autostart != autostart.is_enabled() and real:
            if settings.autostart:
                autostart.enable()
            else:
                autostart.disable()
        # Only what the dialog changed: another process may have changed the rest since
        # this copy was loaded, and a whole-copy save would undo it.
        changes = self._settings.changes(settings)
        self._settings = self.services.settings.update(lambda saved: replace(saved, **changes))
        self.settingsChanged.emit()

    def factories(self) -> list[Factory]:
        return self.services.profiles.list()

    def tunnels(self) -> list[Tunnel]:
        return self.services.tunnels.list()

    def default_tunnel(self) -> Tunnel | None:
        """The tunnel connected when none is named: the CLI's default too (tunnels.json)."""
        tunnels = {t.name: t for t in self.tunnels()}
        name = self.services.tunnels.default_name()
        if name and name in tunnels:
            return tunnels[name]
        return next(iter(tunnels.values()), None)

    def default_tunnel_name(self) -> str:
        """The default tunnel as saved ("" when none is); it may name a tunnel that is gone."""
        try:
            return self.services.tunnels.default_name() or ""
        except FiotrayError:  # a broken tunnels.json: whoever lists the tunnels says so
            return ""

    def set_default_tunnel(self, name: str) -> None:
        """Make `name` the default tunnel ("": none chosen, the first one is used)."""
        if name == self.default_tunnel_name():
            return  # also keeps a default whose tunnel is gone when the user left it alone
        self.services.tunnels.set_default(name or None)
        self.settingsChanged.emit()

    # -- tunnels ---------------------------------------------------------------------

    def _on_tunnel(self, status: TunnelStatus) -> None:
        self.tunnel_states[status.profile] = status
        self.tunnelChanged.emit(status)

    async def refresh_tunnels(self) -> list[TunnelStatus]:
        return await self.services.controller.status()

    @finishes_before_quit
    async def connect(self, name: str) -> TunnelStatus:
        self.asked[name] = (State.CONNECTED, time.monotonic())
        return await self.services.controller.connect(name, wait=10.0)

    @finishes_before_quit
    async def disconnect(self, name: str) -> TunnelStatus:
        self.asked[name] = (State.DISCONNECTED, time.monotonic())
        return await self.services.controller.disconnect(name)

    async def toggle(self, name: str) -> TunnelStatus:
        current = self.tunnel_states.get(name)
        if current is not None and current.state is not State.DISCONNECTED:
            return await self.disconnect(name)
        return await self.connect(name)

    # -- factories and devices ---------------------------------------------------------

    async def client(self, factory: str) -> Any:
        """A signed-in FactoryClient for the factory, reused while the app runs."""
        if factory not in self._clients:
            await self._demo_up()
            verify = await asyncio.to_thread(_client_tls)
            from fiotray.core.session import open_factory

            profile = self.services.profiles.get(factory)
            client = await open_factory(profile, self.services.secrets, verify=verify)
            if factory in self._clients:  # another caller was quicker
                await client.aclose()
            else:
                self._clients[factory] = client
        return self._clients[factory]

    async def _demo_up(self) -> None:
        """The demo's fake API serving, before anything talks to it (it starts on first use)."""
        demo = self.services.demo
        if demo is not None and not demo.started:
            # Off the loop: the fake API's modules and its factory of devices.
            await asyncio.to_thread(lambda: demo.server)

    async def _drop_client(self, factory: str) -> None:
        client = self._clients.pop(factory, None)
        if client is not None:
            await client.aclose()

    async def load_devices(self, factory: str, previous: DeviceRows | None = None) -> DeviceRows:
        """Every device with its VPN columns; progress per page; failures keep nothing half.

        `previous`: the factory's list shown now, whose unchanged rows are reused.
        """
        from fiotray.core import devices

        loaded = 0

        def page(rows: list[Any], total: int | None) -> None:
            nonlocal loaded
            loaded += len(rows)
            self.devicesProgress.emit(factory, loaded, total or 0)

        try:
            api = await self.client(factory)
            if not _settled:
                await asyncio.sleep(0)  # a turn for the loop between that and this
                _settle_after_imports()
            rows = await devices.list_rows(
                api, pending=self.pending(), on_page=page, previous=previous
            )
        except AuthError as exc:
            await self._drop_client(factory)
            self.devicesFailed.emit(factory, str(exc))
            raise
        except FiotrayError as exc:
            self.devicesFailed.emit(factory, str(exc))
            raise
        self.devicesLoaded.emit(factory, rows)
        return rows

    @finishes_before_quit
    async def set_vpn(self, factory: str, device: str, enable: bool) -> VpnState:
        from fiotray.core import devices

        api = await self.client(factory)
        state = await devices.set_vpn(api, device, enable, pending=self.pending())
        self.vpnChanged.emit(factory, state)
        if state.pending:
            self.watch_pending(factory, device)
        return state

    def watch_pending(self, factory: str, device: str) -> asyncio.Task[Any]:
        """Read the device's config now and then until it applied the change, then say so.

        Only this device's config, not the list: the list itself is not re-read while
        its window is hidden, but a change the user just made should not look stuck.
        """
        key = (factory, device)
        old = self._watches.get(key)
        if old is not None and not old.done():
            old.cancel()
        task = self.spawn(self._watch_pending(factory, device), what=f"Checking {device}")
        self._watches[key] = task
        task.add_done_callback(lambda t: self._forget_watch(key, t))
        return task

    def _forget_watch(self, key: tuple[str, str], task: asyncio.Task[Any]) -> None:
        if self._watches.get(key) is task:
            del self._watches[key]

    async def _watch_pending(self, factory: str, device: str) -> None:
        from fiotray.core import devices

        deadline = time.monotonic() + self.pending_watch_limit
        step = 0
        while True:
            delay = self.pending_poll[min(step, len(self.pending_poll) - 1)]
            step += 1
            if time.monotonic() + delay > deadline:
                log.info(
                    "%s/%s: still pending after %.0f s; the list shows it once applied",
                    factory,
                    device,
                    self.pending_watch_limit,
                )
                return
            await asyncio.sleep(delay)
            try:
                api = await self.client(factory)
                state = await devices.device_vpn(api, device)
            except (AuthError, NotFoundError) as exc:
                # Signed out (the list says so) or the device is gone: nothing to wait for.
                log.info("%s/%s: stopped checking: %s", factory, device, exc)
                return
            except FiotrayError as exc:
                # Nobody asked for this read: a failure is logged and the next one tried.
                log.info("%s/%s: pending check failed: %s", factory, device, exc)
                continue
            if not state.pending:
                self.pending().clear(factory, [device])
                self.vpnChanged.emit(factory, state)
                return

    async def ssh_command(self, factory: str, device: str, route: str | None = None) -> list[str]:
        from fiotray.core import session, ssh

        api = await self.client(factory)
        profile = self.services.tunnels.for_factory(factory)
        (target,) = await session.ssh_targets(api, profile, device)
        defaults = {"user": self._settings.ssh_user, "route": self._settings.ssh_route}
        settings = session.ssh_settings(profile, route, defaults)
        return ssh.ssh_argv(target, settings)

    async def open_ssh(self, factory: str, device: str, route: str | None = None) -> int:
        from fiotray.core import terminal

        argv = await self.ssh_command(factory, device, route)
        # Several sessions open at once: the window title says which device each one is.
        title = f"{device} — {factory} (fiotray SSH)"
        pid = await terminal.launch_in_terminal(
            argv, setting=self._settings.terminal or None, title=title
        )
        self._settings = self.services.settings.update(lambda s: s.remember(factory, device))
        return pid

    def web_url(self, factory: str, device: str) -> str:
        from urllib.parse import quote

        return f"{WEB_APP}/factories/{quote(factory, safe='')}/devices/{quote(device, safe='')}/"

    # -- sign-in and profiles -------------------------------------------------------

    @finishes_before_quit
    async def sign_in_token(self, factory: str, token: str, api_url: str | None = None) -> Factory:
        from fiotray.core import signin

        return await self._sign_in(
            lambda profiles, secrets: signin.sign_in_api_token(
                profiles, secrets, factory=factory, token=token, api_url=api_url
            )
        )

    @finishes_before_quit
    async def sign_in_client(
        self,
        client_id: str,
        client_secret: str,
        factory: str | None = None,
        oauth_url: str | None = None,
        api_url: str | None = None,
    ) -> Factory:
        from fiotray.core import signin

        return await self._sign_in(
            lambda profiles, secrets: signin.sign_in_client_credentials(
                profiles,
                secrets,
                client_id=client_id,
                client_secret=client_secret,
                factory=factory,
                oauth_url=oauth_url,
                api_url=api_url,
            )
        )

    @finishes_before_quit
    async def sign_in_fioctl(self, path: Path | None = None) -> Factory:
        from fiotray.core import signin

        return await self._sign_in(
            lambda profiles, secrets: signin.sign_in_from_fioctl(profiles, secrets, path=path)
        )

    async def _sign_in(
        self, how: Callable[[FactoryStore, SecretStore], Awaitable[Factory]]
    ) -> Factory:
        """Any sign-in: into the user's own stores, then the app follows the new profile."""
        if not self.services.auto_demo:
            await self._demo_up()  # --demo: signing in to the demo's own API
        user = self.user_services()
        return await self._signed_in(await how(user.profiles, user.secrets))

    def user_services(self) -> Services:
        """Where a sign-in or an imported tunnel is saved: the user's own stores, even
        from an automatic demo (then they become the app's services when it leaves it)."""
        if not self.services.auto_demo:
            return self.services
        if self._user_services is None:
            self._user_services = self.user_services_factory()
        return self._user_services

    async def _signed_in(self, profile: Factory) -> Factory:
        if self.services.auto_demo:
            log.info("signed in to %s from the demo: leaving the demo", profile.factory)
            self.leaveDemo.emit()
            return profile
        # A client made with the old credentials must not be reused.
        await self._drop_client(profile.factory)
        self.profilesChanged.emit()
        return profile

    @finishes_before_quit
    async def sign_out(self, factory: str) -> None:
        from fiotray.core import signin

        await self._drop_client(factory)
        await signin.sign_out(self.services.profiles, self.services.secrets, factory)
        self.profilesChanged.emit()

    @finishes_before_quit
    async def add_foundries_tunnel(
        self, factory: str, address: str, name: str | None = None
    ) -> Tunnel:
        from fiotray.core import devices, tunnels

        api = await self.client(factory)
        server = await devices.factory_server(api)
        used = {ip.ip for ip in await api.wireguard_ips()}
        profile = await tunnels.create_foundries_profile(
            self.services.tunnels,
            self.services.secrets,
            name=name or factory,
            factory=factory,
            server=server,
            address=address,
            used=used,
        )
        self.profilesChanged.emit()
        return profile

    @finishes_before_quit
    async def import_tunnel(self, path: Path, name: str | None = None) -> Tunnel:
        from fiotray.core import tunnels

        text = await asyncio.to_thread(tunnels.read_conf_file, path)
        user = self.user_services()  # from an automatic demo too: the user's own tunnel
        profile = await tunnels.import_plain_profile(
            user.tunnels,
            user.secrets,
            name=name or tunnels.name_from_path(path),
            text=text,
        )
        if self.services.auto_demo:
            self.leaveDemo.emit()
        else:
            self.profilesChanged.emit()
        return profile

    def admin_line(self, profile: Tunnel) -> str:
        from fiotray.core import tunnels

        return tunnels.admin_line(profile)


__all__ = ["Backend", "Services", "demo_services", "real_services"]
