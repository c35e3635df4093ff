"""The app's life: one instance per user, a tray or a window, a watch on the tunnels, a clean quit.

`run_gui` starts Qt with asyncio on its loop (qasync). Its main coroutine
asks an already running fiotray to come forward and exits if there is one;
otherwise it listens on a per-user local socket, waits for the tray (a panel
can start after us at login), keeps the tunnels' state observed, and on quit
lets the backend finish its work before the loop stops.

Start-up choice: a launch from the menu or a terminal shows the devices window
as well as the tray icon (the user asked for fiotray, so something appears
even where the tray is tucked away); ``--hidden``, which the autostart entry
passes, starts in the tray only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from fiotray.core import errors
from fiotray.core.errors import FiotrayError
from fiotray.core.files import runtime_dir
from fiotray.core.logs import LOG_BYTES, log_dir
from fiotray.core.tunnelstate import State
from fiotray.gui import icons
from fiotray.gui.menus import UP_STATES
from fiotray.gui.screen import fit_to_screen
from fiotray.gui.tray import TrayIcon

if TYPE_CHECKING:
    # Imported where used: the tray icon shows before asyncio (with ssl), the loop, the
    # backend and the log file's handler are loaded, which is what a start costs most.
    import asyncio
    from logging.handlers import RotatingFileHandler

    from PySide6.QtWidgets import QMessageBox, QWidget

    from fiotray.core.services import Services
    from fiotray.core.settings import Settings, SettingsStore
    from fiotray.gui.backend import Backend

log = logging.getLogger(__name__)

APP_NAME = "fiotray"
TRAY_WAIT = 15.0  # seconds to wait for a panel at login before giving up on the tray
TRAY_REPOLL = 5.0  # how often, after that, to look for an XEmbed tray (SNI watchers announce)
SNI_WATCHER = "org.kde.StatusNotifierWatcher"  # the panels' D-Bus tray (KDE, GNOME, waybar)
NO_TRAY_MESSAGE = (
    "No system tray was found, so fiotray opened its window instead; on GNOME, install and "
    'enable the "AppIndicator and KStatusNotifierItem Support" extension to get the tray icon.'
)
MAX_REQUEST = 1024


# -- logging ------------------------------------------------------------------------------


def setup_logging(directory: Path) -> RotatingFileHandler:
    """fiotray.log in `directory`, rotated (fiotray.core.logs)."""
    from fiotray.core.logs import setup_logging as open_log_file

    return open_log_file(directory, max_bytes=LOG_BYTES)


# -- one instance per user ------------------------------------------------------------------


def instance_name() -> str:
    """One running fiotray per user, however it was started: the demo (asked for, or
    shown because nothing is set up) and the user's own factories share one name, so a
    second launch finds whichever runs instead of adding a second tray icon."""
    return f"{APP_NAME}-{os.getuid()}"


def socket_path() -> Path:
    return runtime_dir() / f"{instance_name()}.sock"


class InstanceLock:
    """An flock held for the app's life: the one running instance may clear a stale socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[bytes] | None = None

    def acquire(self) -> bool:
        import fcntl

        fh = self.path.open("ab")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return False
        self._fh = fh
        return True

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class InstanceServer:
    """Answers a later launch: one line in (`show`, `status`, `quit`), one JSON line out.

    A Unix socket served by asyncio on the Qt loop: what QLocalServer does on Unix, without
    loading QtNetwork (~3 MiB of resident memory for one socket).
    """

    def __init__(self, path: Path, handler: Callable[[str], dict[str, Any]]) -> None:
        self.path = path
        self.handler = handler
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        import asyncio

        # Only called with the instance lock held: a socket left here is a crashed run's.
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_REQUEST
            )
            os.chmod(self.path, 0o600)
        except OSError as exc:
            raise FiotrayError(f"Cannot listen on {self.path}: {exc.strerror or exc}.") from None

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import asyncio
        import json

        try:
            line = await asyncio.wait_for(reader.readline(), 5.0)
            command = line.decode(errors="replace").strip()
            try:
                reply = self.handler(command)
            except Exception:
                log.exception("instance request %r failed", command[:40])
                reply = {"ok": False, "error": "internal error"}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ValueError, ConnectionError) as exc:
            log.info("instance request dropped: %s", type(exc).__name__)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def ask_running(path: Path, command: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """Send `command` to the running instance at `path`; its reply, or None if none answers.

    Asynchronous on purpose: the server may live on this very loop (tests), where a
    blocking wait would never see it answer.
    """
    import asyncio
    import json

    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), timeout)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(command.encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    except (OSError, TimeoutError, ValueError):
        return None
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    try:
        answer = json.loads(line)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


# -- watching the tunnels ---------------------------------------------------------------------


def _suspend_clock() -> Callable[[], float]:
    """Seconds the machine slept so far: CLOCK_BOOTTIME counts suspend, MONOTONIC does not."""
    if hasattr(time, "CLOCK_BOOTTIME"):
        return lambda: time.clock_gettime(time.CLOCK_BOOTTIME) - time.monotonic()
    return lambda: time.time() - time.monotonic()  # wall clock: also jumps on a clock change


class TunnelWatcher:
    """Keeps the observed tunnel state true: on start, on a timer, and after a resume.

    Between full checks (the helper's status, a pkexec run) only the interface's
    presence in /sys is looked at, which costs one stat.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        up_interval: float = 5.0,
        idle_interval: float = 30.0,
        full_interval: float = 60.0,
        resume_jump: float = 20.0,
        on_tick: Callable[[], None] | None = None,
        slept: Callable[[], float] | None = None,
    ) -> None:
        import asyncio

        self.backend = backend
        self.up_interval = up_interval
        self.idle_interval = idle_interval
        self.full_interval = full_interval
        self.resume_jump = resume_jump
        self.on_tick = on_tick
        self.slept = slept or _suspend_clock()
        self.full_checks = 0
        self._wake = asyncio.Event()
        self._last_full = 0.0
        self._failing = False

    def wake(self) -> None:
        self._wake.set()

    def _states(self) -> dict[str, State]:
        return {n: s.state for n, s in self.backend.tunnel_states.items()}

    def any_up(self) -> bool:
        return any(s in UP_STATES for s in self._states().values())

    def _in_flight(self) -> bool:
        # A connect publishes CONNECTING before its interface exists; a full check then
        # would report it down mid-connect.
        controller = self.backend.services.controller
        return any(
            self._states().get(t.name) is State.CONNECTING
            and not controller.interface_exists(t.interface)
            for t in self.backend.tunnels()
        )

    def _mismatch(self) -> bool:
        controller = self.backend.services.controller
        states = self._states()
        for t in self.backend.tunnels():
            up = states.get(t.name) in UP_STATES
            if up != controller.interface_exists(t.interface):
                return True
        return False

    async def check(self, *, full: bool = False) -> None:
        try:
            if self._in_flight():
                return
            if (
                full
                or self._mismatch()
                or (self.any_up() and time.monotonic() - self._last_full >= self.full_interval)
                or State.CONNECTING in self._states().values()
            ):
                self._last_full = time.monotonic()
                self.full_checks += 1
                await self.backend.refresh_tunnels()
            self._failing = False
        except FiotrayError as exc:
            # Once per failure streak: a missing helper must not flood the log every 5 s.
            if not self._failing:
                log.warning("tunnel status check failed: %s", exc)
            self._failing = True
        finally:
            if self.on_tick is not None:
                self.on_tick()

    async def run(self) -> None:
        import asyncio

        await self.check(full=True)
        while True:
            slept_before = self.slept()
            interval = self.up_interval if self.any_up() else self.idle_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()
            resumed = self.slept() - slept_before > self.resume_jump
            if resumed:
                log.info("resumed from suspend: checking every tunnel")
            await self.check(full=resumed)


# -- the app ------------------------------------------------------------------------------------


def forget_module_sources() -> None:
    """Empty linecache, where PySide6 leaves the source of every module imported after it.

    PySide6 reads each such module's source to see whether it uses Qt (PYSIDE-2029, for
    `from __feature__ import ...`) and linecache keeps the text: some 3 MiB of lines for
    fiotray's start-up imports, of no use to a tray app idling in the background. A
    traceback reads what it shows again. Called once the icon shows and once the rest is
    loaded, so the later imports reuse the memory instead of adding to it.
    """
    import linecache

    linecache.clearcache()


def carry_settings(demo: Settings, store: SettingsStore, *, autostart: bool = True) -> None:
    """What the user chose in the demo becomes theirs, unless they had settings.

    Preferences only: the demo's devices (recent, favourites) and tunnel stay behind.
    `autostart`: False from `--demo`, which never applied its start-at-login box.
    """
    import dataclasses

    from fiotray.core.settings import Settings

    if store.path.exists():
        return
    mine = dataclasses.replace(
        Settings(),
        terminal=demo.terminal,
        ssh_user=demo.ssh_user,
        ssh_route=demo.ssh_route,
        notifications=demo.notifications,
        **({"autostart": demo.autostart} if autostart else {}),
    )
    if mine != Settings():
        store.save(mine)


def choose_services(demo: bool) -> Services:
    """The user's factories and tunnels; the demo when asked for or when nothing is set up."""
    from fiotray.core.services import demo_services, user_services

    if not demo:
        services = user_services()
        try:
            configured = bool(services.factories.list() or services.tunnels.list())
        except FiotrayError as exc:
            # A damaged file: run for real so the menu can say what is wrong.
            log.warning("%s", exc)
            configured = True
        if configured:
            return services
        log.info("no factory or tunnel configured: starting the demo")
        services = demo_services()
        services.auto_demo = True
        return services
    return demo_services()


