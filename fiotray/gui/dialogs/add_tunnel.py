"""Add a tunnel to a factory's VPN server, then show what its admin must run."""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from fiotray.core.errors import FiotrayError
from fiotray.gui.dialogs.base import (
    CopyButton,
    WorkDialog,
    fixed_font_edit,
    form_layout,
    line_edit,
    note_label,
    page_widget,
)

if TYPE_CHECKING:
    from fiotray.core.tunnels import Tunnel
    from fiotray.gui.backend import Backend


class AddFoundriesTunnelDialog(WorkDialog):
    """A tunnel to a factory's VPN server; afterwards, what the server's admin must run."""

    tunnelAdded = Signal(object)  # Tunnel

    def __init__(
        self, backend: Backend, parent: QWidget | None = None, *, factory: str | None = None
    ) -> None:
        """`factory`: the one to preselect; by default the first signed-in one."""
        super().__init__(backend, parent, "Add Tunnel")
        self.setWindowTitle("Add a Foundries tunnel")
        self.setMinimumWidth(520)
        self.tunnel: Tunnel | None = None
        self._tunnel_names: set[str] = set()
        self._tunnel_factories: dict[str, str] = {}
        load_problem = ""
        try:
            factories = [p.factory for p in backend.factories()]
            for t in backend.tunnels():
                self._tunnel_names.add(t.name)
                if t.factory:
                    self._tunnel_factories.setdefault(t.factory, t.name)
        except FiotrayError as exc:
            factories, load_problem = [], str(exc)

        self.factory = QComboBox()
        self.factory.addItems(factories)
        self.factory.setToolTip("The signed-in factory whose VPN server the tunnel goes to.")
        if factory in factories:
            self.factory.setCurrentText(factory)
        self.factory.setEnabled(bool(factories))
        self.address = line_edit(
            "e.g. 10.42.42.200",
            "This laptop's address in the factory's VPN network: one no device uses. The "
            "server's admin admits the laptop with it.",
        )
        self.name = line_edit("", "The tunnel's name in fiotray (letters, digits, '-', '_').")

        # Two pages shown one at a time; not a QStackedWidget, which is as tall as its
        # tallest page and would leave a gap under the short form.
        self.form_page = self._form_page(bool(factories))
        self.result_page = self._result_page()
        self.result_page.hide()
        layout = QVBoxLayout(self.body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.form_page)
        layout.addWidget(self.result_page)

        self.factory.currentTextChanged.connect(self._factory_changed)
        self.address.textChanged.connect(self._revalidate)
        self.name.textChanged.connect(self._revalidate)
        self.setTabOrder(self.factory, self.address)
        self.setTabOrder(self.address, self.name)
        self.setTabOrder(self.name, self.ok_button)
        self._factory_changed(self.factory.currentText())
        if load_problem:
            self.show_error(load_problem)
        (self.address if factories else self.cancel_button).setFocus()

    def _form_page(self, have_factories: bool) -> QWidget:
        form = form_layout()
        form.addRow("&Factory:", self.factory)
        if not have_factories:
            form.addRow("", note_label("Sign in to a factory first."))
        form.addRow("VPN &address:", self.address)
        form.addRow("&Name:", self.name)
        self.factory_note = note_label("")
        self.factory_note.hide()
        page = page_widget(
            note_label(
                "fiotray makes a WireGuard key pair on this laptop (the private key goes "
                "straight to the system keyring) and a tunnel to the factory's VPN server "
                "that carries the whole VPN network."
            ),
            form,
            self.factory_note,
        )
        page.layout().setContentsMargins(0, 0, 0, 0)
        return page

    def _result_page(self) -> QWidget:
        page = QWidget()
        self.result_title = QLabel()
        self.result_title.setWordWrap(True)
        font = self.result_title.font()
        font.setBold(True)
        self.result_title.setFont(font)

        self.public_key = QLineEdit()
        self.public_key.setReadOnly(True)
        fixed_font_edit(self.public_key)
        self.copy_key = CopyButton("Copy &Key", "Copy this laptop's public key")
        key_row = QHBoxLayout()
        key_row.addWidget(self.public_key, 1)
        key_row.addWidget(self.copy_key)

        self.admin_line = QPlainTextEdit()
        self.admin_line.setReadOnly(True)
        self.admin_line.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.admin_line.setTabChangesFocus(True)
        fixed_font_edit(self.admin_line)
        lines = self.admin_line.fontMetrics().lineSpacing()
        self.admin_line.setFixedHeight(lines * 3 + 2 * self.admin_line.frameWidth() + 10)
        self.admin_line.setToolTip("Run this on the VPN server, as root.")
        self.copy_line = CopyButton("Copy &Line", "Copy the line for the admin")
        line_row = QHBoxLayout()
        line_row.addWidget(self.admin_line, 1)
        line_row.addWidget(self.copy_line, 0, Qt.AlignmentFlag.AlignTop)

        key_label = QLabel("This laptop's &public key:")
        key_label.setBuddy(self.public_key)
        line_label = QLabel("For the VPN server's admin, to run on the &server:")
        line_label.setBuddy(self.admin_line)

        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.result_title)
        layout.addSpacing(6)
        layout.addWidget(key_label)
        layout.addLayout(key_row)
        layout.addSpacing(6)
        layout.addWidget(line_label)
        layout.addLayout(line_row)
        layout.addWidget(
            note_label(
                "The server's admin must run this line once before the tunnel can work: "
                "until then it comes up, but no handshake happens. factory-wireguard-server "
                "rewrites its peers from the device list every few minutes, so the admin "
                "should also keep this peer in the server's own configuration.",
                muted=False,
            )
        )
        layout.addStretch(1)
        return page

    def _factory_changed(self, factory: str) -> None:
        self.name.setPlaceholderText(f"optional, default: {factory}" if factory else "optional")
        existing = self._tunnel_factories.get(factory)
        self.factory_note.setText(
            f"This laptop already has a tunnel to {factory}: “{existing}”." if existing else ""
        )
        self.factory_note.setVisible(bool(existing))
        self._revalidate()

    def _chosen_name(self) -> str:
        return self.name.text().strip() or self.factory.currentText()

    def _check(self) -> tuple[bool, str]:
        from fiotray.core.tunnels import NAME_RE

        if not self.factory.currentText():
            return False, ""
        problems: list[str] = []
        address = self.address.text().strip()
        ok_address = False
        if address:
            try:
                ipaddress.IPv4Address(address)
                ok_address = True
            except ValueError:
                # Say nothing while an address is still being typed.
                if not re.fullmatch(r"[0-9.]*", address) or address.count(".") >= 3:
                    problems.append(f"{address[:40]} is not an IPv4 address (e.g. 10.42.42.200).")
        name = self._chosen_name()
        if not NAME_RE.match(name):
            problems.append(
                f"The tunnel name “{name[:40]}” must be 1-32 letters, digits, '-' or '_'."
            )
        elif name in self._tunnel_names:
            problems.append(f"A tunnel named “{name}” exists already: choose another name.")
        return ok_address and not problems, " ".join(problems)

    def _submit(self) -> None:
        assert self.backend is not None
        backend = self.backend
        factory = self.factory.currentText()
        address = self.address.text().strip()
        name = self.name.text().strip() or None
        self._start(
            lambda: backend.add_foundries_tunnel(factory, address, name),
            "Setting up the tunnel…",
            self._added,
        )

    def _added(self, tunnel: Tunnel) -> None:
        assert self.backend is not None
        self.tunnel = tunnel
        self.result_title.setText(
            f"The tunnel “{tunnel.name}” to {tunnel.factory} is set up with the address "
            f"{tunnel.address}. One step is left, on the server."
        )
        self.public_key.setText(tunnel.public_key)
        self.copy_key.payload = tunnel.public_key
        line = self.backend.admin_line(tunnel)
        self.admin_line.setPlainText(line)
        self.copy_line.payload = line
        # Wide enough for the line on one row (it breaks at "allowed-ips" otherwise),
        # but never wider than the screen allows.
        margin = 2 * (self.admin_line.frameWidth() + self.admin_line.document().documentMargin())
        wanted = self.admin_line.fontMetrics().horizontalAdvance(line) + int(margin) + 8
        screen = self.screen()
        if screen is not None:
            wanted = min(wanted, int(screen.availableGeometry().width() * 0.8) - 160)
        self.admin_line.setMinimumWidth(max(wanted, 200))
        self.form_page.hide()
        self.result_page.show()
        self._schedule_refit(shrink=True)
        self.ok_button.hide()
        self.cancel_button.hide()
        close = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        close.setDefault(True)
        self.close_button = close
        self.setTabOrder(self.copy_line, close)
        self.copy_line.setFocus()
        self.tunnelAdded.emit(tunnel)

    def reject(self) -> None:
        # Once the tunnel exists, closing (Esc, Close) is the successful end.
        if self.tunnel is not None:
            self.accept()
        else:
            super().reject()
