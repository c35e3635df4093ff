"""The tray icon offscreen: its menu, its clicks, its icons and when it speaks up."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import types
from typing import Any, ClassVar

import pytest
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QMessageBox, QSystemTrayIcon, QWidget

from fiotray.core.tunnels import State, TunnelStatus
from fiotray.gui import dialogs, icons
from fiotray.gui.menus import menu_text, state_text
from fiotray.gui.tray import TrayIcon
from tests.gui.waits import until

TUNNEL = "demo-factory"


@pytest.fixture
async def tray(backend):
    t = TrayIcon(backend)
    t.messages = []  # type: ignore[attr-defined]
    # Instance attribute: notify() calls self.showMessage, which now records instead.
    t.showMessage = lambda *a: t.messages.append(a)  # type: ignore[method-assign]
    await backend.refresh_tunnels()
    yield t
    t.hide()
    t.deleteLater()


def show_menu(tray: TrayIcon) -> list[QAction]:
    tray.menu.aboutToShow.emit()
    return tray.menu.actions()


def action(actions: list[QAction], prefix: str) -> QAction:
    found = [a for a in actions if plain(a).startswith(prefix)]
    assert found, f"no action {prefix!r} in {[plain(a) for a in actions]}"
    return found[0]


def plain(action: QAction) -> str:
    """The entry's text as shown: mnemonic markers gone, an escaped '&&' one '&'."""
    return action.text().replace("&&", "\0").replace("&", "").replace("\0", "&")


async def test_menu_is_rebuilt_on_show_and_reflects_live_state(tray, backend):
    entry = action(show_menu(tray), TUNNEL)
    assert entry.text() == f"{TUNNEL} — disconnected"
    assert entry.isCheckable() and not entry.isChecked()
    await backend.connect(TUNNEL)
    entry = action(show_menu(tray), TUNNEL)
    assert entry.text().startswith(f"{TUNNEL} — connected, handshake")
    assert entry.isChecked()
    texts = [plain(a) for a in tray.menu.actions()]
    assert texts[0] == "fiotray (demo)"
    for expected in (
        "Devices…",
        "Sign in…",
        f"Sign out of {TUNNEL}",
        "Add tunnel…",
        "Import WireGuard config…",
        "Settings…",
        "Help",
        "Quit",
    ):
        assert expected in texts
    # Rebuilding again does not pile up entries.
    assert len(show_menu(tray)) == len(texts)


async def test_tunnel_entry_and_left_click_reach_backend_toggle(tray, backend, monkeypatch):
    calls = []
    real_toggle = backend.toggle

    async def toggle(name: str) -> TunnelStatus:
        calls.append(name)
        return await real_toggle(name)

    monkeypatch.setattr(backend, "toggle", toggle)
    action(show_menu(tray), TUNNEL).trigger()
    await until(lambda: backend.tunnel_states[TUNNEL].state is State.CONNECTED)
    backend.save_settings(dataclasses.replace(backend.settings, left_click="toggle"))
    tray.activated.emit(QSystemTrayIcon.ActivationReason.Trigger)
    await until(lambda: backend.tunnel_states[TUNNEL].state is State.DISCONNECTED)
    assert calls == [TUNNEL, TUNNEL]
    assert tray.messages == []  # both were asked for: nothing to say


