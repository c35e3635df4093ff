"""The tray app on a StatusNotifierItem tray (KDE, GNOME's AppIndicator extension, Xfce,
waybar): a fake org.kde.StatusNotifierWatcher on the session's private bus, xcb on Xvfb
and no XEmbed tray host, so D-Bus is the only way to a tray.

The app runs as its own process; the test reads the item back over D-Bus as a panel
would (properties and the com.canonical.dbusmenu menu) and the app's state over its
single-instance socket. The watcher starts before the app (a normal login), during the
app's wait for a tray, or after it gave up (a panel started late): Qt picks a tray icon's
kind when the QSystemTrayIcon is made, so the last two need the app's re-created icon.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.app_socket import AppSocket, wait_for
from tests.procs import stop
from tests.sni_watcher import NO_MENU, FakeWatcher, Item, Registration, read_item
from tests.xsession import TRAYER, XSession

pytestmark = pytest.mark.real

ROOT = Path(__file__).resolve().parents[2]
# `python -m fiotray --demo --hidden` with the wait for a tray shortened to argv[1] seconds.
SHORT_WAIT = (
    "import sys; from fiotray.gui import app; app.TRAY_WAIT = float(sys.argv[1]); "
    "sys.exit(app.run_gui(demo=True, hidden=True))"
)


@contextmanager
def running_app(session: XSession, argv: list[str]) -> Iterator[AppSocket]:
    sock = AppSocket(Path(session.env["XDG_RUNTIME_DIR"]) / f"fiotray-{os.getuid()}.sock")
    log = session.root / "logs" / "fiotray.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, *argv],
            env=session.env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for("the app's socket", lambda: sock.path.exists())
        yield sock
        assert sock.request("quit") == {"ok": True}
        assert proc.wait(10) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@contextmanager
def watcher_on(session: XSession) -> Iterator[FakeWatcher]:
    watcher = FakeWatcher(session.env["DBUS_SESSION_BUS_ADDRESS"]).start()
    try:
        yield watcher
    finally:
        watcher.stop()


def settled_item(session: XSession, reg: Registration) -> Item:
    """The item once the first tunnel check is done (the tooltip no longer says checking)."""
    bus = session.env["DBUS_SESSION_BUS_ADDRESS"]

    def read() -> Item | None:
        item = read_item(bus, reg)
        return item if "disconnected" in item.properties["ToolTip"][2] else None

    return wait_for("the item's tooltip to show the tunnel's state", read, timeout=15)


def assert_is_fiotray(item: Item) -> None:
    props = item.properties
    assert props["Id"] == "fiotray"  # the app and desktop file name
    assert props["Title"] == "fiotray"
    assert props["Status"] == "Active"
    assert props["Category"] == "ApplicationStatus"
    _icon_name, _pixmaps, title, body = props["ToolTip"]
    assert title == "fiotray (demo)\ndemo-factory: disconnected" or (
        title == "" and body == "fiotray (demo)\ndemo-factory: disconnected"
    ), props["ToolTip"]
    # The state icon, as ARGB pixmaps (an icon of our own, not a theme name).
    assert props["IconName"] or props["IconPixmap"]
    for w, h, data in props["IconPixmap"]:
        assert w > 0 and h > 0 and len(data) == w * h * 4
        assert any(data), "a blank icon"
    # GNOME's AppIndicator extension ignores an item without a menu.
    assert props["Menu"] != NO_MENU, "no context menu"
    assert item.menu[0] == "fiotray (demo)"
    assert any(label.startswith("demo-factory") for label in item.menu), item.menu
    assert "_Quit" in item.menu and "_Devices…" in item.menu


def test_sni_item_carries_the_icon_tooltip_and_menu(xsession_no_tray: XSession) -> None:
    """A watcher already there (a normal login): the item registers at once."""
    with (
        watcher_on(xsession_no_tray) as watcher,
        running_app(xsession_no_tray, ["-m", "fiotray", "--demo", "--hidden"]) as app,
    ):
        reg = watcher.wait_item(timeout=15)
        assert_is_fiotray(settled_item(xsession_no_tray, reg))
        tray = app.status()["tray"]
        assert tray == {"available": True, "visible": True, "no_tray_notice": False}
        assert len(watcher.items()) == 1  # one icon, registered once
        assert xsession_no_tray.x.tray_icons("fiotray") == []  # no XEmbed icon either


def test_panel_starting_during_the_wait_gets_the_icon(xsession_no_tray: XSession) -> None:
    """The login race: fiotray autostarts, the panel's watcher comes a moment later.

    The icon made at start, before any tray, would never register; within the default
    wait of 15 s the app must notice the watcher and register a new icon promptly.
    """
    with running_app(xsession_no_tray, ["-m", "fiotray", "--demo", "--hidden"]) as app:
        assert app.status()["tray"]["available"] is False  # still waiting
        with watcher_on(xsession_no_tray) as watcher:
            reg = watcher.wait_item(timeout=5)
            assert_is_fiotray(settled_item(xsession_no_tray, reg))
            tray = app.status()["tray"]
            assert tray == {"available": True, "visible": True, "no_tray_notice": False}
            assert app.status()["window"] is False  # --hidden, and the tray came in time


def test_panel_starting_after_the_app_gave_up_gets_the_icon(xsession_no_tray: XSession) -> None:
    """No tray within the wait: window and notice; a panel later: icon, notice closed."""
    with running_app(xsession_no_tray, ["-c", SHORT_WAIT, "0.5"]) as app:
        status = wait_for(
            "the no-tray notice", lambda: (s := app.status())["tray"]["no_tray_notice"] and s
        )
        assert status["tray"]["available"] is False and status["window"] is True
        with watcher_on(xsession_no_tray) as watcher:
            # Announced on D-Bus: noticed at once, not at the next 5 s look for XEmbed.
            reg = watcher.wait_item(timeout=3)
            assert_is_fiotray(settled_item(xsession_no_tray, reg))
            tray = wait_for(
                "the notice to close", lambda: (t := app.status()["tray"])["visible"] and t
            )
            assert tray == {"available": True, "visible": True, "no_tray_notice": False}


def test_a_restarted_panel_gets_the_item_again(xsession_no_tray: XSession) -> None:
    """A panel restart (plasmashell, the GNOME extension re-enabled): Qt registers its
    item with the new watcher by itself (measured: within ~30 ms); this pins that."""
    first = FakeWatcher(xsession_no_tray.env["DBUS_SESSION_BUS_ADDRESS"]).start()
    try:
        with running_app(xsession_no_tray, ["-m", "fiotray", "--demo", "--hidden"]) as app:
            first.wait_item(timeout=15)
            first.stop()  # the panel goes away, its watcher's name with it
            with watcher_on(xsession_no_tray) as again:
                assert_is_fiotray(settled_item(xsession_no_tray, again.wait_item(timeout=5)))
            assert app.status()["tray"]["visible"] is True
    finally:
        first.stop()


def test_an_xembed_tray_starting_after_the_app_gave_up_gets_the_icon(
    xsession_no_tray: XSession,
) -> None:
    """The same late start with an XEmbed tray (trayer): the new icon embeds there.

    No D-Bus announcement for XEmbed: the app finds it at its next look (every 5 s).
    """
    with running_app(xsession_no_tray, ["-c", SHORT_WAIT, "0.5"]) as app:
        wait_for("the no-tray notice", lambda: app.status()["tray"]["no_tray_notice"])
        log = (xsession_no_tray.root / "logs" / "trayer.log").open("wb")
        with (
            log,
            subprocess.Popen(
                TRAYER, env=xsession_no_tray.env, stdout=log, stderr=subprocess.STDOUT
            ) as trayer,
        ):
            try:
                xsession_no_tray.wait_tray_icon("fiotray", timeout=15)
                tray = wait_for(
                    "the notice to close", lambda: (t := app.status()["tray"])["visible"] and t
                )
                assert tray == {"available": True, "visible": True, "no_tray_notice": False}
                assert len(xsession_no_tray.x.tray_icons("fiotray")) == 1
            finally:
                stop(trayer)
