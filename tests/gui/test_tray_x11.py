"""The tray app on a real X display with a real XEmbed tray (trayer), as a user would run it.

`python -m fiotray --demo --hidden` runs as a separate process; the test finds
its icon inside the tray, clicks it with xdotool, reads the app's state over
its single-instance socket (the `status` request) and quits it the same way.
Screenshots land in artifacts/.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.app_socket import AppSocket, wait_for
from tests.xsession import XSession

pytestmark = pytest.mark.real

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"


def request(sock_path: Path, command: str) -> dict:
    return AppSocket(sock_path).request(command)


def tunnel_state(sock_path: Path) -> str | None:
    return AppSocket(sock_path).tunnel()


def start_fiotray(session: XSession, *args: str, log: Path) -> subprocess.Popen[bytes]:
    """`python -m fiotray ARGS` on the session's display, its output to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "fiotray", *args],
            env=dict(session.env),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def app_of(session: XSession) -> AppSocket:
    """The running fiotray's socket on this session (one instance per user)."""
    return AppSocket(Path(session.env["XDG_RUNTIME_DIR"]) / f"fiotray-{os.getuid()}.sock")


def devices_window_shown(app: AppSocket, rows: int | None = None) -> dict[str, Any]:
    """What the devices window shows, once it is visible with its rows (`rows` of them)."""
    return wait_for(
        "the devices window with the demo's devices",
        lambda: (
            (d := app.status()["devices"])
            and d["visible"]
            and d["shown"]
            and (rows is None or d["shown"] == rows)
            and d
        ),
    )


def tray_area(session: XSession, icon: str, name: str) -> Path:
    """A screenshot, plus a 4x crop of the panel's corner where the icon sits."""
    full = session.shot(ARTIFACTS / f"{name}.png")
    x, y, w, h = session.geometry(icon)
    crop = ARTIFACTS / f"{name}-tray.png"
    session.run(
        "convert",
        str(full),
        "-crop",
        f"{w + 120}x{h + 40}+{max(0, x - 100)}+{max(0, y - 20)}",
        "-scale",
        "400%",
        str(crop),
    )
    return full


