"""The app shell offscreen: one instance per user, no-tray fallback, clean quit, logs, watching.

Offscreen there is no system tray, which is exactly the fallback case. Waits
are bounded polls on the running loop: never a nested Qt loop in a coroutine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import tempfile
import threading
import time
import types
from pathlib import Path
from typing import Any

import pytest
import shiboken6
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QWidget

from fiotray.core import errors, logs
from fiotray.core.tunnels import State
from fiotray.gui import app as app_mod
from fiotray.gui.app import (
    NO_TRAY_MESSAGE,
    App,
    InstanceServer,
    TunnelWatcher,
    ask_running,
    main,
    setup_logging,
    socket_path,
)
from fiotray.gui.backend import Backend, demo_services
from fiotray.gui.tray import TrayIcon
from tests.gui.waits import until

TUNNEL = "demo-factory"


class FakeDevicesWindow(QWidget):
    instances: list[FakeDevicesWindow] = []  # noqa: RUF012 - a record across the test
    signInRequested = Signal(str)  # as the real window's

    def __init__(self, backend: Any, menu_actions: Any = None) -> None:
        super().__init__()
        self.backend = backend
        self.menu_actions = menu_actions
        self.factories: list[str | None] = []
        FakeDevicesWindow.instances.append(self)

    def show_factory(self, factory: str | None) -> None:
        self.factories.append(factory)


@pytest.fixture
def devices_window(monkeypatch):
    """The devices window is someone else's module: a stand-in with its interface."""
    module = types.ModuleType("fiotray.gui.devices_window")
    module.DevicesWindow = FakeDevicesWindow  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fiotray.gui.devices_window", module)
    FakeDevicesWindow.instances = []
    yield FakeDevicesWindow.instances
    for w in FakeDevicesWindow.instances:
        with contextlib.suppress(RuntimeError):  # already deleted by the app
            w.close()
            w.deleteLater()


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    d = tmp_path / "runtime"
    d.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(d))
    return d


# -- one instance --------------------------------------------------------------------------


async def test_socket_protocol_in_process(runtime, qapp):
    seen = []

    def handler(command: str) -> dict[str, Any]:
        seen.append(command)
        return {"ok": True, "echo": command}

    path = socket_path()
    assert path == runtime / f"fiotray-{os.getuid()}.sock"  # the demo's too: one instance
    assert await ask_running(path, "show", timeout=1.0) is None  # nobody there yet
    path.write_text("left by a crashed run")
    server = InstanceServer(path, handler)
    await server.start()
    try:
        assert await ask_running(path, "show") == {"ok": True, "echo": "show"}
        assert await ask_running(path, "status") == {"ok": True, "echo": "status"}
        assert seen == ["show", "status"]
        assert oct(path.stat().st_mode & 0o777) == "0o600"
    finally:
        await server.close()
    assert not path.exists()


async def test_second_launch_shows_the_first_and_returns(runtime, devices_window, qapp, capsys):
    apps: list[App] = []
    first = asyncio.ensure_future(
        main(
            demo=True,
            hidden=True,
            tray_wait=30.0,
            services=lambda demo: demo_services(),
            on_app=apps.append,
        )
    )
    try:
        await until(lambda: apps and socket_path().exists())
        assert devices_window == []  # --hidden: tray only
        t0 = time.monotonic()
        assert await main(demo=True, hidden=False, services=_no_services) == 0
        assert time.monotonic() - t0 < 2.0
        (window,) = devices_window
        assert window.isVisible() and window.factories == [None]
        # One fiotray whatever the mode: a launch without --demo finds the demo and
        # brings it forward too, rather than starting a second icon.
        window.hide()
        assert await main(demo=False, hidden=False, services=_no_services) == 0
        assert window.isVisible() and window.factories == [None, None]
        assert capsys.readouterr().err.count(app_mod.ALREADY_RUNNING) == 2
        status = await ask_running(socket_path(), "status")
        assert status is not None and status["demo"] is True and status["window"] is True
        assert [p.name for p in runtime.glob("*.sock")] == [socket_path().name]
    finally:
        if apps:
            apps[0].quit()
        assert await asyncio.wait_for(first, 10) == 0
    assert not socket_path().exists()


