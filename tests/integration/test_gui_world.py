"""The tray app end to end, as an engineer uses it: real X, tray, polkit, WireGuard, sshd.

The unprivileged user `fiotray-t` starts `fiotray` (no arguments: the tray app)
inside the laptop namespace of the VPN world, on Xvfb with openbox and trayer,
with their own gnome-keyring and a fake FoundriesFactory API. The test works the
app only through X input (xdotool clicks and keys) and reads what it shows
through the app's `status` request; screenshots go to artifacts/.

- the Foundries tunnel, marked "connect when fiotray starts", comes up at start
  through real pkexec, polkit, the installed helper, wg-quick and wireguard-go,
  and a left click (set to toggle) takes it down and up again;
- the tray menu's "Devices…" opens the devices window with the factory's devices;
- a right click on a row, "Enable VPN": the fake API gets the PATCH, the row
  shows "pending", and "enabled" once the device applied the change;
- a double click on a device starts xterm running ssh through the VPN server to
  the device's real sshd; typing into that terminal runs a command on the device.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from fiotray.core.settings import Settings, SettingsStore
from tests.app_socket import AppSocket, wait_for
from tests.engineer import FACTORY, Engineer, add_foundries_tunnel
from tests.integration.test_server_sync_real import _set_device_vpn
from tests.xsession import XSession

pytestmark = pytest.mark.real

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
REACH_WAIT = 12.0


def row_center(devices: dict[str, Any], row: int = 0) -> tuple[int, int]:
    x, y, _, _ = devices["viewport"]
    height = devices["row_height"]
    return x + 40, y + row * height + height // 2


def settle_and_shot(session: XSession, name: str) -> None:
    time.sleep(0.3)  # let the compositor-less X server finish painting before the shot
    session.shot(ARTIFACTS / f"{name}.png")


def new_window(session: XSession, cls: str, before: set[str], what: str) -> str:
    windows = wait_for(what, lambda: set(session.visible_windows(cls)) - before)
    return sorted(windows)[-1]


def filter_to(session: XSession, app: AppSocket, name: str) -> dict[str, Any]:
    session.key("ctrl+f")  # focus the search box, text selected: typing replaces it
    session.type(name)
    return wait_for(
        f"the list filtered to {name}",
        lambda: (d := app.devices()) and [r["Name"] for r in d["rows"]] == [name] and d,
    )


def start_app(
    engineer: Engineer, xsession: XSession, name: str, *args: str
) -> tuple[subprocess.Popen[bytes], AppSocket, Path]:
    """The tray app as the engineer on the session's display, its output in logs/NAME.log;
    the app's socket (answering once it is up) and the log's path."""
    env = {
        "DISPLAY": xsession.env["DISPLAY"],
        "QT_QPA_PLATFORM": "xcb",
        "XDG_CURRENT_DESKTOP": "openbox",
    }
    log = xsession.root / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = engineer.spawn(*args, env=env, log=log)
    return proc, AppSocket(engineer.home / "run" / f"fiotray-{engineer.user.uid}.sock"), log


def open_devices_window(xsession: XSession, app: AppSocket) -> str:
    """Once the app is up with its tunnel connected (at start), the devices window from the
    tray menu's "Devices…"; the tray icon's window."""
    icon = xsession.wait_tray_icon("fiotray", timeout=30)
    wait_for("the app's socket", app.path.exists, timeout=20)
    wait_for("the tunnel connected at start", lambda: app.tunnel() == "connected", 30)
    before = set(xsession.visible_windows("fiotray"))
    xsession.click(icon, 3)
    new_window(xsession, "fiotray", before, "the tray menu")
    xsession.key("d")
    wait_for("the devices window", lambda: (d := app.devices()) and d.get("visible"))
    return icon


@pytest.fixture
def gui_engineer(engineer: Engineer) -> Engineer:
    """The engineer with a Foundries tunnel the server knows, and xterm as the terminal."""
    world = engineer.world
    tunnel = add_foundries_tunnel(engineer)
    world.add_peer(tunnel["public_key"], world.laptop_vpn_address)
    engineer.fiotray("tunnels", "autoconnect", tunnel["name"], "on")
    config = engineer.home / "config" / "fiotray"
    # The left click connects and disconnects here (the default opens the menu).
    # A device that never answers is reported after REACH_WAIT s, not the usual 15 min.
    SettingsStore(config).save(
        Settings(terminal="xterm", left_click="toggle", reach_wait=REACH_WAIT)
    )
    for path in (config, *config.iterdir()):
        shutil.chown(path, engineer.user.uid, engineer.user.gid)
    return engineer


def test_tray_devices_window_enable_vpn_and_ssh_terminal(
    gui_engineer: Engineer, xsession: XSession
) -> None:
    engineer, world, api = gui_engineer, gui_engineer.world, gui_engineer.api
    api.factory.add_device("vpn-off-1", vpn_enabled=False)
    api.factory.add_device("far-away", vpn_enabled=False, online=False)
    # VPN off at the API for world device 2; the world keeps its tunnel and the peer.
    _set_device_vpn(api.factory, world.devices[1], enabled=False)
    api.factory.apply_pending(world.devices[1].name)
    device = world.devices[0]
    # Where the shell on the device leaves its answer: the device user must write there.
    marker_dir = Path(tempfile.mkdtemp(prefix="fiotray-gui-"))
    marker_dir.chmod(0o1777)
    marker = marker_dir / "hostname"

    proc, app, log = start_app(engineer, xsession, "fiotray-gui-world")
    try:
        icon = xsession.wait_tray_icon("fiotray", timeout=30)
        wait_for("the app's socket", app.path.exists, timeout=20)
        status = app.status()
        assert status["demo"] is False and status["tray"]["visible"] is True
        # "Connect when fiotray starts": up through pkexec/polkit and the installed
        # helper with no click (the server's route is there at once).
        wait_for("the tunnel connected at start", lambda: app.tunnel() == "connected", 30)
        assert world.laptop_ifname in engineer.interfaces()

        # Left click (set to toggle): down, then up again, through the helper each time.
        xsession.click(icon, 1)
        wait_for("the tunnel down after a click", lambda: app.tunnel() == "disconnected", 30)
        assert world.laptop_ifname not in engineer.interfaces()
        # A click within Qt's double-click interval (400 ms) of the last is a double
        # click, which the tray does not take for a second toggle.
        time.sleep(0.5)
        xsession.click(icon, 1)
        wait_for("the tunnel connected after a click", lambda: app.tunnel() == "connected", 30)
        assert world.laptop_ifname in engineer.interfaces()

        # The tray menu's "Devices…" entry opens the devices window.
        before = set(xsession.visible_windows("fiotray"))
        xsession.click(icon, 3)
        new_window(xsession, "fiotray", before, "the tray menu")
        settle_and_shot(xsession, "x11-world-menu")
        xsession.key("d")
        devices = wait_for(
            "the devices window listing the factory",
            lambda: (
                (d := app.devices())
                and d.get("visible")
                and d["shown"] == len(world.devices) + 3
                and d
            ),
        )
        assert devices["factory"] == FACTORY
        names = {r["Name"] for r in devices["rows"]}
        assert names == {d.name for d in world.devices} | {"not-on-vpn", "vpn-off-1", "far-away"}
        by_name = {r["Name"]: r for r in devices["rows"]}
        assert by_name[device.name]["VPN"] == "enabled"
        assert by_name[device.name]["VPN address"] == device.vpn_address
        assert by_name["vpn-off-1"]["VPN"] == "—"  # never enabled
        settle_and_shot(xsession, "x11-world-devices")

        # Right click on vpn-off-1, then "Enable VPN" (its mnemonic) in the context menu.
        devices = filter_to(xsession, app, "vpn-off-1")
        before = set(xsession.visible_windows("fiotray"))
        api.clear_requests()
        xsession.click_at(*row_center(devices), button=3)
        new_window(xsession, "fiotray", before, "the row's context menu")
        settle_and_shot(xsession, "x11-world-row-menu")
        xsession.key("e")
        patch = wait_for(
            "a PATCH of vpn-off-1's config at the API",
            lambda: [
                r
                for r in api.requests
                if r.method == "PATCH" and r.path.endswith("/devices/vpn-off-1/config/")
            ],
        )
        body = json.loads(patch[0].body)
        (wcc,) = [f for f in body["files"] if f["name"] == "wireguard-client"]
        assert "address=" in wcc["value"] and "enabled=0" not in wcc["value"]
        row = wait_for(
            "the row pending", lambda: (r := app.rows()) and r[0]["VPN"] == "pending" and r[0]
        )
        assert row["VPN address"], "a pending enable shows the address it was given"
        settle_and_shot(xsession, "x11-world-pending")
        api.factory.apply_pending("vpn-off-1")  # the device picks the change up
        wait_for(
            "the row enabled once applied, and checking",
            lambda: app.rows()[0]["VPN"] == "enabled · checking",
            30,
        )

        # A device of the world with VPN off at the API (its tunnel and the server's
        # peer are there): enabled from the window, it is reported reachable.
        reachable = world.devices[1]
        devices = filter_to(xsession, app, reachable.name)
        before = set(xsession.visible_windows("fiotray"))
        xsession.click_at(*row_center(devices), button=3)
        new_window(xsession, "fiotray", before, "the row's context menu")
        xsession.key("e")
        wait_for("the row pending", lambda: app.rows()[0]["VPN"] == "pending")
        api.factory.apply_pending(reachable.name)
        wait_for(
            f"{reachable.name} reported reachable",
            lambda: f"{reachable.name} is reachable" in notified(app),
            30,
        )
        assert app.rows()[0]["VPN"] == "enabled · reachable"
        settle_and_shot(xsession, "x11-world-reachable")
        # vpn-off-1 exists only at the API: nothing answers at its address.
        message = wait_for(
            "vpn-off-1 reported not reachable",
            lambda: notified(app).get("vpn-off-1 is not reachable"),
            REACH_WAIT + 30,
        )
        assert "the VPN server has no working peer for it yet" in message, message
        # An offline device never applies the change: reported so, with when it was seen.
        far = filter_to(xsession, app, "far-away")
        before = set(xsession.visible_windows("fiotray"))
        xsession.click_at(*row_center(far), button=3)
        new_window(xsession, "fiotray", before, "the row's context menu")
        xsession.key("e")
        message = wait_for(
            "far-away reported not reachable",
            lambda: notified(app).get("far-away is not reachable"),
            REACH_WAIT + 30,
        )
        assert "the device is offline (last seen 30d ago)" in message, message
        settle_and_shot(xsession, "x11-world-not-reachable")

        # Double click on a device on the VPN: xterm runs ssh through the server.
        devices = filter_to(xsession, app, device.name)
        before = set(xsession.visible_windows("xterm"))
        xsession.click_at(*row_center(devices), repeat=2)
        term = new_window(xsession, "xterm", before, "an xterm for the SSH session")
        xsession.activate(term)
        # Keys typed before ssh has a shell would be lost or echoed twice: wait for it.
        wait_for(
            "a shell of the device user (ssh logged in)",
            lambda: shells_of(world.device_user),
            timeout=30,
        )
        xsession.type(f"hostname > {marker}\n")
        wait_for(
            "the command typed into the terminal to run",
            lambda: marker.exists() and marker.read_text().strip(),
        )
        assert marker.read_text().strip() == device.name
        assert marker.stat().st_uid == world_uid(world.device_user)
        settle_and_shot(xsession, "x11-world-ssh-terminal")
        xsession.type("exit\n")
        wait_for(
            "the terminal to close after exit",
            lambda: term not in xsession.visible_windows("xterm"),
        )
        saved = SettingsStore(engineer.home / "config" / "fiotray").load()
        assert saved.recent[0] == (FACTORY, device.name), "the tray's recent devices"
        assert saved.terminal == "xterm", "the user's settings are kept"

        # A second click on the icon takes the tunnel down.
        xsession.click(icon, 1)
        wait_for("disconnected after a second click", lambda: app.tunnel() == "disconnected", 30)
        assert world.laptop_ifname not in engineer.interfaces()

        assert app.request("quit") == {"ok": True}
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
        shutil.rmtree(marker_dir, ignore_errors=True)
    output = log.read_text(errors="replace")
    assert "Traceback" not in output, output


def notified(app: AppSocket) -> dict[str, str]:
    """The tray's notifications so far, title -> message."""
    return {n["title"]: n["message"] for n in app.status()["notifications"]}


def shells_of(user: str) -> list[str]:
    """Processes of `user` other than sshd's own: the login shell ssh started."""
    out = subprocess.run(
        ["ps", "-u", user, "-o", "comm="], capture_output=True, text=True, check=False
    ).stdout
    return [c for c in out.split() if c != "sshd"]


def world_uid(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_uid