def test_tray_icon_click_menu_and_quit(xsession: XSession) -> None:
    env = dict(xsession.env)
    sock_path = Path(env["XDG_RUNTIME_DIR"]) / f"fiotray-{os.getuid()}.sock"
    log = xsession.root / "logs" / "fiotray.log"
    started = time.monotonic()
    proc = start_fiotray(xsession, "--demo", "--hidden", log=log)
    try:
        icon = xsession.wait_tray_icon("fiotray", timeout=15)
        embedded = time.monotonic() - started
        wait_for("the app's socket", lambda: sock_path.exists())
        status = request(sock_path, "status")
        assert status["demo"] is True
        assert status["tray"] == {"available": True, "visible": True, "no_tray_notice": False}
        assert status["tooltip"].startswith("fiotray (demo)")
        wait_for("the first tunnel check", lambda: tunnel_state(sock_path) == "disconnected")
        time.sleep(0.3)  # let the panel paint
        tray_area(xsession, icon, "x11-tray-disconnected")

        # A left click opens the menu (it used to toggle the tunnel: a stray click
        # prompted for a password); its first entry is the tunnel's.
        before = set(xsession.visible_windows("fiotray"))
        xsession.click(icon, 1)
        wait_for(
            "the menu after a left click", lambda: set(xsession.visible_windows("fiotray")) - before
        )
        assert tunnel_state(sock_path) == "disconnected"
        xsession.key("Down")
        xsession.key("Return")
        wait_for("connected from the menu", lambda: tunnel_state(sock_path) == "connected")
        assert request(sock_path, "status")["icon_state"] == "connected"
        time.sleep(0.3)
        tray_area(xsession, icon, "x11-tray-connected")

        before = set(xsession.visible_windows("fiotray"))
        xsession.click(icon, 3)
        menu = wait_for(
            "the context menu", lambda: set(xsession.visible_windows("fiotray")) - before
        )
        time.sleep(0.3)
        xsession.shot(ARTIFACTS / "x11-menu.png")
        (menu_id,) = menu
        _, _, mw, mh = xsession.geometry(menu_id)
        assert mw > 150 and mh > 200, "the menu looks empty"
        xsession.key("Escape")
        wait_for("the menu to close", lambda: not set(xsession.visible_windows("fiotray")) - before)

        # The entries act: "Devices…" (its mnemonic) opens the devices window.
        assert request(sock_path, "status")["window"] is False
        xsession.click(icon, 3)
        wait_for("the menu again", lambda: set(xsession.visible_windows("fiotray")) - before)
        xsession.key("d")
        devices = wait_for(
            "the devices window with the demo factory's devices",
            lambda: (d := request(sock_path, "status")["devices"]) and d["shown"] == 36 and d,
        )
        assert devices["visible"] and devices["factory"] == "demo-factory"
        assert {"Name", "Online", "VPN", "VPN address"} <= set(devices["rows"][0])
        time.sleep(0.3)
        xsession.shot(ARTIFACTS / "x11-devices.png")

        # A second launch asks this one to come forward and leaves: still one icon.
        second = subprocess.run(
            [sys.executable, "-m", "fiotray", "--demo"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stderr
        assert len(xsession.x.tray_icons("fiotray")) == 1
        assert request(sock_path, "status")["window"] is True

        before = set(xsession.visible_windows("fiotray"))
        xsession.click(icon, 1)
        wait_for("the menu again", lambda: set(xsession.visible_windows("fiotray")) - before)
        xsession.key("Down")
        xsession.key("Return")
        wait_for("disconnected from the menu", lambda: tunnel_state(sock_path) == "disconnected")

        assert request(sock_path, "quit") == {"ok": True}
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text(errors="replace")
    assert "Traceback" not in output, output
    print(f"tray icon embedded {embedded:.2f} s after start")
    # The demo leaves nothing outside the temp dir: no config, no state in HOME.
    home = Path(env["HOME"])
    assert not (home / ".config" / "fiotray").exists()
    assert not (home / ".local" / "state" / "fiotray").exists()
    demo_log = Path(env["TMPDIR"]) / f"fiotray-demo-{os.getuid()}" / "fiotray.log"
    assert "quitting" in demo_log.read_text()


@pytest.mark.parametrize(
    ("key", "shot", "title"),
    [
        ("i", "x11-dialog-sign-in", "Sign in"),
        ("t", "x11-dialog-add-tunnel", "Add"),
        ("m", "x11-dialog-import", "Import"),
        ("s", "x11-dialog-settings", "Settings"),
        ("h", "x11-dialog-help", "Help"),
    ],
)
def test_menu_entries_open_their_dialogs(xsession: XSession, key: str, shot: str, title: str):
    app = app_of(xsession)
    proc = start_fiotray(xsession, "--demo", "--hidden", log=xsession.root / "logs" / f"{shot}.log")
    try:
        icon = xsession.wait_tray_icon("fiotray", timeout=15)
        wait_for("the app's socket", app.path.exists)
        before = set(xsession.visible_windows("fiotray"))
        xsession.click(icon, 3)
        wait_for("the menu", lambda: set(xsession.visible_windows("fiotray")) - before)
        xsession.key(key)
        dialog = wait_for(
            f"a {title} window",
            lambda: [
                w
                for w in set(xsession.visible_windows("fiotray")) - before
                if title in xsession.run("xdotool", "getwindowname", w, check=False).stdout
            ],
        )[0]
        time.sleep(0.3)
        xsession.shot(ARTIFACTS / f"{shot}.png")
        x, y, w, h = xsession.geometry(dialog)
        assert w >= 300 and h >= 150, f"the {title} window is too small: {w}x{h}"
        screen_w, screen_h = map(int, xsession.run("xdotool", "getdisplaygeometry").stdout.split())
        assert x >= 0 and y >= 0, f"the {title} window starts off screen at {x},{y}"
        assert x + w <= screen_w and y + h <= screen_h, (
            f"the {title} window ({w}x{h} at {x},{y}) does not fit a {screen_w}x{screen_h} screen"
        )
        assert app.request("quit") == {"ok": True}
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_without_a_tray_the_window_is_the_whole_app(xsession_no_tray: XSession) -> None:
    """Stock GNOME: no tray. The window's menu bar has the tray's entries, Ctrl+Q quits."""
    session = xsession_no_tray
    app = app_of(session)
    log = session.root / "logs" / "fiotray-no-tray.log"
    proc = start_fiotray(session, "--demo", log=log)
    try:
        wait_for("the app's socket", app.path.exists, timeout=20)
        devices = devices_window_shown(app)
        (window,) = session.visible_windows("fiotray")
        session.activate(window)
        # The menu bar, by keyboard as by mouse: Alt+T opens Tunnels.
        session.key("alt+t")
        menu = wait_for(
            "the Tunnels menu", lambda: set(session.visible_windows("fiotray")) - {window}
        )
        time.sleep(0.3)  # let the X server finish painting before the shot
        session.shot(ARTIFACTS / "x11-no-tray-menu-bar.png")
        (menu_id,) = menu
        _, _, mw, mh = session.geometry(menu_id)
        assert mw > 150 and mh > 60, "the Tunnels menu looks empty"
        # Its first entry, the tunnel's toggle, is highlighted (a menu opened by keyboard):
        # Return connects.
        session.key("Return")
        wait_for("connected from the window's menu", lambda: app.tunnel() == "connected")
        assert devices["factory"] == "demo-factory"
        # Ctrl+Q quits: without a tray, the window is the way out.
        session.activate(window)
        session.key("ctrl+q")
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text(errors="replace")
    assert "Traceback" not in output, output


def test_select_several_rows_enable_vpn_and_filter(xsession: XSession) -> None:
    """The devices window by mouse and keyboard: the state filter (VPN disabled), then
    click, Shift+click and Ctrl+click select five rows, and their menu's Enable VPN
    writes all five at once with one summary."""
    session = xsession
    app = app_of(session)
    log = session.root / "logs" / "fiotray-bulk.log"
    proc = start_fiotray(session, "--demo", log=log)
    try:
        wait_for("the app's socket", app.path.exists, timeout=20)
        devices = devices_window_shown(app, rows=36)
        window = wait_for("the window", lambda: session.visible_windows("fiotray"))[0]
        session.activate(window)

        # The state filter: open the combo with the mouse, pick "VPN disabled" by keys.
        x, y, w, h = devices["state_filter_rect"]
        before = set(session.visible_windows("fiotray"))
        session.click_at(x + w // 2, y + h // 2)
        wait_for("the filter's list", lambda: set(session.visible_windows("fiotray")) - before)
        for _ in range(3):  # All devices, Online, VPN enabled, VPN disabled
            session.key("Down")
        session.key("Return")
        devices = wait_for(
            "the VPN disabled filter",
            lambda: (d := app.devices())["state_filter"] == "disabled" and d,
        )
        assert 5 <= devices["shown"] < 36
        assert {r["VPN"] for r in devices["rows"]} <= {"disabled", "—"}
        assert devices["status"].endswith(f"· {devices['shown']} shown: VPN disabled")

        # Click row 0, Shift+click row 3, Ctrl+click row 5: five rows selected.
        vx, vy, _, _ = devices["viewport"]
        rh = devices["row_height"]

        def row_point(r: int) -> tuple[int, int]:
            return vx + 60, vy + rh * r + rh // 2

        session.click_at(*row_point(0))
        session.run("xdotool", "keydown", "shift")
        session.click_at(*row_point(3))
        session.run("xdotool", "keyup", "shift", "keydown", "ctrl")
        session.click_at(*row_point(5))
        session.run("xdotool", "keyup", "ctrl")
        picked = [devices["rows"][r]["Name"] for r in (0, 1, 2, 3, 5)]
        wait_for("five rows selected", lambda: app.devices()["selected"] == picked)
        assert app.devices()["status"].endswith("· 5 selected")

        # Their menu (right click on one of them), then E: Enable VPN on the five.
        before = set(session.visible_windows("fiotray"))
        session.click_at(*row_point(2), button=3)
        wait_for("the selection's menu", lambda: set(session.visible_windows("fiotray")) - before)
        time.sleep(0.3)  # let the X server finish painting before the shot
        session.shot(ARTIFACTS / "x11-devices-bulk-menu.png")
        session.key("e")
        devices = wait_for("the summary", lambda: "VPN on" in (d := app.devices())["message"] and d)
        time.sleep(0.3)
        session.shot(ARTIFACTS / "x11-devices-bulk-enabled.png")
        message = devices["message"]
        assert message.startswith("Enabled VPN on "), message
        ok = int(message.split()[3])
        assert message.startswith(f"Enabled VPN on {ok} of 5 devices")
        rows = {r["Name"]: r for r in devices["rows"]}
        enabled = [n for n in picked if rows[n]["VPN"] in ("pending", "enabled")]
        failed = [n for n in picked if n not in enabled]
        assert len(enabled) == ok >= 1
        for name in failed[:3]:  # the summary names the first few failures
            assert f"{name}: " in message
        addresses = [rows[n]["VPN address"] for n in enabled]
        assert all(addresses) and len(set(addresses)) == len(addresses), addresses
        # Rows not selected were left alone.
        assert rows[devices["rows"][4]["Name"]]["VPN"] in ("disabled", "—")

        assert app.request("quit") == {"ok": True}
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text(errors="replace")
    assert "Traceback" not in output, output