async def test_a_demo_launch_finding_the_users_factory_says_so(
    runtime, own_backend, devices_window, qapp, capsys
):
    """--demo while fiotray runs with the user's own factory: that one comes forward, and
    the launch says why there is no demo."""
    apps: list[App] = []
    first = asyncio.ensure_future(
        main(
            demo=False,
            hidden=True,
            tray_wait=30.0,
            services=lambda demo: own_backend.services,
            on_app=apps.append,
        )
    )
    try:
        await until(lambda: apps and socket_path().exists())
        assert await main(demo=True, hidden=False, services=_no_services) == 1
        (window,) = devices_window
        assert window.isVisible()
        err = capsys.readouterr().err
        assert app_mod.ALREADY_RUNNING_REAL in err
        assert "already running with your factory" in err and "Quit it" in err
        status = await ask_running(socket_path(), "status")
        assert status is not None and status["demo"] is False
    finally:
        if apps:
            apps[0].quit()
        assert await asyncio.wait_for(first, 10) == 0


def _no_services(demo: bool) -> Any:
    raise AssertionError("a second instance must not start services")


# -- no tray, quit --------------------------------------------------------------------------


async def test_no_tray_shows_the_window_and_says_why(backend, devices_window, qapp):
    app = App(backend, hidden=True, tray_wait=0.2, tray_poll=0.05)
    run = asyncio.ensure_future(app.run())
    try:
        await until(lambda: app.tray_available is False and devices_window)
        (window,) = devices_window
        assert window.isVisible()
        box = app._notice_box
        assert box is not None and box.isVisible() and box.text() == NO_TRAY_MESSAGE
        assert "GNOME" in NO_TRAY_MESSAGE and NO_TRAY_MESSAGE.count(". ") == 0  # one sentence
        assert not app.tray.isVisible()
        # Without a tray, the window is the app: closing it quits.
        app._on_last_window_closed()
        assert await asyncio.wait_for(run, 5) == 0
    finally:
        app.quit()
        await asyncio.wait_for(run, 5)


@pytest.fixture
def tray_host(monkeypatch):
    """Whether Qt sees a system tray, as a test sets it (offscreen there is never one)."""
    host = types.SimpleNamespace(up=False)
    monkeypatch.setattr(
        app_mod.QSystemTrayIcon, "isSystemTrayAvailable", staticmethod(lambda: host.up)
    )
    return host


@pytest.mark.parametrize("window", [True, False], ids=["with-window", "no-window"])
async def test_a_tray_appearing_later_gets_a_new_icon_and_closes_the_notice(
    backend, devices_window, qapp, tray_host, monkeypatch, window
):
    if not window:  # the devices window cannot load: the notice was all there was
        monkeypatch.setattr(App, "show_devices", lambda self, factory=None: False)
    app = App(backend, hidden=True, tray_wait=0.2, tray_poll=0.05)
    first = app.tray
    run = asyncio.ensure_future(app.run())
    try:
        await until(lambda: app._notice_box is not None and app._notice_box.isVisible())
        closed: list[int] = []
        app._notice_box.finished.connect(closed.append)
        tray_host.up = True
        # As a StatusNotifierWatcher taking its name does: no waiting for the next poll
        # (TRAY_REPOLL, 5 s, is longer than `until` waits).
        app.tray_appeared.set()
        await until(lambda: app.tray_available and app._notice_box is None)
        assert closed, "the no-tray notice is still open"
        assert not app.quit_event.is_set(), "closing the notice for a tray must not quit"
        # Qt chose the first icon's kind before there was a tray: a new one replaces it.
        assert app.tray is not first and app.tray.isVisible()
        await until(lambda: not shiboken6.isValid(first))  # gone, not a second icon
        assert app.tray.backend is backend
        app._on_last_window_closed()  # a tray now: closing the window leaves the app running
        assert not app.quit_event.is_set()
        # The new icon is wired as the first was: the watcher refreshes it, its menu works.
        app.tray.setToolTip("stale")
        app.watcher.wake()
        await until(lambda: app.tray.toolTip() != "stale")
        app.tray.menu.aboutToShow.emit()
        (quit_action,) = [a for a in app.tray.menu.actions() if a.text() == "&Quit"]
        quit_action.trigger()
        assert await asyncio.wait_for(run, 5) == 0
    finally:
        app.quit()
        await asyncio.wait_for(run, 5)


