"""Port forwards in the tray app end to end: real X, tray, tunnel, sshd, X input only.

The engineer right-clicks a device, picks "Forward a port…", types the device's web
port and presses Enter; the web server on the device answers on the address the
forward got; the tray menu's "Port forwards" lists it and its "Stop" ends it.
Screenshots go to artifacts/.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.app_socket import wait_for
from tests.engineer import Engineer
from tests.integration.test_forwards_real import DEVICE_WEB_PORT, fetch, web_server
from tests.integration.test_gui_world import (
    filter_to,
    gui_engineer,  # noqa: F401 - the fixture, used by name
    new_window,
    open_devices_window,
    row_center,
    settle_and_shot,
    start_app,
)
from tests.xsession import XSession

pytestmark = pytest.mark.real


def forwards_of(engineer: Engineer) -> list[dict]:
    return json.loads(engineer.fiotray("forward", "list", "--json").stdout)


def test_forward_a_port_from_the_device_menu_and_stop_it_from_the_tray(
    gui_engineer: Engineer,  # noqa: F811
    xsession: XSession,
) -> None:
    engineer, world = gui_engineer, gui_engineer.world
    device = world.devices[0]
    proc, app, log = start_app(engineer, xsession, "fiotray-forwards-world", "--hidden")
    try:
        # The devices window from the tray menu, the device's row, its context menu.
        icon = open_devices_window(xsession, app)
        devices = filter_to(xsession, app, device.name)
        before = set(xsession.visible_windows("fiotray"))
        xsession.click_at(*row_center(devices), button=3)
        new_window(xsession, "fiotray", before, "the row's context menu")
        before = set(xsession.visible_windows("fiotray"))
        xsession.key("p")  # Forward a &port…
        new_window(xsession, "fiotray", before, "the Forward a port dialog")
        # Focus starts on the presets; Tab to the device port (its text selected).
        xsession.key("Tab")
        xsession.type(str(DEVICE_WEB_PORT))
        settle_and_shot(xsession, "x11-world-forward-dialog")
        with web_server(world, device.ns, device.name):
            xsession.key("Return")
            (forward,) = wait_for("the forward started", lambda: forwards_of(engineer), 45)
            assert (forward["device"], forward["remote_port"]) == (device.name, DEVICE_WEB_PORT)
            assert forward["alive"] and forward["url"].startswith("http://127.0.0.1:")
            got = fetch(engineer, forward["url"])
            assert (got.returncode, got.stdout.strip()) == (0, f"hello from {device.name}")

            # The tray menu lists it: Port forwards → the forward → Stop.
            before = set(xsession.visible_windows("fiotray"))
            xsession.click(icon, 3)
            new_window(xsession, "fiotray", before, "the tray menu")
            before = set(xsession.visible_windows("fiotray"))
            xsession.key("p")  # &Port forwards
            new_window(xsession, "fiotray", before, "the Port forwards submenu")
            before = set(xsession.visible_windows("fiotray"))
            xsession.key("Right")  # the forward's own submenu
            new_window(xsession, "fiotray", before, "the forward's submenu")
            settle_and_shot(xsession, "x11-world-tray-forwards")
            xsession.key("s")  # &Stop
            wait_for("the forward stopped", lambda: forwards_of(engineer) == [], 20)
            assert fetch(engineer, forward["url"]).returncode == 1

        assert app.request("quit") == {"ok": True}
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
        engineer.fiotray("forward", "stop", "--all", code=None)
    output = log.read_text(errors="replace")
    assert "Traceback" not in output, output