async def test_a_left_click_opens_the_menu_unless_set_otherwise(tray, backend, monkeypatch):
    toggled, popped, devices = [], [], []
    monkeypatch.setattr(tray, "toggle", toggled.append)
    monkeypatch.setattr(tray, "popup_menu", lambda: popped.append(True))
    tray.devicesRequested.connect(devices.append)
    # By default: the menu, never the tunnel (a stray click prompted for a password).
    assert backend.settings.left_click == "menu"
    tray.activated.emit(QSystemTrayIcon.ActivationReason.Trigger)
    assert (popped, toggled, devices) == ([True], [], [])
    backend.save_settings(dataclasses.replace(backend.settings, left_click="window"))
    tray.activated.emit(QSystemTrayIcon.ActivationReason.Trigger)
    assert (popped, toggled, devices) == ([True], [], [None])
    backend.save_settings(dataclasses.replace(backend.settings, left_click="toggle"))
    tray.activated.emit(QSystemTrayIcon.ActivationReason.Trigger)
    assert (popped, toggled, devices) == ([True], [TUNNEL], [None])
    # Toggle with no tunnel to toggle: the menu, which has "Add tunnel…".
    backend.services.tunnels.remove(TUNNEL)
    tray.activated.emit(QSystemTrayIcon.ActivationReason.Trigger)
    assert (popped, toggled) == ([True, True], [TUNNEL])


async def test_quit_and_devices_entries_emit(tray):
    quits, devices = [], []
    tray.quitRequested.connect(lambda: quits.append(True))
    tray.devicesRequested.connect(devices.append)
    actions = show_menu(tray)
    action(actions, "Devices…").trigger()
    action(actions, "Quit").trigger()
    tray.activated.emit(QSystemTrayIcon.ActivationReason.MiddleClick)
    assert quits == [True]
    assert devices == [TUNNEL, None]


async def test_recent_and_favourite_devices_open_ssh(tray, backend, monkeypatch):
    opened = []

    async def open_ssh(factory: str, device: str, route: str | None = None) -> int:
        opened.append((factory, device))
        return 1

    monkeypatch.setattr(backend, "open_ssh", open_ssh)
    backend.save_settings(
        dataclasses.replace(
            backend.settings,
            favourites=((TUNNEL, "fav-1"),),
            recent=((TUNNEL, "dev-2"), (TUNNEL, "fav-1")),
        )
    )
    actions = show_menu(tray)
    favourites = action(actions, "Favourites").menu()
    recent = action(actions, "Recent devices").menu()
    assert isinstance(favourites, QMenu) and isinstance(recent, QMenu)
    assert [a.text() for a in favourites.actions()] == ["fav-1"]
    assert [a.text() for a in recent.actions()] == ["dev-2"]  # favourites not twice
    device = recent.actions()[0].menu()
    assert [plain(a) for a in device.actions()] == [
        "Open SSH terminal",
        "Copy VPN address",
        "Forward a port…",
    ]
    device.actions()[0].trigger()
    await until(lambda: opened)
    assert opened == [(TUNNEL, "dev-2")]