async def test_not_hidden_shows_the_window_at_start(backend, devices_window, qapp):
    app = App(backend, hidden=False, tray_wait=30.0)
    run = asyncio.ensure_future(app.run())
    await until(lambda: devices_window)
    assert devices_window[0].isVisible()
    app.quit()
    assert await asyncio.wait_for(run, 5) == 0


async def test_quit_from_the_menu_awaits_backend_shutdown(backend, qapp, monkeypatch):
    order: list[str] = []
    real_shutdown = backend.shutdown

    async def shutdown() -> None:
        order.append("shutdown started")
        await asyncio.sleep(0.05)
        await real_shutdown()
        order.append("shutdown done")

    monkeypatch.setattr(backend, "shutdown", shutdown)
    app = App(backend, hidden=True, tray_wait=30.0)
    run = asyncio.ensure_future(app.run())
    await asyncio.sleep(0.05)
    slow = backend.spawn(asyncio.sleep(60), what="slow")
    app.tray.menu.aboutToShow.emit()
    (quit_action,) = [a for a in app.tray.menu.actions() if a.text() == "&Quit"]
    quit_action.trigger()
    assert app.quit_event.is_set()
    assert await asyncio.wait_for(run, 5) == 0
    assert order == ["shutdown started", "shutdown done"]
    assert slow.cancelled()
    assert all(t.done() for t in app._tasks)