class App(QObject):
    """Everything one running fiotray owns; `run()` returns when the user quits."""

    windowShown = Signal()

    def __init__(
        self,
        backend: Backend,
        *,
        hidden: bool,
        tray_wait: float = TRAY_WAIT,
        tray_poll: float = 0.25,
        tray: TrayIcon | None = None,
    ) -> None:
        import asyncio

        super().__init__()
        self.backend = backend
        self.hidden = hidden
        self.tray_wait = tray_wait
        self.tray_poll = tray_poll
        self.quit_event = asyncio.Event()
        # `tray`: an icon run_gui already showed while the rest was loading.
        self.tray = tray or TrayIcon()
        self.tray.setParent(self)
        self.tray.attach(backend)
        self.tray.devicesRequested.connect(self.show_devices)
        self.tray.quitRequested.connect(self.quit)
        self.window: QWidget | None = None
        self.watcher = TunnelWatcher(backend, on_tick=self._refresh_tray)
        self.tray_available: bool | None = None
        self.tray_appeared = asyncio.Event()  # a panel's tray watcher came onto the bus
        self._sni_watch: QObject | None = None
        self._notice_box: QMessageBox | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._watcher_task: asyncio.Task[Any] | None = None
        self.autoconnect_task: asyncio.Task[None] | None = None
        backend.leaveDemo.connect(self._on_leave_demo)

    # -- leaving the demo -----------------------------------------------------------------

    def _on_leave_demo(self) -> None:
        import asyncio

        self._tasks.append(asyncio.ensure_future(self.leave_demo()))

    async def leave_demo(self) -> None:
        """The user signed in (or imported a tunnel) from the demo: run for real.

        From the automatic demo and from `--demo` alike: everything the demo showed goes
        (its window, dialogs, fake factory, in-memory keyring); the user's own factory
        takes its place in the same tray icon. A simulated tunnel left up stays in the
        demo's runtime dir until a `fiotray --demo disconnect` or logout.
        """
        import asyncio

        from fiotray.gui.backend import Backend

        old = self.backend
        if not old.services.is_demo:
            return
        old_window, self.window = self.window, None
        reopen = old_window is not None and old_window.isVisible()
        self.tray.close_dialogs()
        if self._watcher_task is not None:
            self._watcher_task.cancel()
            await asyncio.gather(self._watcher_task, return_exceptions=True)
        self.tray.detach()
        user = old.user_services()
        carry_settings(old.settings, user.settings, autostart=old.services.auto_demo)
        new = Backend(user)
        self.backend = new
        new.leaveDemo.connect(self._on_leave_demo)
        self.tray.attach(new)
        self.watcher = TunnelWatcher(new, on_tick=self._refresh_tray)
        self._watcher_task = asyncio.ensure_future(self.watcher.run())
        self._tasks.append(self._watcher_task)
        new.spawn(new.supervise_forwards(restore=False), what="Port forwards")
        if reopen:
            self.show_devices(None)
        if old_window is not None:
            # Hidden, not closed: closing the last window of a tray-less app quits it.
            old_window.hide()
            old_window.deleteLater()
        await old.shutdown()
        old.deleteLater()
        log.info("left the demo: running with the user's own factories and tunnels")
        self.tray.refresh()

    def quit(self) -> None:
        self.quit_event.set()

    # -- windows --------------------------------------------------------------------------

    def show_devices(self, factory: str | None = None) -> bool:
        if self.window is None:
            try:
                from fiotray.gui.devices_window import DevicesWindow
            except ImportError as exc:
                log.error("the devices window is not available: %s", exc)
                return False
            # Through self.tray at the time: the icon is replaced when a tray appears late.
            self.window = DevicesWindow(self.backend, menu_actions=lambda: self.tray.menu_actions)
            # Through self.tray at the time: the icon is replaced when a tray appears late.
            self.window.signInRequested.connect(lambda f: self.tray.sign_in_again(f))  # type: ignore[attr-defined]
            fit_to_screen(self.window)
        self.window.show_factory(factory)  # type: ignore[attr-defined]
        self.window.show()
        self.window.raise_()
        self.window.activateWindow()
        self.windowShown.emit()
        return True

    def _on_last_window_closed(self) -> None:
        if not self.tray.isVisible():
            self.quit()  # no tray: the window was the app

    # -- requests from a later launch ---------------------------------------------------------

    def handle_request(self, command: str) -> dict[str, Any]:
        if command == "show":
            # "demo": a launch that asked for the demo can tell the user what it found.
            return {"ok": self.show_devices(None), "demo": self.backend.demo}
        if command == "quit":
            self.quit()
            return {"ok": True}
        if command == "status":
            now = time.time()
            return {
                "ok": True,
                "demo": self.backend.demo,
                "tray": {
                    "available": bool(self.tray_available),
                    "visible": self.tray.isVisible(),
                    "no_tray_notice": self._notice_box is not None,
                },
                "icon_state": str(self.tray.summary()),
                "tooltip": self.tray.toolTip(),
                "window": self.window is not None and self.window.isVisible(),
                "tunnels": [s.to_json(now) for s in self.backend.tunnel_states.values()],
                "devices": self._devices_status(),
                "notifications": [
                    {"title": t, "message": m} for t, m in getattr(self.tray, "notifications", [])
                ],
            }
        return {"ok": False, "error": f"unknown request {command[:40]!r}"}

    def _devices_status(self, limit: int = 50) -> dict[str, Any] | None:
        """What the devices window shows, as a script or a test would read it off the screen.

        The first `limit` rows in view order with their cells as displayed, the status
        line, and where the table's rows are on screen (global pixels) for pointer tools.
        """
        from PySide6.QtCore import QPoint, Qt

        window = self.window
        if window is None:
            return None
        if not hasattr(window, "proxy"):  # a stand-in window (tests)
            return {"visible": window.isVisible()}
        proxy, table = window.proxy, window.table  # type: ignore[attr-defined]
        headers = [
            str(proxy.headerData(c, Qt.Orientation.Horizontal)) for c in range(proxy.columnCount())
        ]
        rows = [
            {h: str(proxy.index(r, c).data() or "") for c, h in enumerate(headers)}
            for r in range(min(limit, proxy.rowCount()))
        ]
        viewport = table.viewport()
        origin = viewport.mapToGlobal(QPoint(0, 0))
        bar = window.message_bar  # type: ignore[attr-defined]
        combo = window.state_filter  # type: ignore[attr-defined]
        combo_at = combo.mapToGlobal(QPoint(0, 0))
        selected = window._selected_rows()  # type: ignore[attr-defined]
        return {
            "visible": window.isVisible(),
            "factory": window.factory,  # type: ignore[attr-defined]
            "shown": proxy.rowCount(),
            "status": window.status.text(),  # type: ignore[attr-defined]
            "message": "" if bar.isHidden() else bar.text.text(),
            "rows": rows,
            "viewport": [origin.x(), origin.y(), viewport.width(), viewport.height()],
            "row_height": table.verticalHeader().defaultSectionSize(),
            "selected": [proxy.row(r).device.name for r in selected[:limit]],
            "state_filter": window.model.state_filter,  # type: ignore[attr-defined]
            "state_filter_rect": [combo_at.x(), combo_at.y(), combo.width(), combo.height()],
        }

    # -- the tray ---------------------------------------------------------------------------

    def _refresh_tray(self) -> None:
        # Through the attribute: the icon can be replaced when a panel appears late.
        self.tray.refresh()

    def _watch_for_sni(self) -> None:
        """Wake the tray wait when a StatusNotifierWatcher takes its name on the session bus.

        A panel that starts after us (KDE, GNOME's AppIndicator extension, waybar) is
        noticed at once instead of at the next poll. No bus, no watch: polling remains.
        """
        if self._sni_watch is not None:
            return
        try:
            from PySide6.QtDBus import QDBusConnection, QDBusServiceWatcher
        except ImportError:
            return
        bus = QDBusConnection.sessionBus()
        if not bus.isConnected():
            return
        watch = QDBusServiceWatcher(
            SNI_WATCHER, bus, QDBusServiceWatcher.WatchModeFlag.WatchForRegistration, self
        )
        watch.serviceRegistered.connect(lambda _name: self.tray_appeared.set())
        self._sni_watch = watch

    async def wait_for_tray(self, timeout: float | None, poll: float | None = None) -> bool:
        """True once Qt sees a system tray; False after `timeout` s (None: wait for good).

        Polled every `poll` s, since an XEmbed tray host announces itself only on X; a
        StatusNotifierWatcher appearing on D-Bus cuts the wait short.
        """
        import asyncio

        self._watch_for_sni()
        poll = self.tray_poll if poll is None else poll
        deadline = None if timeout is None else time.monotonic() + timeout
        while not QSystemTrayIcon.isSystemTrayAvailable():
            left = poll if deadline is None else min(poll, deadline - time.monotonic())
            if left <= 0:
                return False
            self.tray_appeared.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.tray_appeared.wait(), left)
        return True

    def _show_tray(self) -> None:
        if not self.tray.isVisible():
            # Qt picks an icon's kind (a D-Bus StatusNotifierItem when a watcher is on the
            # bus, else XEmbed) when the QSystemTrayIcon is made, and keeps it: an icon made
            # before the panel started would never register. A fresh one goes to this tray.
            self._replace_tray()
        self.tray.show()

    def _replace_tray(self) -> None:
        old = self.tray
        new = old.successor()
        new.setParent(self)
        new.devicesRequested.connect(self.show_devices)
        new.quitRequested.connect(self.quit)
        self.tray = new
        old.hide()
        old.deleteLater()

    def _close_notice(self) -> None:
        box, self._notice_box = self._notice_box, None
        if box is not None:
            box.close()
            box.deleteLater()

    async def _start_tray(self) -> None:
        from PySide6.QtWidgets import QMessageBox

        self.tray_available = self.tray.isVisible() or await self.wait_for_tray(self.tray_wait)
        if self.tray_available:
            self._show_tray()
            log.info("tray icon shown")
            return
        log.warning("no system tray after %.0f s: showing the window instead", self.tray_wait)
        shown = (self.window is not None and self.window.isVisible()) or self.show_devices(None)
        box = QMessageBox(
            QMessageBox.Icon.Information, "fiotray", NO_TRAY_MESSAGE, parent=self.window
        )
        if not shown:
            # Neither tray nor window: this message is all there is, and closing it quits
            # (unless a tray came and closed it: see _close_notice).
            box.finished.connect(lambda _r: self._notice_box is box and self.quit())
        self._notice_box = box
        box.open()
        # A panel may still come (one started later, a GNOME extension enabled now).
        await self.wait_for_tray(None, poll=TRAY_REPOLL)
        self.tray_available = True
        self._show_tray()
        self._close_notice()
        log.info("a system tray appeared: tray icon shown")

    # -- life ---------------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.quit)
            except (NotImplementedError, RuntimeError, ValueError):
                log.debug("no asyncio signal handler for %s", sig)

    async def run(self) -> int:
        import asyncio

        app = QApplication.instance()
        if isinstance(app, QApplication):
            # Quitting is the quit event's job alone: Qt stopping the loop on its own when a
            # window closes would strand the coroutines that still have to finish.
            app.setQuitOnLastWindowClosed(False)
            app.lastWindowClosed.connect(self._on_last_window_closed)
        self._install_signal_handlers()
        if not self.hidden:
            self.show_devices(None)
        self._watcher_task = asyncio.ensure_future(self.watcher.run())
        self.autoconnect_task = asyncio.ensure_future(self.autoconnect())
        self._tasks = [
            asyncio.ensure_future(self._start_tray()),
            self._watcher_task,
            self.autoconnect_task,
        ]
        self._report_orphans()
        # Saved forwards once the tunnels that connect at start are up, then the
        # supervisor; the backend's task, so it ends with the backend.
        self.backend.spawn(self._forwards(self.autoconnect_task), what="Port forwards")
        try:
            await self.quit_event.wait()
        finally:
            await self.close()
        return 0

    async def _forwards(self, after: Any) -> None:
        import asyncio

        await asyncio.gather(after, return_exceptions=True)
        await self.backend.supervise_forwards()

    async def autoconnect(self) -> None:
        """Bring up the tunnels marked "Connect when fiotray starts", each once its server
        can be reached.

        One attempt per tunnel and start, one at a time: a password prompt (where the
        system's policy asks for one) is never repeated, and when the user dismisses it
        no other tunnel asks again.
        """
        from fiotray.ops import tunnels as ops_tunnels

        backend = self.backend
        try:
            wanted = [t for t in backend.tunnels() if t.autoconnect]
        except FiotrayError:
            return  # what is wrong with the file shows in the menu
        if not wanted:
            return
        await backend.refresh_tunnels()  # a tunnel already up is left as it is
        for tunnel in wanted:
            status = backend.tunnel_states.get(tunnel.name)
            if status is not None and status.state is not State.DISCONNECTED:
                continue
            await ops_tunnels.wait_for_network(tunnel, demo=backend.demo)
            log.info("connecting %s: it connects when fiotray starts", tunnel.name)
            try:
                await backend.connect(tunnel.name)
            except FiotrayError as exc:
                if exc.code == errors.HELPER_DISMISSED:
                    log.info("connecting %s at start: the user dismissed the prompt", tunnel.name)
                    return
                log.warning("connecting %s at start failed: %s", tunnel.name, exc)
                self.tray.notify(f"Could not connect {tunnel.name}", str(exc), error=True)

    def _report_orphans(self) -> None:
        """Say once, at start, when the keyring holds secrets whose factory or tunnel is
        gone (a crash between two saves, a hand-edited file); the CLI removes them."""
        from fiotray.core.secrets import owner_of
        from fiotray.ops import accounts

        try:
            orphans = accounts.orphan_secrets(self.backend.services)
        except FiotrayError:
            return  # what is wrong with the files shows where they are used
        if not orphans:
            return
        owners = sorted({name for _kind, name in filter(None, map(owner_of, orphans))})
        log.warning("secrets without a factory or tunnel: %s", ", ".join(orphans))
        self.tray.notify(
            "Secrets left in the keyring",
            f"{len(orphans)} secret(s) belong to no factory or tunnel any more "
            f"({', '.join(owners)}): remove them with `fiotray logout --factory NAME` or "
            "`fiotray tunnels remove NAME`.",
        )

    async def close(self) -> None:
        import asyncio

        log.info("quitting")
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.lastWindowClosed.disconnect(self._on_last_window_closed)
        self.tray.hide()
        if self.window is not None:
            self.window.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.backend.shutdown()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)


