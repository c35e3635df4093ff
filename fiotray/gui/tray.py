"""The tray icon: the tunnels' state at a glance, every action one menu away.

The menu is rebuilt each time it is about to show (Vorta's idiom), so it is
never out of date and needs no bookkeeping. A left click toggles the default
tunnel, but hosts differ on clicks, so everything is also in the menu.

Notifications follow one rule: say what the user did not ask for (a tunnel
that dropped or went stale, an expired sign-in) and failures of what they
asked for; never echo a success they just clicked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QCursor
from PySide6.QtWidgets import QMenu, QMessageBox, QSystemTrayIcon, QWidget

from fiotray.core import format as fmt
from fiotray.core.errors import FiotrayError
from fiotray.core.tunnelstate import State, TunnelStatus
from fiotray.gui import icons

if TYPE_CHECKING:
    from fiotray.gui.backend import Backend

log = logging.getLogger(__name__)

# How long a click on a tunnel explains the state changes that follow it.
USER_ACTION_WINDOW = 30.0
MESSAGE_MS = 8000
MAX_MENU_TEXT = 80
UP_STATES = (State.CONNECTED, State.CONNECTING, State.STALE)


format_age = fmt.duration


def state_text(status: TunnelStatus | None, now: float | None = None) -> str:
    """What one line of menu or tooltip says of a tunnel: "connected, handshake 12 s ago"."""
    if status is None:
        return "checking…"
    age = status.handshake_age(now)
    if status.state is State.CONNECTED:
        if age is None:
            return "connected"
        return (
            "connected, handshake just now"
            if age < 5
            else f"connected, handshake {format_age(age)} ago"
        )
    if status.state is State.CONNECTING:
        return "connecting…"
    if status.state is State.STALE:
        if age is None:
            return "no handshake yet"
        return f"no handshake for {format_age(age)}"
    if status.state is State.ERROR:
        return "failed"
    return "disconnected"


def menu_text(text: str) -> str:
    """Names from a server or a file, safe as a menu label: one line, no mnemonics, bounded."""
    return fmt.safe_text(" ".join(text.split()), MAX_MENU_TEXT).replace("&", "&&")


class TrayIcon(QSystemTrayIcon):
    devicesRequested = Signal(object)  # factory name, or None for the default
    quitRequested = Signal()

    def __init__(self, backend: Backend | None = None, parent: QObject | None = None) -> None:
        """Without a backend the icon can show at once, before the slower start-up work;
        `attach` then brings it to life."""
        super().__init__(parent)
        self._backend: Backend | None = None
        self._seen: dict[str, State] = {}
        self._dialogs: dict[str, QWidget] = {}
        self._submenus: list[QMenu] = []
        # No parent: a tray icon is not a widget. Kept on self so it lives as long as the icon.
        self.menu = QMenu()
        self.menu.aboutToShow.connect(self.rebuild_menu)
        self.setContextMenu(self.menu)
        self.activated.connect(self._on_activated)
        self.setIcon(icons.state_icon(State.DISCONNECTED))
        self.setToolTip("fiotray: starting…")
        if backend is not None:
            self.attach(backend)

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            raise RuntimeError("TrayIcon.attach() was not called")
        return self._backend

    def attach(self, backend: Backend) -> None:
        self._backend = backend
        backend.tunnelChanged.connect(self._on_tunnel)
        backend.notice.connect(self._on_notice)
        backend.profilesChanged.connect(self.refresh)
        for status in backend.tunnel_states.values():
            self._seen[status.profile] = status.state
        self.rebuild_menu()
        self.refresh()

    def detach(self) -> None:
        """Stop following the backend (the app is replacing it)."""
        backend = self._backend
        if backend is None:
            return
        backend.tunnelChanged.disconnect(self._on_tunnel)
        backend.notice.disconnect(self._on_notice)
        backend.profilesChanged.disconnect(self.refresh)
        self._backend = None
        self._seen.clear()

    def close_dialogs(self) -> None:
        for dialog in list(self._dialogs.values()):
            dialog.close()
        self._dialogs.clear()

    # -- state ---------------------------------------------------------------------------

    @property
    def title(self) -> str:
        return "fiotray (demo)" if self.backend.demo else "fiotray"

    def _tunnel_names(self) -> list[str]:
        try:
            return [t.name for t in self.backend.tunnels()]
        except FiotrayError as exc:
            log.warning("cannot list tunnels: %s", exc)
            return []

    def summary(self) -> State:
        states = self.backend.tunnel_states
        return icons.summary_state([states[n].state for n in self._tunnel_names() if n in states])

    def tooltip_text(self, now: float | None = None) -> str:
        names = self._tunnel_names()
        lines = [self.title]
        if not names:
            lines.append("No tunnel configured")
        for name in names:
            lines.append(f"{name}: {state_text(self.backend.tunnel_states.get(name), now)}")
        return "\n".join(lines)

    def refresh(self) -> None:
        """Icon and tooltip from the backend's current state (cheap; called on every change)."""
        self.setIcon(icons.state_icon(self.summary()))
        self.setToolTip(self.tooltip_text())

    # -- the menu --------------------------------------------------------------------------

    def _add(self, menu: QMenu, text: str, slot: Callable[[], Any] | None = None) -> QAction:
        # Fixed entries carry an &-mnemonic (a key opens them from the open menu); text
        # from data goes through menu_text(), which escapes its '&'.
        action = menu.addAction(text)
        if slot is None:
            action.setEnabled(False)
        else:
            action.triggered.connect(lambda _checked=False: slot())
        return action

    def _submenu(self, title: str) -> QMenu:
        sub = self.menu.addMenu(title)
        self._submenus.append(sub)
        return sub

    def rebuild_menu(self) -> None:
        menu = self.menu
        menu.clear()
        # clear() leaves submenus alive (the menu is their parent): drop last time's.
        for sub in self._submenus:
            sub.deleteLater()
        self._submenus.clear()
        if self._backend is None:
            self._add(menu, "fiotray: starting…")
            return
        self._add(menu, self.title)
        try:
            self._tunnel_section(menu)
            menu.addSeparator()
            factories = [p.factory for p in self.backend.factories()]
            self._devices_section(menu, factories)
            menu.addSeparator()
            self._account_section(menu, factories)
        except FiotrayError as exc:
            # A hand-edited profiles file: the menu still opens and says what is wrong.
            self._add(menu, menu_text(str(exc)))
        menu.addSeparator()
        self._add(menu, "&Settings…", lambda: self.open_dialog("SettingsDialog"))
        self._add(menu, "&Help", lambda: self.open_dialog("HelpDialog"))
        menu.addSeparator()
        self._add(menu, "&Quit", self.quitRequested.emit)

    def _tunnel_section(self, menu: QMenu) -> None:
        tunnels = self.backend.tunnels()
        if not tunnels:
            self._add(menu, "No tunnel configured")
        now = time.time()
        for tunnel in tunnels:
            status = self.backend.tunnel_states.get(tunnel.name)
            text = f"{tunnel.name} — {state_text(status, now)}"
            action = self._add(menu, menu_text(text), lambda n=tunnel.name: self.toggle(n))
            action.setCheckable(True)
            action.setChecked(status is not None and status.state in UP_STATES)
            action.setToolTip("Disconnect" if action.isChecked() else "Connect")
            if status is not None and status.detail:
                self._add(menu, "    " + menu_text(status.detail))

    def _devices_section(self, menu: QMenu, factories: list[str]) -> None:
        if len(factories) <= 1:
            factory = factories[0] if factories else None
            self._add(menu, "&Devices…", lambda: self.devicesRequested.emit(factory))
        else:
            for f in factories:
                self._add(
                    menu, menu_text(f"Devices — {f}…"), lambda f=f: self.devicesRequested.emit(f)
                )
        settings = self.backend.settings
        favourites = list(settings.favourites)
        recent = [r for r in settings.recent if r not in favourites]
        several = len({f for f, _ in favourites + recent}) > 1
        for title, pairs in (("Favourites", favourites), ("Recent devices", recent)):
            if not pairs:
                continue
            sub = self._submenu(title)
            for factory, device in pairs:
                label = f"SSH to {device}" + (f" ({factory})" if several else "")
                self._add(sub, menu_text(label), lambda f=factory, d=device: self.ssh(f, d))

    def _account_section(self, menu: QMenu, factories: list[str]) -> None:
        self._add(menu, "Sign &in…", lambda: self.open_dialog("SignInDialog"))
        for f in factories:
            self._add(menu, menu_text(f"Sign out of {f}"), lambda f=f: self.confirm_sign_out(f))
        only = factories[0] if len(factories) == 1 else None
        self._add(menu, "Add &tunnel…", lambda: self.open_dialog("AddFoundriesTunnelDialog", only))
        self._add(menu, "I&mport WireGuard config…", lambda: self.open_dialog("ImportTunnelDialog"))

    # -- actions ----------------------------------------------------------------------------

    def _on_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if self._backend is None:
            return
        if reason is QSystemTrayIcon.ActivationReason.Trigger:
            tunnel = self.backend.default_tunnel()
            if tunnel is not None:
                self.toggle(tunnel.name)
            else:
                # Nothing to toggle yet: the menu has "Add tunnel…".
                self.menu.popup(QCursor.pos())
        elif reason is QSystemTrayIcon.ActivationReason.MiddleClick:
            self.devicesRequested.emit(None)

    def toggle(self, name: str) -> None:
        status = self.backend.tunnel_states.get(name)
        going_down = status is not None and status.state is not State.DISCONNECTED
        what = f"{'Disconnect' if going_down else 'Connect'} {name}"
        self.backend.spawn(self.backend.toggle(name), what=what)

    def ssh(self, factory: str, device: str) -> None:
        self.backend.spawn(self.backend.open_ssh(factory, device), what=f"SSH to {device}")

    def confirm_sign_out(self, factory: str) -> None:
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Sign out",
            f"Sign out of {factory}? Its secrets are removed from the keyring.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
        )

        def done(result: int) -> None:
            self._dialogs.pop("sign-out", None)
            if result == QMessageBox.StandardButton.Yes:
                self.backend.spawn(self.backend.sign_out(factory), what=f"Sign out of {factory}")

        self._show(box, "sign-out", done)

    def open_dialog(self, name: str, *args: Any) -> QWidget | None:
        """Open one of fiotray.gui.dialogs (imported on first use), or raise the open one."""
        current = self._dialogs.get(name)
        if current is not None:
            current.raise_()
            current.activateWindow()
            return current
        try:
            from fiotray.gui import dialogs

            cls = getattr(dialogs, name)
            dialog = cls(*args) if name == "HelpDialog" else cls(self.backend, *args)
        except (ImportError, AttributeError):
            log.exception("cannot open %s", name)
            self.notify("fiotray", "That window is not available in this build.", error=True)
            return None
        self._show(dialog, name, lambda _result: self._dialogs.pop(name, None))
        return dialog

    def _show(self, dialog: Any, key: str, on_finished: Callable[[int], None]) -> None:
        self._dialogs[key] = dialog
        dialog.finished.connect(on_finished)
        dialog.open()  # never exec(): a nested event loop would stall every coroutine

    # -- notifications -----------------------------------------------------------------------

    def notify(self, title: str, message: str, *, error: bool = False) -> bool:
        if not self.backend.settings.notifications:
            return False
        icon = (
            QSystemTrayIcon.MessageIcon.Critical if error else QSystemTrayIcon.MessageIcon.Warning
        )
        self.showMessage(title, message, icon, MESSAGE_MS)
        return True

    def _user_expected(self, name: str, state: State) -> bool:
        asked = self.backend.asked.get(name)
        if asked is None or time.monotonic() - asked[1] > USER_ACTION_WINDOW:
            return False
        if state is asked[0]:
            del self.backend.asked[name]
        return state is asked[0]

    def _on_tunnel(self, status: TunnelStatus) -> None:
        name, state = status.profile, status.state
        before = self._seen.get(name)
        self._seen[name] = state
        self.refresh()
        if before is None or before is state or self._user_expected(name, state):
            return  # first sight (start-up), no change, or what the user just asked for
        if state is State.DISCONNECTED and before in UP_STATES:
            self.notify(f"{name} disconnected", "The tunnel went down.")
        elif state is State.STALE and before is State.CONNECTED:
            self.notify(
                f"{name} stopped answering",
                "No handshake with the VPN server for over 3 minutes.",
            )
        elif state is State.STALE and before is State.CONNECTING:
            self.notify(f"{name}: no handshake", status.detail or "The VPN server did not answer.")
        # ERROR comes from a failed request: the backend's notice says why (no second message).

    def _on_notice(self, title: str, message: str, level: str) -> None:
        if level == "error":
            self.notify(title, message, error=True)