def test_run_gui_quits_on_request_from_another_thread(runtime, tmp_path, monkeypatch, qapp):
    """The whole of run_gui on its own qasync loop; quit arrives over the socket."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    replies: list[bytes] = []

    def quit_soon() -> None:
        path = runtime / f"fiotray-{os.getuid()}.sock"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(2)
                    s.connect(str(path))
                    s.sendall(b"quit\n")
                    replies.append(s.recv(100))
                    return
            except OSError:
                time.sleep(0.05)

    thread = threading.Thread(target=quit_soon, daemon=True)
    thread.start()
    assert app_mod.run_gui(demo=True, hidden=True) == 0
    thread.join(5)
    assert replies == [b'{"ok": true}\n']
    log = tmp_path / f"fiotray-demo-{os.getuid()}" / "fiotray.log"
    assert "quitting" in log.read_text()


# -- logging ---------------------------------------------------------------------------------


def test_logs_go_to_the_state_dir_and_rotate(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(app_mod, "LOG_BYTES", 2000)
    directory = app_mod.log_dir(demo=False)
    assert directory == tmp_path / "state" / "fiotray"
    assert app_mod.log_dir(demo=True).parent == Path(tempfile.gettempdir())
    assert logs.log_file(demo=True) == app_mod.log_dir(demo=True) / "fiotray.log"
    handler = setup_logging(directory)
    try:
        # What About shows: the file written, whatever the demo flag says (the automatic
        # demo logs with the user's; a --demo that signed in keeps its own).
        assert logs.log_file(demo=True) == directory / "fiotray.log"
        log = logging.getLogger("fiotray.test")
        for i in range(200):
            log.info("line %d of a long enough message to fill the log", i)
        logging.getLogger("httpx").info("HTTP Request: GET https://api/?token=x")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    names = sorted(p.name for p in directory.iterdir())
    assert names == ["fiotray.log", "fiotray.log.1", "fiotray.log.2", "fiotray.log.3"]
    assert (directory.stat().st_mode & 0o777) == 0o700
    text = "".join(p.read_text() for p in directory.iterdir())
    assert "line 199 of" in text and "token" not in text


def test_cli_starts_the_gui(monkeypatch):
    import fiotray.cli
    import fiotray.gui.app

    calls = []
    monkeypatch.setattr(fiotray.gui.app, "run_gui", lambda **kw: calls.append(kw) or 0)
    assert fiotray.cli.main([]) == 0
    assert fiotray.cli.main(["--demo", "--hidden"]) == 0
    assert calls == [{"demo": False, "hidden": False}, {"demo": True, "hidden": True}]
    # That fiotray.cli itself loads no Qt: tests/unit/test_import_budget.py.


# -- watching the tunnels ----------------------------------------------------------------------


async def test_watcher_sees_changes_behind_our_back_and_resume(backend):
    slept = [0.0]
    ticks = []
    watcher = TunnelWatcher(
        backend,
        up_interval=0.05,
        idle_interval=0.05,
        full_interval=3600,
        on_tick=lambda: ticks.append(1),
        slept=lambda: slept[0],
    )
    task = asyncio.ensure_future(watcher.run())
    try:
        await until(lambda: watcher.full_checks == 1 and TUNNEL in backend.tunnel_states)
        await asyncio.sleep(0.2)
        assert watcher.full_checks == 1  # idle and consistent: only the /sys stat
        iface = backend.tunnels()[0].interface
        helper = backend.services.controller.helper
        await helper.up(iface, _config(backend))  # up outside fiotray's controller
        await until(lambda: backend.tunnel_states[TUNNEL].state is not State.DISCONNECTED)
        checks = watcher.full_checks
        slept[0] += 3600  # the laptop slept for an hour
        await until(lambda: watcher.full_checks > checks)
        assert ticks
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _config(backend: Any) -> str:
    from fiotray.core import wgconf
    from fiotray.core.secrets import tunnel_key

    tunnel = backend.tunnels()[0]
    key = backend.services.secrets.get(tunnel_key(tunnel.name))
    return wgconf.with_key(tunnel.template, key)


async def test_watcher_leaves_a_connect_in_flight_alone(backend):
    watcher = TunnelWatcher(backend)
    connecting = asyncio.ensure_future(backend.connect(TUNNEL))
    await until(lambda: TUNNEL in backend.tunnel_states)
    assert backend.tunnel_states[TUNNEL].state is State.CONNECTING
    seen = []
    backend.tunnelChanged.connect(lambda s: seen.append(s.state))
    await watcher.check(full=True)  # the interface is not up yet: no "disconnected" flicker
    assert State.DISCONNECTED not in seen
    assert (await connecting).state is State.CONNECTED


@pytest.mark.parametrize("auto", [True, False], ids=["automatic-demo", "--demo"])
async def test_signing_in_from_the_demo_keeps_it_and_leaves_the_demo(
    tmp_path, devices_window, qapp, auto
):
    """The README's first command shows the demo (as `--demo` does); a sign-in there is
    the user's, for real: their stores and keyring, never the demo's."""
    import secrets as pysecrets

    from fiotray.core.factories import FactoryStore
    from fiotray.core.secrets import MemorySecretStore, factory_key
    from fiotray.core.services import Services
    from fiotray.core.settings import SettingsStore
    from fiotray.core.tunnels import TunnelController, TunnelStore
    from fiotray.demo.fakeapi import FakeApiServer, FakeFactory
    from fiotray.gui.backend import Backend

    factory = FakeFactory("my-factory")
    token = pysecrets.token_urlsafe(16)
    factory.add_api_token(token)
    factory.add_device("my-device-1")
    user_dir = tmp_path / "config"
    user_secrets = MemorySecretStore()

    def user_services() -> Services:
        tunnels = TunnelStore(user_dir)
        return Services(
            factories=FactoryStore(user_dir),
            tunnels=tunnels,
            settings=SettingsStore(user_dir),
            secrets=user_secrets,
            controller=TunnelController(tunnels, user_secrets),
        )

    demo = demo_services()
    demo.auto_demo = auto
    demo_secrets = demo.secrets
    demo_root = demo.settings.path.parent.parent
    assert demo_root.is_dir()
    backend = Backend(demo)
    backend.user_services_factory = user_services
    app = App(backend, hidden=False, tray_wait=30.0)
    run = asyncio.ensure_future(app.run())
    with FakeApiServer(factory) as api:
        try:
            await until(lambda: devices_window)
            assert app.tray.title == "fiotray (demo)"
            # Chosen in the demo: the terminal comes along, the demo's devices do not.
            import dataclasses

            backend.save_settings(
                dataclasses.replace(
                    backend.settings,
                    terminal="xterm",
                    recent=(("demo-factory", "x"),),
                    autostart=False,  # what start at login is now, so it stays as it is
                )
            )
            if auto:
                await backend.sign_in_token("my-factory", token, api_url=api.api_url)
            else:
                # --demo: the window's demo banner ("Sign in to your factory…") opens the
                # dialog with the public defaults; a self-hosted factory's API is typed in.
                from fiotray.core.factories import DEFAULT_API_URL
                from fiotray.gui import dialogs

                devices_window[0].signInRequested.emit("")
                dlg = app.tray._dialogs[dialogs.sign_in_dialog]
                assert dlg.api_url.text() == "" and dlg.api_url.placeholderText() == DEFAULT_API_URL
                assert "127.0.0.1" not in dlg.oauth_url.text()
                dlg.set_advanced_open(True)
                dlg.api_url.setText(api.api_url)
                dlg.token_factory.setText("my-factory")
                dlg.token.setText(token)
                dlg.ok_button.click()
            await until(lambda: app.backend is not backend)
            await until(lambda: len(devices_window) == 2)
            new = app.backend
            assert not new.demo and new.services.factories.path.parent == user_dir
            assert [p.factory for p in FactoryStore(user_dir).list()] == ["my-factory"]
            assert user_secrets.get(factory_key("my-factory", "api_token")) == token
            # Nothing of the demo's in the user's keyring, nothing of theirs in the demo's.
            assert user_secrets.keys() == [factory_key("my-factory", "api_token")]
            assert demo_secrets.get(factory_key("my-factory", "api_token")) is None
            assert not demo_root.exists(), "the demo's scratch files are gone"
            assert app.tray.title == "fiotray"
            assert new.settings.terminal == "xterm" and new.settings.recent == ()
            assert SettingsStore(user_dir).load().terminal == "xterm"
            app.tray.menu.aboutToShow.emit()
            texts = [a.text() for a in app.tray.menu.actions()]
            assert "Sign out of my-factory" in texts and "Sign out of demo-factory" not in texts
            old_window, window = devices_window
            assert window.isVisible() and window.backend is new
            assert old_window.backend is backend  # the demo's window, deleted
            with pytest.raises(RuntimeError, match="already deleted"):
                old_window.isVisible()
            rows = await new.load_devices("my-factory")
            assert [r.device.name for r in rows] == ["my-device-1"]
        finally:
            app.quit()
            assert await asyncio.wait_for(run, 5) == 0


async def test_secrets_left_without_an_owner_are_reported_at_start(backend, qapp):
    secrets = backend.services.secrets
    secrets.set("tunnel/ghost/private_key", "not-a-real-key")  # its tunnel is gone
    secrets.set("profile/gone-factory/api_token", "not-a-real-token")
    tray = TrayIcon()
    messages: list[tuple] = []
    tray.showMessage = lambda *a: messages.append(a)  # type: ignore[method-assign]
    app = App(backend, hidden=True, tray_wait=30.0, tray=tray)
    run = asyncio.ensure_future(app.run())
    try:
        await until(lambda: messages)
        ((title, message, _icon, _ms),) = messages
        assert title == "Secrets left in the keyring"
        assert "2 secret(s)" in message and "ghost" in message and "gone-factory" in message
        assert "not-a-real" not in message  # names, never values
    finally:
        app.quit()
        await asyncio.wait_for(run, 5)


# -- connect when fiotray starts ------------------------------------------------------------


async def test_a_tunnel_marked_so_connects_when_the_app_starts(backend, qapp):
    tunnel = backend.tunnels()[0]
    app = App(backend, hidden=True, tray_wait=30.0)
    run = asyncio.ensure_future(app.run())
    try:
        # Not marked: it stays down.
        await until(lambda: tunnel.name in backend.tunnel_states)
        await until(lambda: app.autoconnect_task)
        await asyncio.wait_for(app.autoconnect_task, 5)
        assert backend.tunnel_states[tunnel.name].state is State.DISCONNECTED
    finally:
        app.quit()
        await asyncio.wait_for(run, 5)

    # Marked (in a new start: quitting closed the demo's services).
    backend = Backend(demo_services())
    backend.set_autoconnect(tunnel.name, True)
    assert backend.tunnels()[0].autoconnect
    app = App(backend, hidden=True, tray_wait=30.0)
    run = asyncio.ensure_future(app.run())
    try:
        await until(
            lambda: (s := backend.tunnel_states.get(tunnel.name)) and s.state is State.CONNECTED
        )
    finally:
        app.quit()
        await asyncio.wait_for(run, 5)


async def test_a_dismissed_prompt_at_start_is_not_asked_again(backend, qapp, monkeypatch):
    from fiotray.core.errors import VpnError
    from fiotray.core.tunnels import Tunnel

    second = Tunnel(name="office", kind="plain", interface="wg-office", template="", public_key="k")
    backend.services.tunnels.save(second)
    for t in backend.tunnels():
        backend.set_autoconnect(t.name, True)
    asked: list[str] = []

    async def connect(name: str) -> Any:
        asked.append(name)
        raise VpnError("dismissed", code=errors.HELPER_DISMISSED)

    monkeypatch.setattr(backend, "connect", connect)
    tray = TrayIcon()
    messages: list[tuple] = []
    tray.showMessage = lambda *a: messages.append(a)  # type: ignore[method-assign]
    app = App(backend, hidden=True, tray_wait=30.0, tray=tray)
    run = asyncio.ensure_future(app.run())
    try:
        await until(lambda: app.autoconnect_task)
        await asyncio.wait_for(app.autoconnect_task, 5)
        # One prompt, dismissed: the other tunnel does not ask again, and no alarm.
        assert len(asked) == 1 and messages == []
    finally:
        app.quit()
        await asyncio.wait_for(run, 5)


# -- the window as the whole app ------------------------------------------------------------


def menu_texts(menu: Any) -> list[str]:
    return [a.text().replace("&", "") for a in menu.actions() if not a.isSeparator()]


async def test_without_a_tray_the_windows_menu_bar_has_the_whole_app(backend, qapp):
    from fiotray.gui import dialogs

    app = App(backend, hidden=False, tray_wait=0.2, tray_poll=0.05)
    run = asyncio.ensure_future(app.run())
    try:
        await until(lambda: app.tray_available is False and app.window is not None)
        bar = app.window.menu_bar  # type: ignore[union-attr]
        assert bar.isVisibleTo(app.window)
        bar.rebuild_all()
        file, tunnels, factory, help_ = (
            bar.file_menu,
            bar.tunnels_menu,
            bar.factory_menu,
            bar.help_menu,
        )
        assert menu_texts(file) == ["Settings…", "Close window\tCtrl+W", "Quit fiotray\tCtrl+Q"]
        tunnel = backend.tunnels()[0].name
        assert menu_texts(tunnels)[0].startswith(f"{tunnel} — ")
        assert menu_texts(tunnels)[-2:] == ["Add tunnel…", "Import WireGuard config…"]
        assert menu_texts(factory)[:3] == [tunnel, "Refresh\tF5", "Find…\tCtrl+F"]
        assert menu_texts(factory)[-2:] == ["Sign in…", f"Sign out of {tunnel}"]
        assert menu_texts(help_) == ["fiotray Help", "About fiotray"]
        # The entries are the tray's: its dialogs, one of each.
        next(a for a in file.actions() if a.text() == "&Settings…").trigger()
        assert app.tray._dialogs[dialogs.settings_dialog].isVisible()
        app.tray._dialogs[dialogs.settings_dialog].close()
        next(a for a in file.actions() if a.text().startswith("&Quit")).trigger()
        assert await asyncio.wait_for(run, 5) == 0
    finally:
        app.quit()
        await asyncio.wait_for(run, 5)
