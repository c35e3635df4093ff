"""The user's settings: SSH, the default tunnel, the desktop."""

from __future__ import annotations

import dataclasses
import itertools
import shlex
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractButton,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QRadioButton,
    QSpinBox,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from fiotray.core.errors import FiotrayError
from fiotray.gui.dialogs.base import (
    WorkDialog,
    error_color,
    form_layout,
    line_edit,
    muted_color,
    note_label,
    set_text_color,
)

if TYPE_CHECKING:
    from fiotray.gui.backend import Backend


_ROUTES: tuple[tuple[str, str, str], ...] = (
    (
        "jump",
        "&Jump through the VPN server (default)",
        "ssh -J via the server; needs an account on the server.",
    ),
    ("direct", "&Direct to the device", "Only where the server's admin forwards with NAT."),
    ("public", "&Public SSH of the server", "Via the server's public SSH host; no tunnel."),
)

_LEFT_CLICK: tuple[tuple[str, str], ...] = (
    ("menu", "Open the menu"),
    ("window", "Open the devices window"),
    ("toggle", "Connect or disconnect the default tunnel"),
)


class SettingsDialog(WorkDialog):
    """The user's settings; OK saves through the backend, Cancel changes nothing."""

    saved = Signal(object)  # Settings

    def __init__(self, backend: Backend, parent: QWidget | None = None) -> None:
        super().__init__(backend, parent, "OK")
        self.setWindowTitle("Settings — fiotray")
        self.setMinimumWidth(540)
        settings = backend.settings

        # -- SSH
        self.terminal = line_edit(
            "detect automatically",
            "A program and its run flag, e.g. “kitty” or “wezterm start --”. Empty: your "
            "$TERMINAL, xdg-terminal-exec, the desktop's terminal, then known ones.",
        )
        self.terminal.setText(settings.terminal)
        self.terminal_now = note_label("")
        self.terminal_now.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._terminal_timer = QTimer(self)
        self._terminal_timer.setSingleShot(True)
        self._terminal_timer.setInterval(250)  # PATH lookups per keystroke are wasted work
        self._terminal_timer.timeout.connect(self._update_terminal_now)
        self.terminal.textChanged.connect(self._terminal_timer.start)

        self.ssh_user = line_edit("fio", "The login on devices; fio on the Linux microPlatform.")
        self.ssh_user.setText(settings.ssh_user if settings.ssh_user != "fio" else "")
        self.ssh_user.textChanged.connect(self._revalidate)

        self.route_group = QButtonGroup(self)
        self.route_buttons: dict[str, QRadioButton] = {}
        routes = QWidget()
        routes_layout = QVBoxLayout(routes)
        routes_layout.setContentsMargins(0, 0, 0, 0)
        routes_layout.setSpacing(2)
        style = self.style()
        indent = style.pixelMetric(
            QStyle.PixelMetric.PM_ExclusiveIndicatorWidth
        ) + style.pixelMetric(QStyle.PixelMetric.PM_RadioButtonLabelSpacing)
        for route, text, explanation in _ROUTES:
            button = QRadioButton(text)
            button.setToolTip(explanation)
            self.route_group.addButton(button)
            self.route_buttons[route] = button
            routes_layout.addWidget(button)
            # One line each: wrapped labels inside a form row get their height wrong.
            note = note_label(explanation)
            note.setWordWrap(False)
            note.setContentsMargins(indent, 0, 0, 4)
            routes_layout.addWidget(note)
        self.route_buttons.get(settings.ssh_route, self.route_buttons["jump"]).setChecked(True)

        ssh_box = QGroupBox("SSH to devices")
        ssh_form = form_layout()
        # The edit and its wrapped status in one box: a wrapped label as a form row of
        # its own is given far more height than its text needs.
        terminal_box = QWidget()
        terminal_layout = QVBoxLayout(terminal_box)
        terminal_layout.setContentsMargins(0, 0, 0, 0)
        terminal_layout.setSpacing(2)
        terminal_layout.addWidget(self.terminal)
        terminal_layout.addWidget(self.terminal_now)
        ssh_form.addRow("&Terminal:", terminal_box)
        terminal_label = ssh_form.labelForField(terminal_box)
        if isinstance(terminal_label, QLabel):
            terminal_label.setBuddy(self.terminal)
        ssh_form.addRow("SSH &user:", self.ssh_user)
        ssh_form.addRow("Route:", routes)
        ssh_box.setLayout(ssh_form)

        # -- tunnels
        self.default_tunnel = QComboBox()
        self.default_tunnel.setToolTip("The tunnel the tray connects when you do not pick one.")
        self.default_tunnel.addItem("Automatic (the first tunnel)", "")
        try:
            tunnels = backend.tunnels()
            load_problem = ""
        except FiotrayError as exc:
            tunnels, load_problem = [], str(exc)
        names = [t.name for t in tunnels]
        for name in names:
            self.default_tunnel.addItem(name, name)
        default_name = backend.default_tunnel_name()
        if default_name and default_name not in names:
            # Keep a choice whose tunnel is gone, so OK does not drop it behind the user's back.
            self.default_tunnel.addItem(f"{default_name} (not found)", default_name)
        index = self.default_tunnel.findData(default_name)
        self.default_tunnel.setCurrentIndex(max(index, 0))
        # Per tunnel: kept with the tunnel (tunnels.json), like its default.
        self.autoconnect: dict[str, QCheckBox] = {}
        autoconnect = QWidget()
        autoconnect_layout = QVBoxLayout(autoconnect)
        autoconnect_layout.setContentsMargins(0, 0, 0, 0)
        autoconnect_layout.setSpacing(2)
        for tunnel in tunnels:
            box = QCheckBox(tunnel.name.replace("&", "&&"))
            box.setChecked(tunnel.autoconnect)
            box.setToolTip(
                "Once the network is up; asks for your password only if the system's "
                "policy does for any connect."
            )
            self.autoconnect[tunnel.name] = box
            autoconnect_layout.addWidget(box)
        if not tunnels:
            autoconnect_layout.addWidget(note_label("No tunnel yet."))
        tunnels_box = QGroupBox("Tunnels")
        tunnels_form = form_layout()
        tunnels_form.addRow("De&fault tunnel:", self.default_tunnel)
        tunnels_form.addRow("Connect when\nfiotray starts:", autoconnect)
        tunnels_box.setLayout(tunnels_form)

        # -- desktop
        self.autostart = QCheckBox("Start fiotray at &login, hidden in the tray")
        self.autostart.setChecked(self._autostart_now(settings.autostart))
        self.autostart.setToolTip("Adds fiotray to your desktop's autostart entries.")
        self.notifications = QCheckBox("Show desktop &notifications")
        self.notifications.setToolTip(
            "Tell me when a tunnel drops, a device applies a VPN change or a sign-in expires."
        )
        self.notifications.setChecked(settings.notifications)
        self.left_click = QComboBox()
        for value, text in _LEFT_CLICK:
            self.left_click.addItem(text, value)
        self.left_click.setCurrentIndex(max(self.left_click.findData(settings.left_click), 0))
        self.left_click.setToolTip("The right click (or long press) always opens the menu.")
        self.reach_wait = QSpinBox()
        self.reach_wait.setRange(1, 120)
        self.reach_wait.setSuffix(" min")
        self.reach_wait.setValue(max(1, round(settings.reach_wait / 60)))
        self._reach_wait_shown = self.reach_wait.value()
        self.reach_wait.setToolTip(
            "After Enable VPN, fiotray follows the device until it applied the change and "
            "answers over the VPN, and tells you either way. Devices check in every few "
            "minutes and the VPN server syncs every few minutes."
        )
        desktop_box = QGroupBox("Desktop")
        desktop_layout = QVBoxLayout(desktop_box)
        desktop_layout.addWidget(self.autostart)
        # On the notifications' line: the dialog must fit a 600-pixel-high screen.
        notify_row = QHBoxLayout()
        notify_row.addWidget(self.notifications)
        notify_row.addStretch(1)
        wait_label = QLabel("&Wait for an enabled device:")
        wait_label.setBuddy(self.reach_wait)
        notify_row.addWidget(wait_label)
        notify_row.addWidget(self.reach_wait)
        desktop_layout.addLayout(notify_row)
        click_form = form_layout()
        click_form.addRow("&Left click on the tray icon:", self.left_click)
        desktop_layout.addLayout(click_form)

        layout = QVBoxLayout(self.body)
        layout.setContentsMargins(0, 0, 0, 0)
        if backend.demo and backend.services.auto_demo:
            self.demo_note = note_label(
                "You are looking at the demo: these settings come along when you sign in to "
                "your factory, and start at login applies now."
            )
            layout.addWidget(self.demo_note)
            layout.addSpacing(6)
        elif backend.demo:
            self.demo_note = note_label(
                "Demo mode: nothing is saved outside the demo; these settings come along "
                "when you sign in to your factory, and start at login is left as it is."
            )
            layout.addWidget(self.demo_note)
            layout.addSpacing(6)
        layout.addWidget(ssh_box)
        layout.addWidget(tunnels_box)
        layout.addWidget(desktop_box)
        layout.addStretch(1)

        order: list[QWidget] = [
            self.terminal,
            self.ssh_user,
            *self.route_buttons.values(),
            self.default_tunnel,
            *self.autoconnect.values(),
            self.autostart,
            self.notifications,
            self.left_click,
            self.reach_wait,
            self.ok_button,
            self.cancel_button,
        ]
        for first, second in itertools.pairwise(order):
            self.setTabOrder(first, second)

        self._update_terminal_now()
        self._revalidate()
        if load_problem:
            self.show_error(load_problem)
        self.terminal.setFocus()

    def _autostart_now(self, saved: bool) -> bool:
        # The autostart file is the truth (the user may have removed it by hand);
        # the demo never touches it, so there the saved value is shown.
        assert self.backend is not None
        if self.backend.demo and not self.backend.services.auto_demo:
            return saved
        from fiotray.core import autostart

        return autostart.is_enabled()

    def _update_terminal_now(self) -> None:
        from fiotray.core.terminal import resolve_terminal

        setting = self.terminal.text().strip()
        try:
            choice = resolve_terminal(setting or None)
        except FiotrayError as exc:
            self.terminal_now.setText(str(exc))
            set_text_color(self.terminal_now, error_color(self))
            self.terminal_now.setProperty("ok", False)
            self._schedule_refit()
            return
        command = shlex.join(choice.argv_prefix)
        self.terminal_now.setText(f"SSH opens in: {choice.name} ({command} …)")
        set_text_color(self.terminal_now, muted_color(self))
        self.terminal_now.setProperty("ok", True)
        self._schedule_refit()

    def _check(self) -> tuple[bool, str]:
        from fiotray.core.ssh import validate_user

        user = self.ssh_user.text().strip()
        if user:
            try:
                validate_user(user)
            except FiotrayError as exc:
                return False, str(exc)
        return True, ""

    def chosen_route(self) -> str:
        button: QAbstractButton | None = self.route_group.checkedButton()
        return next((r for r, b in self.route_buttons.items() if b is button), "jump")

    def _submit(self) -> None:
        assert self.backend is not None
        # Start from what the backend holds now: recent devices may have changed meanwhile.
        settings = dataclasses.replace(
            self.backend.settings,
            terminal=self.terminal.text().strip(),
            ssh_user=self.ssh_user.text().strip() or "fio",
            ssh_route=self.chosen_route(),
            autostart=self.autostart.isChecked(),
            notifications=self.notifications.isChecked(),
            left_click=str(self.left_click.currentData() or "menu"),
        )
        if self.reach_wait.value() != self._reach_wait_shown:
            # Only a change: a wait set in seconds in settings.json is not rounded away.
            settings = dataclasses.replace(settings, reach_wait=self.reach_wait.value() * 60.0)
        try:
            self.backend.set_default_tunnel(str(self.default_tunnel.currentData() or ""))
            for name, box in self.autoconnect.items():
                self.backend.set_autoconnect(name, box.isChecked())
            self.backend.save_settings(settings)
        except FiotrayError as exc:
            self.show_error(str(exc))
            return
        self.saved.emit(settings)
        self.accept()