async def main(
    *,
    demo: bool,
    hidden: bool,
    tray_wait: float | None = None,
    services: Callable[[bool], Services] = choose_services,
    on_app: Callable[[App], None] | None = None,
    lock: InstanceLock | None = None,
    tray: TrayIcon | None = None,
) -> int:
    """The app as one coroutine: returns its exit code once the user quits.

    `lock`: the instance lock if the caller already holds it; `tray`: an icon it showed.
    """
    from fiotray.gui.backend import Backend

    path = socket_path()
    if lock is None:
        lock = InstanceLock(path.with_suffix(".lock"))
        if not lock.acquire():
            return await _bring_forward(path, demo=demo)
    try:
        backend = Backend(services(demo))
        wait = TRAY_WAIT if tray_wait is None else tray_wait  # read now: tests shorten it
        app = App(backend, hidden=hidden, tray_wait=wait, tray=tray)
        server = InstanceServer(path, app.handle_request)
        try:
            await server.start()
        except FiotrayError as exc:
            log.warning("%s; a second launch will start a second fiotray", exc)
        if on_app is not None:
            on_app(app)
        forget_module_sources()  # start-up's imports are done
        try:
            return await app.run()
        finally:
            await server.close()
    finally:
        lock.release()


ALREADY_RUNNING = "fiotray is already running: its window was brought forward."
ALREADY_RUNNING_REAL = (
    "fiotray is already running with your factory: its window was brought forward. "
    "Quit it (tray menu, Quit) to try the demo."
)


