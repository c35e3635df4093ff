"""Port forwards in the GUI: the "Forward a port…" dialog, the device menu's entry and
the tray menu's "Port forwards" section (with a stand-in backend call, no ssh)."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtWidgets import QMenu

from fiotray.core.forward import Forward, ForwardSpec
from fiotray.gui import menus
from fiotray.gui.dialogs.forward import OTHER, ForwardDialog
from tests.gui.test_menus import entry, recorder

FACTORY = "demo-factory"
SHOTS = Path(os.environ.get("FIOTRAY_SHOTS", "/tmp/fiotray-shots-forward"))


def _forward(fid: str, remote_port: int, kind: str = "local", alive: bool = True) -> Forward:
    return Forward(
        fid,
        ForwardSpec(FACTORY, "gateway-01", kind, remote_port, 18000 + remote_port),  # type: ignore[arg-type]
        "jump",
        1234,
        f"/r/fwd-{fid}",
        f"/r/fwd-{fid}.log",
        0.0,
        alive,
    )


def _shot(widget, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert widget.grab().save(str(SHOTS / name))


async def test_dialog_presets_ports_and_start(backend, monkeypatch):
    calls = []

    async def start_forward(factory, device, port, *, kind, local_port, save):
        calls.append((factory, device, port, kind, local_port, save))
        return _forward("0000abcd", port)

    monkeypatch.setattr(backend, "start_forward", start_forward)
    dialog = ForwardDialog(backend, factory=FACTORY, device="gateway-01")
    dialog.show()
    _shot(dialog, "forward-dialog.png")
    labels = [dialog.preset.itemText(i) for i in range(dialog.preset.count())]
    assert labels[:5] == [
        "Web UI (HTTP) — port 80",
        "Web UI (HTTPS) — port 443",
        "SSH — port 22",
        "gdbserver — port 2345",
        "adb — port 5555",
    ]
    assert labels[-1] == OTHER
    # Picking a preset sets the port; typing a port picks its preset, or "Other".
    dialog.preset.setCurrentIndex(3)
    assert dialog.port.value() == 2345
    dialog.port.setValue(9999)
    assert dialog.preset.currentText() == OTHER
    dialog.port.setValue(443)
    assert dialog.preset.currentIndex() == 1
    # A reverse forward needs a local port.
    dialog.remote.setChecked(True)
    assert not dialog.ok_button.isEnabled()
    assert "needs the local port" in dialog.message.text()
    dialog.remote.setChecked(False)
    assert dialog.ok_button.isEnabled()

    started = []
    dialog.forwardStarted.connect(started.append)
    dialog.save.setChecked(True)
    dialog.ok_button.click()
    assert dialog.work is not None
    await dialog.work
    assert calls == [(FACTORY, "gateway-01", 443, "local", None, True)]
    assert [f.id for f in started] == ["0000abcd"] and not dialog.isVisible()
    dialog.deleteLater()


async def test_dialog_shows_why_a_forward_failed(backend, monkeypatch):
    from fiotray.core.errors import FiotrayError

    async def start_forward(*args, **kwargs):
        raise FiotrayError("The forward to gateway-01 port 80 failed: Connection refused")

    monkeypatch.setattr(backend, "start_forward", start_forward)
    dialog = ForwardDialog(backend, factory=FACTORY, device="gateway-01")
    dialog.show()
    dialog.ok_button.click()
    assert dialog.work is not None
    await dialog.work
    assert dialog.isVisible() and "Connection refused" in dialog.message.text()
    _shot(dialog, "forward-dialog-error.png")
    dialog.deleteLater()


async def test_tray_menu_lists_forwards_with_open_and_stop(backend, monkeypatch):
    actions, _calls = recorder()
    stopped: list[str] = []
    opened: list[str] = []
    actions = menus.MenuActions(**{**actions.__dict__, "stop_forward": stopped.append})
    monkeypatch.setattr(menus, "open_url", opened.append)
    backend.forwards = [
        _forward("0000000a", 80),
        _forward("0000000b", 2345),
        _forward("0000000c", 9000, kind="remote", alive=False),
    ]
    menu = QMenu()
    menus.fill_tray_menu(menu, backend, actions)
    forwards = entry(menu, "Port forwards").menu()
    subs = [a.text() for a in forwards.actions()]
    assert subs == [
        "gateway-01:80 → 127.0.0.1:18080",
        "gateway-01:2345 → 127.0.0.1:20345",
        "127.0.0.1:27000 → gateway-01:9000 (dropped)",
    ]
    web = forwards.actions()[0].menu()
    entry(web, "Open in browser").trigger()
    assert opened == ["http://127.0.0.1:18080"]
    gdb = forwards.actions()[1].menu()
    assert [a.text().replace("&", "") for a in gdb.actions()] == ["Copy address", "Stop"]
    entry(gdb, "Stop").trigger()
    assert stopped == ["0000000b"]
    menu.popup(menu.pos())
    forwards.popup(menu.pos())
    _shot(forwards, "tray-forwards.png")
    menu.hide()
    forwards.hide()
    # No forwards: no section.
    backend.forwards = []
    menus.fill_tray_menu(menu, backend, actions)
    assert not [a for a in menu.actions() if "Port forwards" in a.text()]
    menu.deleteLater()


async def test_tray_menu_starts_saved_forwards_that_are_not_running(backend):
    actions, _calls = recorder()
    restored: list[bool] = []
    actions = menus.MenuActions(
        **{
            **actions.__dict__,
            "stop_forward": lambda fid: None,
            "restore_forwards": lambda: restored.append(True),
        }
    )
    web = _forward("0000000a", 80)
    backend.forwards = [web]
    backend.saved_forwards = [
        ForwardSpec(FACTORY, "gateway-01", "local", 80),  # running (any local port)
        ForwardSpec(FACTORY, "gateway-01", "local", 2345, 2345),
    ]
    menu = QMenu()
    menus.fill_tray_menu(menu, backend, actions)
    forwards = entry(menu, "Port forwards").menu()
    start = forwards.actions()[0]
    assert start.text() == "Start saved forwards (1)"
    start.trigger()
    assert restored == [True]
    # Only saved ones, none running: the section has the one entry.
    backend.forwards = []
    backend.saved_forwards = [ForwardSpec(FACTORY, "gateway-01", "local", 80)]
    menus.fill_tray_menu(menu, backend, actions)
    forwards = entry(menu, "Port forwards").menu()
    assert [a.text() for a in forwards.actions()] == ["Start saved forwards (1)"]
    menu.deleteLater()


async def test_device_menu_opens_the_forward_dialog(backend):
    from PySide6.QtWidgets import QApplication

    from fiotray.gui.devices_window import DevicesWindow
    from tests.gui.test_devices_window import actions, find_row, show_loaded

    window = DevicesWindow(backend)
    await show_loaded(window)
    await backend.connect(FACTORY)
    row, device = find_row(window, lambda d: d.vpn_enabled and not d.vpn_pending)
    menu = window.context_menu_for(row)
    forward = actions(menu)["forward"]
    assert forward.isEnabled() and forward.text().replace("&", "").startswith("Forward a port")
    forward.trigger()
    (dialog,) = [w for w in QApplication.topLevelWidgets() if isinstance(w, ForwardDialog)]
    assert dialog.device == device.device.name and dialog.factory == FACTORY
    dialog.reject()
    menu.deleteLater()
    window.hide()
    window.deleteLater()


async def test_backend_tells_once_when_a_forward_drops(backend, monkeypatch):
    import asyncio

    from fiotray.ops import forwards

    notices: list[tuple[str, str, str]] = []
    backend.notice.connect(lambda *n: notices.append(n))
    checked = asyncio.Event()

    class Supervisor:
        def __init__(self, services, notify, **kw):
            self.notify = notify

        async def check_once(self):
            f = _forward("0000000e", 80, alive=False)
            self.notify(forwards.ForwardEvent("dropped", f, "The forward dropped; restarting."))
            checked.set()

    monkeypatch.setattr(forwards, "ForwardSupervisor", Supervisor)
    task = backend.spawn(backend.supervise_forwards(restore=False))
    await asyncio.wait_for(checked.wait(), 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert notices == [("Port forward", "The forward dropped; restarting.", "warning")]
