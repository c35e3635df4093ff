"""The GUI's one door to fiotray's workflows (`fiotray.ops`).

Widgets never touch HTTP, the keyring or subprocesses: they call a Backend
coroutine through `Backend.spawn` (or await it from an async slot) and listen
to its signals. The Backend adapts `fiotray.ops` to Qt: it turns results into
signals, remembers what the user asked for (so it is not announced as a
surprise), watches pending VPN changes, lets changes finish before a quit, and
handles signing in from the demo. Every coroutine runs on the one
qasync event loop; keyring calls go to a thread inside the core. Heavy modules
(httpx, keyring, cryptography) are imported on first use so the tray appears fast.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from PySide6.QtCore import QObject, Signal

from fiotray.core import errors
from fiotray.core.errors import AuthError, FiotrayError, VpnError
from fiotray.core.factories import Factory
from fiotray.core.services import Services, demo_services, user_services
from fiotray.core.settings import Settings
from fiotray.core.tunnels import State, Tunnel, TunnelStatus

if TYPE_CHECKING:
    from fiotray.core.devices import DeviceRow, DeviceRows, PendingStore, VpnState
    from fiotray.core.forward import Forward, ForwardSpec
    from fiotray.core.transfer import CopyJob, CopyPlan, CopyProgress, CopyResult
    from fiotray.ops.devices import DeviceActions, VpnResult
    from fiotray.ops.reach import Reach
    from fiotray.ops.ssh import SshCommand
    from fiotray.ops.tunnels import AddedTunnel

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


# Up to this many devices changed at once each get their pending change watched.
BULK_WATCH_LIMIT = 20


@dataclass
class _Batch:
    """The watches of one bulk enable: their results, told together once all ended."""

    results: list[Reach] = field(default_factory=list)
    watching: int = 0
    closed: bool = False  # every device of the batch was written (no more watches come)


class Backend(QObject):
    tunnelChanged = Signal(object)  # TunnelStatus, whenever a tunnel's observed state changes
    configChanged = Signal()  # factories or tunnels added or removed
    settingsChanged = Signal()
    devicesProgress = Signal(str, int, int)  # factory, devices loaded so far, total (0: unknown)
    devicesLoaded = Signal(str, object)  # factory, DeviceRows
    devicesFailed = Signal(str, str)  # factory, one sentence
    vpnChanged = Signal(str, object)  # factory, VpnState
    notice = Signal(str, str, str)  # title, message, level: "info" | "warning" | "error"
    # The user set up their own factory or tunnel from the demo: leave the demo.
    leaveDemo = Signal()
    # A factory's sign-in was refused (expired, revoked): the tray and the window offer
    # "Sign in again…" for it until a sign-in to it succeeds.
    signInNeeded = Signal(str)  # factory
    forwardsChanged = Signal()  # `forwards` was read again, or one started or stopped
    # A device's reachability after a VPN change (see `reach`): "checking", "reachable", ...
    reachChanged = Signal(str, str)  # factory, device
    reachResult = Signal(object)  # ops.reach.Reach: a watch ended (the tray tells the user)
    reachBatch = Signal(object)  # list[ops.reach.Reach]: every watch of a bulk enable ended

    def __init__(self, services: Services, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.services = services
        self._tasks: set[asyncio.Task[Any]] = set()
        self.tunnel_states: dict[str, TunnelStatus] = {}
        self._watches: dict[tuple[str, str], asyncio.Task[Any]] = {}
        self._changes: Counter[asyncio.Task[Any]] = Counter()  # tasks in a change, nesting
        self.quit_grace = QUIT_GRACE
        # tunnel -> (the state the user asked for, when): from the tray, the window or
        # anywhere else, so a change they asked for is never announced as a surprise.
        self.asked: dict[str, tuple[State, float]] = {}
        self.needs_sign_in: set[str] = set()
        self.user_services_factory: Callable[[], Services] = user_services
        self._user_services: Services | None = None
        # Seconds between config reads of a device whose VPN change is pending: quick at
        # first (a device online applies within a minute), then every minute until the limit.
        self.pending_poll: tuple[float, ...] = (5.0, 5.0, 10.0, 10.0, 20.0, 30.0, 60.0)
        # Tests shorten the wait; otherwise it is the user's Settings.reach_wait.
        self.pending_watch_limit: float | None = None
        # Seconds between SSH probes of a device that applied an enable, until it answers.
        self.probe_poll: tuple[float, ...] = (1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 30.0)
        # (factory, device) -> (label, detail): what the VPN column adds after "enabled".
        self.reach: dict[tuple[str, str], tuple[str, str]] = {}
        self._settings = services.settings.load()
        # Port forwards as last checked (the tray menu lists them without waiting).
        self.forwards: list[Forward] = []
        self.saved_forwards: list[ForwardSpec] = []
        self.forward_interval = 10.0
        services.controller.subscribe(self._on_tunnel)

    # -- plumbing ----------------------------------------------------------------

    @property
    def demo(self) -> bool:
        return self.services.is_demo

    def pending(self) -> PendingStore:
        """VPN changes the devices have not applied yet (the store is opened on first use)."""
        return self.services.pending()

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
            # The user closed the password prompt: nothing failed, nothing to alarm about.
            level = "info" if exc.code == errors.HELPER_DISMISSED else "error"
            self.notice.emit(title, str(exc), level)
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
        await self.services.aclose()

    # -- settings, factories and tunnels (cheap, synchronous) ----------------------

    @property
    def settings(self) -> Settings:
        return self._settings

    def save_settings(self, settings: Settings) -> None:
        """The settings as the user left them in a dialog opened on `self.settings`: only
        what they changed is written, over what is saved now (another fiotray, or the
        command line, may have changed the rest meanwhile)."""

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
        return self.services.factories.list()

    def default_factory(self) -> str | None:
        return self.services.factories.default_name()

    def tunnels(self) -> list[Tunnel]:
        return self.services.tunnels.list()

    def tunnel_for(self, factory: str) -> Tunnel | None:
        return self.services.tunnels.for_factory(factory)

    def default_tunnel(self) -> Tunnel | None:
        from fiotray.ops import tunnels

        return tunnels.default_tunnel(self.services)

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
        from fiotray.ops import tunnels

        tunnels.set_default(self.services, name or None)
        self.settingsChanged.emit()

    # -- tunnels ---------------------------------------------------------------------

    def set_autoconnect(self, name: str, on: bool) -> None:
        """Whether the app brings `name` up when it starts (written only on a change)."""
        from fiotray.ops import tunnels

        tunnel = next((t for t in self.tunnels() if t.name == name), None)
        if tunnel is not None and tunnel.autoconnect != on:
            tunnels.set_autoconnect(self.services, name, on)
            self.configChanged.emit()

    def _on_tunnel(self, status: TunnelStatus) -> None:
        self.tunnel_states[status.tunnel] = status
        self.tunnelChanged.emit(status)

    async def refresh_tunnels(self) -> list[TunnelStatus]:
        from fiotray.ops import tunnels

        return await tunnels.status(self.services)

    @finishes_before_quit
    async def connect(self, name: str) -> TunnelStatus:
        from fiotray.ops import tunnels

        self.asked[name] = (State.CONNECTED, time.monotonic())
        return await tunnels.connect(self.services, name, wait=10.0)

    @finishes_before_quit
    async def disconnect(self, name: str) -> TunnelStatus:
        from fiotray.ops import tunnels

        self.asked[name] = (State.DISCONNECTED, time.monotonic())
        return await tunnels.disconnect(self.services, name)

    async def toggle(self, name: str) -> TunnelStatus:
        current = self.tunnel_states.get(name)
        if current is not None and current.state is not State.DISCONNECTED:
            return await self.disconnect(name)
        return await self.connect(name)

    # -- factories and devices ---------------------------------------------------------

    async def client(self, factory: str) -> Any:
        """A signed-in FactoryClient for the factory, reused while the app runs."""
        return await self.services.client(factory)

    async def load_devices(self, factory: str, previous: DeviceRows | None = None) -> DeviceRows:
        """Every device with its VPN columns; progress per page; failures keep nothing half.

        `previous`: the factory's list shown now, whose unchanged rows are reused.
        """
        from fiotray.ops import devices

        loaded = 0

        def page(rows: list[Any], total: int | None) -> None:
            nonlocal loaded
            loaded += len(rows)
            self.devicesProgress.emit(factory, loaded, total or 0)

        try:
            await self.services.client(factory)
            if not _settled:
                await asyncio.sleep(0)  # a turn for the loop between that and this
                _settle_after_imports()
            rows = await devices.list_devices(
                self.services, factory, on_page=page, previous=previous
            )
        except AuthError as exc:
            await self.services.forget_client(factory)
            self.needs_sign_in.add(factory)
            self.signInNeeded.emit(factory)
            self.devicesFailed.emit(factory, str(exc))
            raise
        except FiotrayError as exc:
            self.devicesFailed.emit(factory, str(exc))
            raise
        self.devicesLoaded.emit(factory, rows)
        return rows

    def device_actions(self, factory: str, row: DeviceRow, *, no_key: bool) -> DeviceActions:
        """Which of the device's actions apply now, and why not (for its context menu)."""
        from fiotray.ops import devices, ssh

        tunnel = self.tunnel_for(factory)  # read once, for the state and the route
        status = self.tunnel_states.get(tunnel.name) if tunnel else None
        return devices.actions(
            row,
            has_tunnel=tunnel is not None,
            tunnel_state=status.state if status else None,
            route=ssh.settings_for(self.services, tunnel).route,
            no_key=no_key,
        )

    @finishes_before_quit
    async def set_vpn(self, factory: str, device: str, enable: bool) -> VpnState:
        from fiotray.ops import devices

        since = time.monotonic()
        state = await devices.set_vpn(self.services, factory, device, enable)
        self.vpnChanged.emit(factory, state)
        if state.pending:
            self.watch_pending(factory, device, enable=enable, since=since)
        return state

    @finishes_before_quit
    async def set_vpn_many(
        self,
        factory: str,
        devices: list[str],
        enable: bool,
        on_result: Callable[[VpnResult], None] | None = None,
    ) -> list[VpnResult]:
        """Enable or disable VPN on several devices (ops.devices.set_vpn_many): each row
        changes as its device is written, and each pending change is watched."""
        from fiotray.ops import devices as ops

        # A watch reads its device's config every few seconds: for a big batch that is a
        # flood of reads, and the list's own refresh (while its window shows) re-reads the
        # pending devices anyway.
        watch = len(devices) <= BULK_WATCH_LIMIT
        since = time.monotonic()
        batch = _Batch()

        def told(result: VpnResult) -> None:
            if result.state is not None:
                self.vpnChanged.emit(factory, result.state)
                if result.state.pending and watch:
                    self.watch_pending(
                        factory, result.device, enable=enable, since=since, batch=batch
                    )
            if on_result is not None:
                on_result(result)

        try:
            return await ops.set_vpn_many(self.services, factory, devices, enable, on_result=told)
        finally:
            batch.closed = True
            self._batch_step(batch, 0)

    def favourite_names(self, factory: str) -> frozenset[str]:
        return frozenset(d for f, d in self._settings.favourites if f == factory)

    def set_favourite(self, factory: str, devices: list[str], favourite: bool) -> int:
        """Add the devices to the favourites or remove them (in the locked settings file);
        how many changed. The tray's menus and the window follow settingsChanged."""
        from fiotray.ops import devices as ops

        changed = sum(ops.set_favourite(self.services, factory, d, favourite) for d in devices)
        self._settings = self.services.settings.load()
        self.settingsChanged.emit()
        return changed

    def watch_pending(
        self,
        factory: str,
        device: str,
        *,
        enable: bool,
        since: float | None = None,
        batch: _Batch | None = None,
    ) -> asyncio.Task[Any]:
        """Follow the device's VPN change: its config now and then until it applied the
        change (vpnChanged), then, for an enable, SSH probes through the route until it
        answers or the limit passes (reachChanged, and a notification either way).

        Only this device, not the list: the list itself is not re-read while its window
        is hidden, but a change the user just made should not look stuck. The devices of
        one bulk enable (`batch`) are told in one notification once every watch ended.
        """
        key = (factory, device)
        old = self._watches.get(key)
        if old is not None and not old.done():
            old.cancel()
        self.reach.pop(key, None)
        task = self.spawn(
            self._watch_pending(factory, device, enable, since, batch), what=f"Checking {device}"
        )
        self._watches[key] = task
        task.add_done_callback(lambda t: self._forget_watch(key, t))
        if batch is not None:
            batch.watching += 1
            task.add_done_callback(lambda _t: self._batch_step(batch, -1))
        return task

    def _batch_step(self, batch: _Batch, change: int) -> None:
        """A watch of the batch ended (-1), or the batch has every watch it will get (0):
        when both, one notification for all of them (one device's own, for one)."""
        batch.watching += change
        if not batch.closed or batch.watching:
            return
        if len(batch.results) == 1:
            self.reachResult.emit(batch.results[0])
        elif batch.results:
            self.reachBatch.emit(batch.results)

    def _forget_watch(self, key: tuple[str, str], task: asyncio.Task[Any]) -> None:
        if self._watches.get(key) is task:
            del self._watches[key]

    async def _watch_pending(
        self, factory: str, device: str, enable: bool, since: float | None, batch: _Batch | None
    ) -> None:
        from fiotray.ops import reach

        timeout = self.pending_watch_limit or self._settings.reach_wait
        until = time.strftime("%H:%M", time.localtime(time.time() + timeout))

        def applied(_stage: str, state: VpnState) -> None:
            self.vpnChanged.emit(factory, state)
            if enable and state.enabled:
                self._set_reach(
                    factory,
                    device,
                    "checking",
                    f"the device applied it; waiting for an answer over the VPN until {until}",
                )

        try:
            result = await reach.wait_reachable(
                self.services,
                factory,
                device,
                timeout=timeout,
                since=since,
                on_stage=applied,
                until="reachable" if enable else "applied",
                apply_poll=self.pending_poll,
                probe_poll=self.probe_poll,
            )
        except FiotrayError as exc:
            # Signed out (the list says so), the device gone, or the API failing past the
            # reads the wait retries itself: nothing more to show for this device.
            log.info("%s/%s: stopped checking: %s", factory, device, exc)
            self._set_reach(factory, device, None, "")
            return
        log.info("%s/%s: %s", factory, device, result.summary())
        if not enable:
            return
        if batch is None:
            self.reachResult.emit(result)
        else:
            batch.results.append(result)
        if result.reachable:
            self._set_reach(factory, device, "reachable", result.summary())
        elif result.stage == "applied":
            self._set_reach(factory, device, "not reachable", result.summary())
        else:
            self._set_reach(factory, device, None, "")

    def _set_reach(self, factory: str, device: str, label: str | None, detail: str) -> None:
        if label is None:
            self.reach.pop((factory, device), None)
        else:
            self.reach[(factory, device)] = (label, detail)
        self.reachChanged.emit(factory, device)

    async def ssh(self, factory: str, device: str, route: str | None = None) -> SshCommand:
        from fiotray.ops import ssh

        return await ssh.command(self.services, factory, device, route=route)

    async def ssh_command(self, factory: str, device: str, route: str | None = None) -> list[str]:
        return (await self.ssh(factory, device, route)).argv

    async def open_ssh(self, factory: str, device: str, route: str | None = None) -> int:
        from fiotray.ops import ssh

        pid = await ssh.open_terminal(self.services, await self.ssh(factory, device, route))
        self._settings = self.services.settings.load()  # it is among the recent ones now
        return pid

    async def plan_copy_to(
        self, factory: str, device: str, sources: list[str], dest: str, *, recursive: bool
    ) -> CopyPlan:
        from fiotray.ops import transfer

        return await transfer.plan_to(
            self.services, factory, device, sources, dest, recursive=recursive
        )

    async def plan_copy_from(
        self, factory: str, device: str, source: str, dest: str, *, recursive: bool
    ) -> CopyPlan:
        from fiotray.ops import transfer

        return await transfer.plan_from(
            self.services, factory, device, source, dest, recursive=recursive
        )

    def copy_job(self, plan: CopyPlan) -> CopyJob:
        """The copy to run with `run_copy`; its `cancel()` stops scp."""
        from fiotray.core.transfer import CopyJob

        return CopyJob(plan)

    async def run_copy(
        self, job: CopyJob, progress: Callable[[CopyProgress], None] | None = None
    ) -> CopyResult:
        """Run the copy; a failure raises FiotrayError, a cancelled one returns its partial
        result."""
        from fiotray.ops import transfer

        return await transfer.run(job.plan, progress, job)

    async def connect_and_open_ssh(self, tunnel: str, factory: str, device: str) -> int:
        """Bring `tunnel` up, then open SSH to `device` once the server has answered.

        Refused with code `tunnel-down` when the server stays silent: a terminal opened
        then would only show ssh timing out.
        """
        status = await self.connect(tunnel)
        if status.state is not State.CONNECTED:
            detail = f" ({status.detail})" if status.detail else ""
            raise VpnError(
                f"The tunnel {tunnel} is up but the server has not answered{detail}: "
                f"SSH to {device} not opened.",
                code=errors.TUNNEL_DOWN,
            )
        return await self.open_ssh(factory, device)

    async def device_address(self, factory: str, device: str) -> str:
        """The device's VPN address; refused (code `vpn-not-enabled`) when it has none."""
        from fiotray.ops import devices

        vpn = await devices.device_vpn(self.services, factory, device)
        if not vpn.enabled or not vpn.address:
            raise VpnError(
                f"{device} has no VPN address: VPN is off on it.", code=errors.VPN_NOT_ENABLED
            )
        return vpn.address

    def web_url(self, factory: str, device: str) -> str | None:
        from fiotray.ops import devices

        return devices.web_url(self.services, factory, device)

    # -- sign-in and tunnels -------------------------------------------------------

    @finishes_before_quit
    async def sign_in_token(self, factory: str, token: str, api_url: str | None = None) -> Factory:
        from fiotray.ops import accounts

        return await self._sign_in(
            lambda user: accounts.sign_in_token(user, factory=factory, token=token, api_url=api_url)
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
        from fiotray.ops import accounts

        return await self._sign_in(
            lambda user: accounts.sign_in_client(
                user,
                client_id=client_id,
                client_secret=client_secret,
                factory=factory,
                oauth_url=oauth_url,
                api_url=api_url,
            )
        )

    @finishes_before_quit
    async def sign_in_fioctl(self, path: Path | None = None) -> Factory:
        from fiotray.ops import accounts

        return await self._sign_in(lambda user: accounts.sign_in_fioctl(user, path=path))

    async def _sign_in(self, how: Callable[[Services], Awaitable[Factory]]) -> Factory:
        """Any sign-in: into the user's own stores, then the app follows the new factory.

        From the demo (automatic or `--demo`) too: the demo factory needs no sign-in, so
        a sign-in is to the user's own factory, saved in their stores and keyring, and
        the app leaves the demo for it.
        """
        factory = await how(self.user_services())
        if self.demo:
            log.info("signed in to %s from the demo: leaving the demo", factory.factory)
            self.leaveDemo.emit()
            return factory
        # A client made with the old credentials must not be reused.
        await self.services.forget_client(factory.factory)
        self.needs_sign_in.discard(factory.factory)
        self.configChanged.emit()
        return factory

    def user_services(self) -> Services:
        """Where a sign-in or an imported tunnel is saved: the user's own stores, even
        from the demo (then they become the app's services when it leaves it); never
        the demo's temp stores or in-memory keyring."""
        if not self.demo:
            return self.services
        if self._user_services is None:
            self._user_services = self.user_services_factory()
        return self._user_services

    @finishes_before_quit
    async def sign_out(self, factory: str) -> None:
        from fiotray.ops import accounts

        await accounts.sign_out(self.services, factory)
        self.configChanged.emit()

    @finishes_before_quit
    async def add_foundries_tunnel(
        self,
        factory: str,
        address: str | None,
        name: str | None = None,
        *,
        request_access: bool = False,
    ) -> AddedTunnel:
        from fiotray.ops import tunnels

        added = await tunnels.add_foundries(
            self.services, factory, address=address, name=name, request_access=request_access
        )
        self.configChanged.emit()
        await self._read_new_tunnel(added.tunnel.name)
        return added

    async def _read_new_tunnel(self, name: str) -> None:
        """A new tunnel's state at once: the menu and window say "checking…" until then,
        and the periodic full check may be minutes away."""
        from fiotray.ops import tunnels

        try:
            await tunnels.status(self.services, name)
        except FiotrayError as exc:  # the helper's trouble shows at the next check
            log.info("state of the new tunnel %s: %s", name, exc)

    async def suggest_address(self, factory: str, *, request_access: bool = False) -> str:
        from fiotray.ops import tunnels

        return await tunnels.suggest_address(self.services, factory, request_access=request_access)

    @finishes_before_quit
    async def import_tunnel(self, path: Path, name: str | None = None) -> Tunnel:
        from fiotray.ops import tunnels

        # From the demo too: the user's own tunnel.
        tunnel = await tunnels.import_conf(self.user_services(), path, name=name)
        if self.demo:
            self.leaveDemo.emit()
        else:
            self.configChanged.emit()
            await self._read_new_tunnel(tunnel.name)
        return tunnel

    @finishes_before_quit
    async def remove_tunnel(self, name: str) -> None:
        from fiotray.ops import tunnels

        await tunnels.remove(self.services, name)
        self.tunnel_states.pop(name, None)
        self.configChanged.emit()

    # -- port forwards ------------------------------------------------------------------

    async def start_forward(
        self,
        factory: str,
        device: str,
        remote_port: int,
        *,
        kind: str = "local",
        local_port: int | None = None,
        save: bool = False,
    ) -> Forward:
        from fiotray.ops import forwards

        forward = await forwards.start(
            self.services,
            factory,
            device,
            remote_port,
            kind="remote" if kind == "remote" else "local",
            local_port=local_port,
            save=save,
        )
        await self.refresh_forwards()
        return forward

    async def stop_forward(self, forward_id: str) -> None:
        from fiotray.ops import forwards

        await forwards.stop(self.services, forward_id)
        await self.refresh_forwards()

    async def refresh_forwards(self) -> list[Forward]:
        from fiotray.ops import forwards

        self.forwards = await forwards.list_forwards(self.services)
        try:
            self.saved_forwards = await asyncio.to_thread(forwards.saved, self.services)
        except FiotrayError as exc:
            log.warning("saved forwards: %s", exc)  # a hand-edited file: none offered
            self.saved_forwards = []
        self.forwardsChanged.emit()
        return self.forwards

    def saved_not_running(self) -> list[ForwardSpec]:
        return [s for s in self.saved_forwards if not s.runs_in(self.forwards)]

    async def restore_forwards(self) -> None:
        """Start the saved forwards that are not running; one notice for those that failed."""
        from fiotray.ops import forwards

        results = await forwards.restore(self.services)
        await self.refresh_forwards()
        failed = [r.error for r in results if r.error]
        if failed:
            self.notice.emit("Port forwards", "\n".join(failed), "warning")

    async def supervise_forwards(self, *, restore: bool = True) -> None:
        """For the app's lifetime: start the saved forwards (once), then restart any that
        drop, telling the user once per drop and once when it is back."""
        from fiotray.ops import forwards

        def tell(event: forwards.ForwardEvent) -> None:
            level = "warning" if event.kind == "dropped" else "info"
            self.notice.emit("Port forward", event.message, level)

        if restore:
            try:
                for r in await forwards.restore(self.services):
                    # A tunnel that is down is the user's choice, not a failure to report.
                    if r.error and r.code != errors.TUNNEL_DOWN:
                        self.notice.emit("Port forward", r.error, "warning")
            except FiotrayError as exc:
                log.warning("restoring saved forwards: %s", exc)
        supervisor = forwards.ForwardSupervisor(self.services, tell, interval=self.forward_interval)
        while True:
            try:
                await supervisor.check_once()
                await self.refresh_forwards()
            except FiotrayError as exc:
                log.warning("forward supervisor: %s", exc)
            await asyncio.sleep(self.forward_interval)

    def admin_line(self, tunnel: Tunnel) -> str:
        from fiotray.core import tunnels

        return tunnels.admin_line(tunnel)


# The services' constructors, where the GUI has always found them.
real_services = user_services

__all__ = ["Backend", "Services", "demo_services", "real_services", "user_services"]