async def _bring_forward(path: Path, *, demo: bool = False) -> int:
    """Another fiotray holds the lock (or is just starting): ask it to come forward.

    Whichever way it runs (the demo or the user's factories), it is the one fiotray: a
    launch asking for the demo while it runs the user's own factory says so, and exits 1
    (the demo it asked for did not start); any other launch exits 0.
    """
    import asyncio

    for _ in range(30):
        reply = await ask_running(path, "show")
        if reply is not None:
            if demo and reply.get("demo") is False:
                print(ALREADY_RUNNING_REAL, file=sys.stderr)
                return 1
            print(ALREADY_RUNNING, file=sys.stderr)
            return 0
        await asyncio.sleep(0.1)
    print("fiotray is already running but does not answer.", file=sys.stderr)
    return 1


def make_application() -> QApplication:
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    # argv[0] "fiotray" makes the X11 WM_CLASS instance "fiotray" under `python -m` too.
    app = QApplication(["fiotray"])
    app.setApplicationName(APP_NAME)
    app.setDesktopFileName("fiotray")
    app.setQuitOnLastWindowClosed(False)  # closing the window leaves the tray running
    app.setWindowIcon(icons.app_icon())
    return app


def run_gui(*, demo: bool, hidden: bool) -> int:
    """Run the tray app until the user quits; the process's exit code."""
    handlers: list[logging.Handler] = []

    def open_log() -> None:
        if not handlers:
            handlers.append(setup_logging(log_dir(demo)))

    try:
        return _run(demo=demo, hidden=hidden, open_log=open_log)
    except FiotrayError as exc:
        open_log()
        log.error("%s", exc)
        print(f"fiotray: {exc}", file=sys.stderr)
        return 1
    finally:
        for handler in handlers:
            logging.getLogger().removeHandler(handler)
            handler.close()


def _run(*, demo: bool, hidden: bool, open_log: Callable[[], None]) -> int:
    lock = InstanceLock(socket_path().with_suffix(".lock"))
    first = lock.acquire()
    app = make_application()
    tray = None
    if first and QSystemTrayIcon.isSystemTrayAvailable():
        # The icon first, then the slower half (log file, event loop, services, first
        # tunnel check): the user sees fiotray as soon as a bare Qt tray app would be seen.
        tray = TrayIcon()
        tray.show()
    open_log()
    # Between batches of imports, so that each reuses the memory of the sources PySide6
    # read for the last one (asyncio's: some 400 kB of text).
    forget_module_sources()
    # asyncio brings ssl (OpenSSL, some 4 MiB resident) whether or not a TLS call ever
    # comes: after the icon, so that it costs no start time.
    import asyncio

    import qasync

    forget_module_sources()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(
            main(demo=demo, hidden=hidden, lock=lock if first else None, tray=tray)
        )
    finally:
        if first:
            lock.release()
        loop.close()
        asyncio.set_event_loop(None)