class FakeDialog(QWidget):
    opened: ClassVar[list[tuple[str, tuple[Any, ...]]]] = []

    def __init__(self, *args: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.args = args

    def open(self) -> None:
        FakeDialog.opened.append((type(self).__name__, self.args))
        self.show()

    def exec(self) -> int:
        raise AssertionError("exec() runs a nested event loop")


DIALOG_MODULES = {
    "sign_in": "SignInDialog",
    "add_tunnel": "AddFoundriesTunnelDialog",
    "import_tunnel": "ImportTunnelDialog",
    "settings": "SettingsDialog",
    "help": "HelpDialog",
}


@pytest.fixture
def fake_dialogs(monkeypatch):
    """Stand-ins for the dialogs' modules, which the menu's entries import when they fire."""
    from PySide6.QtCore import Signal

    for module_name, name in DIALOG_MODULES.items():
        module = types.ModuleType(f"fiotray.gui.dialogs.{module_name}")
        setattr(module, name, type(name, (FakeDialog,), {"finished": Signal(int)}))
        monkeypatch.setitem(sys.modules, module.__name__, module)
    FakeDialog.opened = []


async def test_dialog_entries_open_without_exec(tray, backend, fake_dialogs):
    actions = show_menu(tray)
    for text in ("Sign in…", "Add tunnel…", "Import WireGuard config…", "Settings…", "Help"):
        action(actions, text).trigger()
    assert FakeDialog.opened == [
        ("SignInDialog", (backend,)),
        ("AddFoundriesTunnelDialog", (backend,)),
        ("ImportTunnelDialog", (backend,)),
        ("SettingsDialog", (backend,)),
        ("HelpDialog", (backend,)),
    ]
    # A second click raises the open one instead of stacking another.
    first = tray._dialogs[dialogs.settings_dialog]
    action(show_menu(tray), "Settings…").trigger()
    assert tray._dialogs[dialogs.settings_dialog] is first
    assert len(FakeDialog.opened) == 5
    first.finished.emit(0)
    assert dialogs.settings_dialog not in tray._dialogs


async def test_missing_dialogs_are_one_message_not_a_crash(tray, monkeypatch):
    monkeypatch.setitem(sys.modules, "fiotray.gui.dialogs.settings", None)  # import fails
    assert tray.open_dialog(dialogs.settings_dialog) is None
    assert len(tray.messages) == 1


async def test_sign_out_asks_first(tray, backend, monkeypatch):
    signed_out = []

    async def sign_out(factory: str) -> None:
        signed_out.append(factory)

    monkeypatch.setattr(backend, "sign_out", sign_out)
    action(show_menu(tray), f"Sign out of {TUNNEL}").trigger()
    box = tray._dialogs[("sign-out", TUNNEL)]
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert signed_out == []
    box.done(QMessageBox.StandardButton.Yes)
    await until(lambda: signed_out)
    assert signed_out == [TUNNEL]


async def test_removing_a_tunnel_asks_first_and_details_show_it(tray, backend):
    from PySide6.QtWidgets import QMenu

    menu = tray.menu
    show_menu(tray)
    sub = next(m for m in menu.findChildren(QMenu) if m.title().startswith(TUNNEL))
    action(sub.actions(), "Details…").trigger()
    box = tray._dialogs[("details", TUNNEL)]
    tunnel = backend.tunnels()[0]
    assert box.isVisible() and f"My public key: {tunnel.public_key}" in box.text()
    box.done(0)
    action(sub.actions(), "Remove…").trigger()
    box = tray._dialogs[("remove-tunnel", TUNNEL)]
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert [t.name for t in backend.tunnels()] == [TUNNEL]  # nothing yet
    box.done(QMessageBox.StandardButton.Yes)
    await until(lambda: not backend.tunnels())


async def test_sign_in_again_is_first_in_the_menu_and_fills_the_dialog_in(tray, backend):
    backend.needs_sign_in.add(TUNNEL)
    entries = show_menu(tray)
    assert plain(entries[1]) == f"Sign in again to {TUNNEL}…"
    entries[1].trigger()
    dlg = tray._dialogs[dialogs.sign_in_dialog]
    saved = backend.factories()[0]
    assert dlg.windowTitle() == f"Sign in again to {TUNNEL}"
    assert dlg.token_factory.text() == TUNNEL
    # Its own API, never the public one by default: the new token goes where the old did.
    assert dlg.api_url.text() == saved.api_url and dlg.api_url.isVisibleTo(dlg)
    assert dlg.token.hasFocus() or dlg.focusWidget() is dlg.token
    assert "expired or was revoked" in dlg.message.text()
    dlg.reject()


def test_icons_differ_per_state(qapp):
    images = {}
    for state in State:
        icon = icons.state_icon(state, theme=False)
        assert not icon.isNull(), state
        images[state] = icon.pixmap(22, 22).toImage()
        assert not images[state].isNull()
    states = list(State)
    for i, a in enumerate(states):
        for b in states[i + 1 :]:
            assert images[a] != images[b], (a, b)
    assert icons.svg_path("fiotray").is_file()


def test_summary_state_picks_what_needs_attention():
    assert icons.summary_state([]) is State.DISCONNECTED
    assert icons.summary_state([State.DISCONNECTED, State.CONNECTED]) is State.CONNECTED
    assert icons.summary_state([State.CONNECTED, State.STALE]) is State.STALE
    assert icons.summary_state([State.ERROR, State.CONNECTING]) is State.ERROR


async def test_tooltip_and_icon_follow_the_tunnel(tray, backend):
    assert tray.toolTip() == f"fiotray (demo)\n{TUNNEL}: disconnected"
    disconnected = tray.icon().pixmap(22, 22).toImage()
    await backend.connect(TUNNEL)
    assert tray.toolTip().startswith(f"fiotray (demo)\n{TUNNEL}: connected, handshake")
    assert tray.summary() is State.CONNECTED
    assert tray.icon().pixmap(22, 22).toImage() != disconnected


def test_state_text_and_menu_text():
    s = TunnelStatus("acme", "fioacme", State.CONNECTED, latest_handshake=1000.0)
    assert state_text(s, now=1012.0) == "connected, handshake 12 s ago"
    assert state_text(s, now=1001.0) == "connected, handshake just now"
    assert state_text(s, now=1000.0 + 600) == "connected, handshake 10 min ago"
    stale = dataclasses.replace(s, state=State.STALE)
    assert state_text(stale, now=1000.0 + 400) == "server unreachable, no handshake for 7 min"
    never = TunnelStatus("acme", "fioacme", State.STALE)
    assert state_text(never) == "server unreachable"
    waiting = TunnelStatus("acme", "fioacme", State.WAITING)
    assert state_text(waiting) == "waiting for the server to admit this laptop"
    assert state_text(None) == "checking…"
    assert menu_text("a&b\nc") == "a&&b c"
    assert len(menu_text("x" * 500)) == 80


async def test_a_drop_is_announced(tray, backend):
    await backend.connect(TUNNEL)  # not through the tray: its state is simply observed
    iface = backend.tunnels()[0].interface
    await backend.services.controller.helper.down(iface)  # the tunnel dies behind our back
    await backend.refresh_tunnels()
    assert backend.tunnel_states[TUNNEL].state is State.DISCONNECTED
    ((title, _message, icon, _ms),) = tray.messages
    assert title == f"{TUNNEL} disconnected"
    assert icon == QSystemTrayIcon.MessageIcon.Warning


async def test_asked_for_changes_stay_quiet_and_notifications_can_be_off(tray, backend):
    tray.toggle(TUNNEL)  # user connects
    await until(lambda: backend.tunnel_states[TUNNEL].state is State.CONNECTED)
    tray.toggle(TUNNEL)  # user disconnects
    await until(lambda: backend.tunnel_states[TUNNEL].state is State.DISCONNECTED)
    assert tray.messages == []
    backend.save_settings(dataclasses.replace(backend.settings, notifications=False))
    await backend.connect(TUNNEL)
    await backend.services.controller.helper.down(backend.tunnels()[0].interface)
    await backend.refresh_tunnels()
    assert tray.messages == []


async def test_a_disconnect_asked_for_elsewhere_is_no_surprise(tray, backend):
    # The devices window's Disconnect button goes to the backend, not through the tray.
    await backend.connect(TUNNEL)
    await backend.disconnect(TUNNEL)
    assert backend.tunnel_states[TUNNEL].state is State.DISCONNECTED
    assert tray.messages == []
    # ... while the same change a minute after it was asked for is news again.
    await backend.connect(TUNNEL)
    backend.asked[TUNNEL] = (State.CONNECTED, backend.asked.get(TUNNEL, (None, 0.0))[1] - 60)
    await backend.services.controller.helper.down(backend.tunnels()[0].interface)
    await backend.refresh_tunnels()
    assert [m[0] for m in tray.messages] == [f"{TUNNEL} disconnected"]


async def test_stale_handshake_and_failures_are_announced(tray, backend):
    base = TunnelStatus(TUNNEL, "fiodemo", State.CONNECTED, latest_handshake=1.0)
    backend._on_tunnel(base)
    backend._on_tunnel(dataclasses.replace(base, state=State.STALE))
    assert [m[0] for m in tray.messages] == [f"{TUNNEL}: server unreachable"]
    backend.notice.emit("Enable VPN", "No device named 'x'.", "error")
    backend.notice.emit("Saved", "Settings saved.", "info")
    assert [m[0] for m in tray.messages] == [f"{TUNNEL}: server unreachable", "Enable VPN"]
    assert tray.messages[-1][2] == QSystemTrayIcon.MessageIcon.Critical


async def test_waiting_for_admission_and_the_admission_are_announced(tray, backend):
    base = TunnelStatus(TUNNEL, "fiodemo", State.CONNECTING)
    backend._on_tunnel(base)
    detail = "waiting for the server to admit this laptop: its admin runs ..."
    backend._on_tunnel(dataclasses.replace(base, state=State.WAITING, detail=detail))
    backend._on_tunnel(dataclasses.replace(base, state=State.CONNECTED, latest_handshake=5.0))
    assert [(m[0], m[1]) for m in tray.messages] == [
        (f"{TUNNEL}: waiting for the server", detail),
        (f"{TUNNEL} connected", "The VPN server admitted this laptop."),
    ]
    assert tray.summary() is State.CONNECTED


async def test_failed_connect_is_one_message(tray, backend, monkeypatch):
    from fiotray.core.errors import VpnError

    async def up(interface: str, config: str) -> None:
        raise VpnError("Not authorized to manage fiotray tunnels (polkit refused).")

    monkeypatch.setattr(backend.services.controller.helper, "up", up)
    tray.toggle(TUNNEL)
    await until(lambda: tray.messages)
    await asyncio.sleep(0.1)
    ((title, message, _icon, _ms),) = tray.messages
    assert title == f"Connect {TUNNEL}"
    assert "polkit refused" in message
    assert backend.tunnel_states[TUNNEL].state is State.ERROR
    entry = action(show_menu(tray), TUNNEL)
    assert entry.text() == f"{TUNNEL} — failed"
    assert any("polkit refused" in a.text() for a in tray.menu.actions())


def test_hicolor_copies_match_the_packaged_icons():
    root = icons.SVG_DIR.parents[2] / "resources" / "icons" / "hicolor" / "scalable"
    assert (root / "apps" / "fiotray.svg").read_bytes() == icons.svg_path("fiotray").read_bytes()
    for state in State:
        name = icons.state_icon_name(state)
        assert (root / "status" / f"{name}.svg").read_bytes() == icons.svg_path(name).read_bytes()


async def test_a_successor_takes_over_the_backend_and_the_open_dialogs(tray, backend, fake_dialogs):
    """The icon the app makes when a tray appears late: same backend, same dialogs."""
    action(show_menu(tray), "Settings…").trigger()
    dialog = tray._dialogs[dialogs.settings_dialog]
    new = tray.successor()
    try:
        assert new.backend is backend
        assert new.toolTip() == f"fiotray (demo)\n{TUNNEL}: disconnected"
        with pytest.raises(RuntimeError, match="attach"):
            _ = tray.backend  # the old icon follows nothing any more
        # The settings entry raises the open dialog instead of opening a second one.
        action(show_menu(new), "Settings…").trigger()
        assert len(FakeDialog.opened) == 1 and new._dialogs[dialogs.settings_dialog] is dialog
        dialog.finished.emit(0)  # its handler was set up by the old icon
        assert dialogs.settings_dialog not in new._dialogs
    finally:
        new.deleteLater()


async def test_ssh_from_the_menu_offers_to_connect_first(tray, backend, monkeypatch):
    from fiotray.core import terminal

    launched: list[str] = []

    async def launch(argv: list[str], *, setting: str | None = None, title: str = "") -> int:
        launched.append(title)
        return 4242

    monkeypatch.setattr(terminal, "launch_in_terminal", launch)
    rows = await backend.load_devices(TUNNEL)
    device = next(r.device.name for r in rows if r.vpn_enabled and r.vpn_address)
    await backend.refresh_tunnels()
    tray.ssh(TUNNEL, device)
    # The tunnel is down: a question, not a notice telling which command to run.
    box = await until(lambda: tray._dialogs.get(("connect-ssh", TUNNEL, device)))
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert "which is down" in box.text()
    assert box.button(QMessageBox.StandardButton.Yes).text() == "Connect and open SSH"
    assert launched == [] and tray.messages == []
    box.done(QMessageBox.StandardButton.Yes)
    await until(lambda: launched)
    assert backend.tunnel_states[TUNNEL].state is State.CONNECTED
    assert launched == [f"{device} — {TUNNEL} (fiotray SSH)"]


async def test_copy_a_devices_address_from_the_menu(tray, backend):
    from PySide6.QtGui import QGuiApplication

    rows = await backend.load_devices(TUNNEL)
    on = next(r for r in rows if r.vpn_enabled and r.vpn_address)
    off = next(r for r in rows if not r.vpn_enabled)
    tray.copy_address(TUNNEL, on.device.name)
    await until(lambda: QGuiApplication.clipboard().text() == on.vpn_address)
    tray.copy_address(TUNNEL, off.device.name)
    await until(lambda: tray.messages)
    assert "has no VPN address" in str(tray.messages[-1])
    assert QGuiApplication.clipboard().text() == on.vpn_address


async def test_connect_when_fiotray_starts_from_the_tunnels_menu(tray, backend):
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication, QMenu

    show_menu(tray)
    sub = next(m for m in tray.menu.findChildren(QMenu) if m.title().startswith(TUNNEL))
    on = action(sub.actions(), "Connect when fiotray starts")
    assert on.isCheckable() and not on.isChecked()
    on.trigger()
    assert backend.tunnels()[0].autoconnect is True
    show_menu(tray)
    # Last time's submenus go first: the entry read next is the rebuilt one.
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    sub = next(m for m in tray.menu.findChildren(QMenu) if m.title().startswith(TUNNEL))
    on = action(sub.actions(), "Connect when fiotray starts")
    assert on.isChecked()
    on.trigger()
    assert backend.tunnels()[0].autoconnect is False


async def test_forward_a_port_from_a_recent_device(tray, backend):
    from fiotray.gui.dialogs.forward import ForwardDialog

    backend.save_settings(dataclasses.replace(backend.settings, recent=((TUNNEL, "dev-2"),)))
    recent = action(show_menu(tray), "Recent devices").menu()
    device = recent.actions()[0].menu()
    action(device.actions(), "Forward a port…").trigger()
    dialog = tray._dialogs[("forward", TUNNEL, "dev-2")]
    assert isinstance(dialog, ForwardDialog) and dialog.isVisible()
    assert (dialog.factory, dialog.device) == (TUNNEL, "dev-2")
    assert dialog.windowTitle() == "Forward a port of dev-2"
    action(device.actions(), "Forward a port…").trigger()  # the same one, raised
    forwards = [k for k in tray._dialogs if isinstance(k, tuple) and k[0] == "forward"]
    assert forwards == [("forward", TUNNEL, "dev-2")]
    dialog.close()


async def test_reach_results_are_told_one_per_device_or_one_per_batch(tray, backend):
    from fiotray.ops.reach import Reach

    ok = Reach(TUNNEL, "gw-1", "reachable", "", "10.42.42.5", "jump", 1.0, 2.0, 0.2)
    offline = Reach(
        TUNNEL,
        "gw-2",
        "pending",
        "the device is offline",
        "",
        "jump",
        None,
        None,
        None,
        waited_s=900,
    )
    backend.reachResult.emit(ok)
    backend.reachResult.emit(offline)
    backend.reachBatch.emit([ok, offline])
    titles = [m[0] for m in tray.messages]
    assert titles == ["gw-1 is reachable", "gw-2 is not reachable", "1 of 2 devices reachable"]
    assert tray.messages[1][1] == "After 15 min: the device is offline."
    assert tray.messages[2][1] == "gw-2: the device is offline."
    assert tray.notifications[-1] == ("1 of 2 devices reachable", "gw-2: the device is offline.")
