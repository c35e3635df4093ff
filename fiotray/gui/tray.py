"""The tray icon: the tunnels' state at a glance, every action one menu away.

The menu is rebuilt by fiotray.gui.menus each time it is about to show (Vorta's
idiom), so it is never out of date. A left click opens the menu (or the devices
window, or toggles the default tunnel: the user's setting); hosts differ on clicks, so
everything is also in the menu.

Notifications follow one rule: say what the user did not ask for (a tunnel
that dropped or went stale, an expired sign-in) and failures of what they
asked for; never echo a success they just clicked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import QMenu, QMessageBox, QSystemTrayIcon, QWidget

from fiotray.core import errors
from fiotray.core.errors import FiotrayError, VpnError
from fiotray.core.format import duration, safe_text
from fiotray.core.tunnelstate import State, TunnelStatus
from fiotray.gui import dialogs, icons, menus
from fiotray.gui.menus import UP_STATES, state_text

if TYPE_CHECKING:
    from fiotray.gui.backend import Backend
    from fiotray.gui.dialogs import DialogLoader
    from fiotray.ops.reach import Reach

log = logging.getLogger(__name__)

# How long a click on a tunnel explains the state changes that follow it.
USER_ACTION_WINDOW = 30.0
MESSAGE_MS = 8000


class TrayIcon(QSystemTrayIcon):
    devicesRequested = Signal(object)  # factory name, or None for the default
    quitRequested = Signal()

    def __init__(self, backend: Backend | None = None, parent: QObject | None = None) -> None:
        """Without a backend the icon can show at once, before the slower start-up work;
        `attach` then brings it to life."""
        super().__init__(parent)
        self._backend: Backend | None = None
        self._seen: dict[str, State] = {}
        # The latest notifications (title, message), newest last: the app's status shows them.
        self.notifications: list[tuple[str, str]] = []
        # Open dialogs by what opened them (a dialog loader, or ("sign-out", factory)): one
        # of each.
        self._dialogs: dict[object, QWidget] = {}
        self._actions = menus.MenuActions(
            toggle=self.toggle,
            devices=self.devicesRequested.emit,
            ssh=self.ssh,
            sign_out=self.confirm_sign_out,
            open_dialog=self.open_dialog,
            quit=self.quitRequested.emit,
            tunnel_details=self.show_tunnel_details,
            sign_in_again=self.sign_in_again,
            remove_tunnel=self.confirm_remove_tunnel,
            copy_address=self.copy_address,
            autoconnect=self.set_autoconnect,
            stop_forward=self.stop_forward,
            restore_forwards=self.restore_forwards,
            forward_port=self.forward_port,
        )
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
    def menu_actions(self) -> menus.MenuActions:
        """What the menu entries do: a window's menu bar does the same."""
        return self._actions

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            raise RuntimeError("TrayIcon.attach() was not called")
        return self._backend

    def attach(self, backend: Backend) -> None:
        self._backend = backend
        backend.tunnelChanged.connect(self._on_tunnel)
        backend.notice.connect(self._on_notice)
        backend.configChanged.connect(self.refresh)
        backend.reachResult.connect(self._on_reach)
        backend.reachBatch.connect(self._on_reach_batch)
        for status in backend.tunnel_states.values():
            self._seen[status.tunnel] = status.state
        self.rebuild_menu()
        self.refresh()

    def detach(self) -> None:
        """Stop following the backend (the app is replacing it)."""
        backend = self._backend
        if backend is None:
            return
        backend.tunnelChanged.disconnect(self._on_tunnel)
        backend.notice.disconnect(self._on_notice)
        backend.configChanged.disconnect(self.refresh)
        self._backend = None
        self._seen.clear()

    def successor(self) -> TrayIcon:
        """A new icon on this one's backend, taking over its open dialogs; this one detaches.

        For a tray that appeared after this icon was made: Qt chose the icon's kind
        (StatusNotifierItem or XEmbed) then, and only a new QSystemTrayIcon uses the new tray.
        """
        new = TrayIcon(self._backend)
        # The same dict, not a copy: each dialog's `finished` handler pops itself from it.
        new._dialogs = self._dialogs
        self.detach()
        return new

    def close_dialogs(self) -> None:
        for dialog in list(self._dialogs.values()):
            dialog.close()
        self._dialogs.clear()

    # -- state ---------------------------------------------------------------------------

    @property
    def title(self) -> str:
        return menus.app_title(self.backend)

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

    def rebuild_menu(self) -> None:
        menus.fill_tray_menu(self.menu, self._backend, self._actions)

    # -- actions ----------------------------------------------------------------------------

    def _on_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if self._backend is None:
            return
        if reason is QSystemTrayIcon.ActivationReason.Trigger:
            click = self.backend.settings.left_click
            tunnel = self.backend.default_tunnel() if click == "toggle" else None
            if tunnel is not None:
                self.toggle(tunnel.name)
            elif click == "window":
                self.devicesRequested.emit(None)
            else:
                # The default: a stray click never prompts for a password or changes a
                # thing. (Toggle with no tunnel yet: the menu has "Add tunnel…".)
                self.popup_menu()
        elif reason is QSystemTrayIcon.ActivationReason.MiddleClick:
            self.devicesRequested.emit(None)

    def popup_menu(self) -> None:
        self.menu.popup(QCursor.pos())

    def toggle(self, name: str) -> None:
        status = self.backend.tunnel_states.get(name)
        going_down = status is not None and status.state is not State.DISCONNECTED
        what = f"{'Disconnect' if going_down else 'Connect'} {name}"
        self.backend.spawn(self.backend.toggle(name), what=what)

    def ssh(self, factory: str, device: str) -> None:
        self.backend.spawn(self._ssh(factory, device), what=f"SSH to {device}")

    async def _ssh(self, factory: str, device: str) -> None:
        try:
            await self.backend.open_ssh(factory, device)
        except VpnError as exc:
            tunnel = self.backend.tunnel_for(factory)
            if exc.code != errors.TUNNEL_DOWN or tunnel is None:
                raise
            # Only the tunnel stands in the way: offer to bring it up (one click, as in
            # the devices window) instead of a notice that says which command to run.
            name = tunnel.name
            self._confirm(
                ("connect-ssh", factory, device),
                "Connect first",
                f"SSH to {device} goes through the tunnel {name}, which is down.",
                lambda: self.backend.connect_and_open_ssh(name, factory, device),
                f"SSH to {device}",
                yes="Connect and open SSH",
            )

    def set_autoconnect(self, name: str, on: bool) -> None:
        try:
            self.backend.set_autoconnect(name, on)
        except FiotrayError as exc:
            self.notify("fiotray", str(exc), error=True)

    def stop_forward(self, forward_id: str) -> None:
        self.backend.spawn(self.backend.stop_forward(forward_id), what="Stop the port forward")

    def restore_forwards(self) -> None:
        self.backend.spawn(self.backend.restore_forwards(), what="Start saved port forwards")

    def forward_port(self, factory: str, device: str) -> None:
        """The "Forward a port…" dialog for a device (one per device)."""
        from fiotray.gui.dialogs.forward import ForwardDialog

        key = ("forward", factory, device)
        if self._bring_forward(key) is not None:
            return
        dialog = ForwardDialog(self.backend, None, factory=factory, device=device)
        self._show(dialog, key, lambda _r: self._dialogs.pop(key, None))

    def copy_address(self, factory: str, device: str) -> None:
        async def copy() -> None:
            menus.copy_text(await self.backend.device_address(factory, device))

        self.backend.spawn(copy(), what=f"Copy the address of {device}")

    def confirm_sign_out(self, factory: str) -> None:
        self._confirm(
            ("sign-out", factory),
            "Sign out",
            f"Sign out of {factory}? Its secrets are removed from the keyring.",
            lambda: self.backend.sign_out(factory),
            f"Sign out of {factory}",
        )

    def _confirm(
        self,
        key: object,
        title: str,
        question: str,
        act: Callable[[], Coroutine[Any, Any, Any]],
        what: str,
        *,
        yes: str = "",
    ) -> None:
        """Ask Yes/Cancel (one box per `key`); on Yes, run what `act` makes.

        `yes`: the Yes button's words, when "Yes" would not say what happens."""
        if self._bring_forward(key) is not None:
            return
        box = QMessageBox(
            QMessageBox.Icon.Question,
            title,
            question,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
        )
        if yes:
            box.button(QMessageBox.StandardButton.Yes).setText(yes)

        def done(result: int) -> None:
            self._dialogs.pop(key, None)
            if result == QMessageBox.StandardButton.Yes:
                self.backend.spawn(act(), what=what)

        self._show(box, key, done)

    def sign_in_again(self, factory: str) -> None:
        """The sign-in dialog, filled in for a factory whose sign-in was refused ("": a
        new sign-in, empty)."""
        try:
            saved = next(f for f in self.backend.factories() if f.factory == factory)
        except (StopIteration, FiotrayError):
            saved = None
        dialog = self.open_dialog(dialogs.sign_in_dialog)
        if dialog is not None and saved is not None:
            dialog.sign_in_again(saved)  # type: ignore[attr-defined]

    def confirm_remove_tunnel(self, name: str) -> None:
        self._confirm(
            ("remove-tunnel", name),
            "Remove tunnel",
            f"Remove the tunnel {name}? Its private key is deleted from the keyring; a "
            "request for access it made is withdrawn.",
            lambda: self.backend.remove_tunnel(name),
            f"Remove {name}",
        )

    def show_tunnel_details(self, name: str) -> None:
        """The tunnel as the server's admin and the user ask about it, in one box."""
        from PySide6.QtCore import Qt  # here: naming Qt costs the tray's start ~14 ms

        from fiotray.gui.menus import tunnel_details

        text = tunnel_details(self.backend, name)
        box = QMessageBox(QMessageBox.Icon.Information, f"Tunnel {name}", text)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._show(box, ("details", name), lambda _r: self._dialogs.pop(("details", name), None))

    def open_dialog(self, load: DialogLoader) -> QWidget | None:
        """Open the dialog `load` imports and returns, or raise the open one."""
        current = self._bring_forward(load)
        if current is not None:
            return current
        try:
            cls = load()
        except ImportError:
            log.exception("cannot open %s", getattr(load, "__name__", load))
            self.notify("fiotray", "That window is not available in this build.", error=True)
            return None
        dialog = cls(self.backend)
        self._show(dialog, load, lambda _result: self._dialogs.pop(load, None))
        return dialog

    def _bring_forward(self, key: object) -> QWidget | None:
        """The dialog open under `key`, raised and activated; None if there is none."""
        current = self._dialogs.get(key)
        if current is not None:
            current.raise_()
            current.activateWindow()
        return current

    def _show(self, dialog: Any, key: object, on_finished: Callable[[int], None]) -> None:
        self._dialogs[key] = dialog
        dialog.finished.connect(on_finished)
        dialog.open()  # never exec(): a nested event loop would stall every coroutine

    # -- notifications -----------------------------------------------------------------------

    def notify(self, title: str, message: str, *, error: bool = False, good: bool = False) -> bool:
        """A desktop notification (unless turned off in Settings); `good` news gets the
        information icon, the rest a warning or, with `error`, a critical one."""
        if not self.backend.settings.notifications:
            return False
        self.notifications = [*self.notifications[-19:], (title, message)]
        icon = QSystemTrayIcon.MessageIcon.Warning
        if error:
            icon = QSystemTrayIcon.MessageIcon.Critical
        elif good:
            icon = QSystemTrayIcon.MessageIcon.Information
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
        name, state = status.tunnel, status.state
        before = self._seen.get(name)
        self._seen[name] = state
        self.refresh()
        if before is None or before is state or self._user_expected(name, state):
            return  # first sight (start-up), no change, or what the user just asked for
        if state is State.DISCONNECTED and before in UP_STATES:
            self.notify(f"{name} disconnected", "The tunnel went down.")
        elif state is State.STALE and before is State.CONNECTED:
            self.notify(
                f"{name}: server unreachable",
                "No handshake with the VPN server for over 3 minutes.",
            )
        elif state is State.WAITING:
            self.notify(f"{name}: waiting for the server", status.detail)
        elif state is State.CONNECTED and before is State.WAITING:
            self.notify(f"{name} connected", "The VPN server admitted this laptop.")
        elif state is State.STALE and before is State.CONNECTING:
            self.notify(f"{name}: no handshake", status.detail or "The VPN server did not answer.")
        # ERROR comes from a failed request: the backend's notice says why (no second message).

    def _on_reach(self, result: Reach) -> None:
        """A device the user enabled answers over the VPN, or did not in time (and why)."""
        name = safe_text(result.device, 60)
        if result.reachable:
            self.notify(
                f"{name} is reachable", f"It answers over the VPN at {result.address}.", good=True
            )
        elif result.reason:
            self.notify(
                f"{name} is not reachable",
                safe_text(f"After {duration(result.waited_s)}: {result.reason}.", 300),
            )

    def _on_reach_batch(self, results: list[Reach]) -> None:
        """Devices enabled together: one notification, not one each."""
        from fiotray.ops.reach import batch_summary

        title, message = batch_summary(results)
        self.notify(title, safe_text(message, 400), good=all(r.reachable for r in results))

    def _on_notice(self, title: str, message: str, level: str) -> None:
        if level == "error":
            self.notify(title, message, error=True)
